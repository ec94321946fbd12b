import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { jetstream } from "@nats-io/jetstream";
import { localParts } from "../config/index.js";
import { readAuditRecords, trustedSignersIn, verifyAuditChain, type AuditVerification, type TrustedSigners } from "../governance/index.js";
import { FleetError, type AuditRecord } from "../protocol/index.js";
import { CREDS_DIR, inspect, loadConfig, prefixOf, type CliOptions } from "./options.js";
import { printTable } from "./status.js";

export interface AuditOptions extends CliOptions {
  agent?: string | undefined;
  tool?: string | undefined;
  limit?: string | undefined;
  /** the credentials directory (or its identities.json) whose public keys signatures are checked against */
  identities?: string | undefined;
}

const DEFAULT_LIMIT = 50;

/**
 * `fleet audit [--agent <id>] [--tool <name>] [--limit N] [--json]`: the latest tool calls from the AUDIT stream, refused
 * ones included. `fleet audit verify`: walks the whole hash chain, checks every signature against the fleet's tool-host
 * key and the chain against governance's anchors; exit 0 when intact, 1 with every problem found. Records written without
 * a key (a fleet on an open server) pass the chain check and are reported as unsigned, in so many words.
 */
export async function audit(positionals: string[], options: AuditOptions, env: NodeJS.ProcessEnv): Promise<number> {
  const [sub] = positionals;
  if (sub !== undefined && sub !== "verify") throw new FleetError("CONFIG_INVALID", `usage: fleet audit [--agent <id>] [--tool <name>] [--limit N] [--json] | fleet audit verify (not "${sub}")`);
  const limit = options.limit === undefined ? DEFAULT_LIMIT : Number(options.limit);
  if (!Number.isInteger(limit) || limit < 1) throw new FleetError("CONFIG_INVALID", `--limit ${options.limit}: expected a whole number of at least 1`);
  const config = loadConfig(options);
  const codec = config.fleet.codec;
  const { nc, names } = await inspect({ ...options, prefix: prefixOf(options, config) }, env);
  try {
    const js = jetstream(nc);
    if (sub === "verify") {
      const trusted = trustedSigners(options);
      const result = await verifyAuditChain(js, names, codec, { trusted });
      if (options.json) console.log(JSON.stringify({ intact: result.problems.length === 0, ...result }, null, 2));
      else printVerification(result);
      return result.problems.length === 0 ? 0 : 1;
    }
    const read = await readAuditRecords(js, names, codec, {
      ...(options.agent ? { agentId: options.agent } : {}),
      ...(options.tool ? { tool: options.tool } : {}),
      limit,
    });
    if (options.json) {
      console.log(JSON.stringify({ records: read.records, malformed: read.malformed }, null, 2));
      return 0;
    }
    if (read.records.length === 0) console.log("no tool calls in the audit trail" + (options.agent || options.tool ? " for this filter" : ""));
    else printTable(["SEQ", `TIME (${config.fleet.timeZone})`, "AGENT", "TOOL", "RISK", "MODE", "OK", "DURATION", "PROPOSAL", "ERROR"], read.records.map((r) => row(r, config.fleet.timeZone)));
    if (read.malformed > 0) console.log(`${read.malformed} AUDIT messages are not audit records (run: fleet audit verify)`);
    return 0;
  } finally {
    await nc.close();
  }
}

/** --identities (a directory or its identities.json), else the directory of --creds, else `fleet up`'s. */
function trustedSigners(options: AuditOptions): TrustedSigners | undefined {
  if (options.identities) {
    const dir = options.identities.endsWith(".json") ? dirname(options.identities) : options.identities;
    const found = trustedSignersIn(dir);
    if (!found) throw new FleetError("CONFIG_INVALID", `--identities ${options.identities}: no identities.json or seeds there (\`fleet creds <dir>\` writes them)`);
    return found;
  }
  const dir = options.creds?.endsWith(".nk") ? dirname(resolve(options.creds)) : CREDS_DIR;
  return existsSync(dir) ? trustedSignersIn(dir) : undefined;
}

function printVerification(result: AuditVerification): void {
  const { signatures: s, anchors: a } = result;
  if (result.problems.length === 0) console.log(`chain intact: ${result.records} records`);
  else {
    console.log(`AUDIT_CHAIN_BROKEN: ${result.problems.length} problem${result.problems.length === 1 ? "" : "s"} in ${result.records} records`);
    for (const p of result.problems) console.log(`  ${p.anchor !== undefined ? `anchor ${p.anchor}${p.seq ? ` (seq ${p.seq})` : ""}` : `seq ${p.seq}`}: ${p.problem}`);
  }
  if (s.trustedFrom) console.log(`signatures: ${s.signed} records signed by the fleet's tool host (keys from ${s.trustedFrom})`);
  else if (s.signed > 0) console.log(`signatures: ${s.signed} records carry a valid signature, NOT checked against the fleet's keys (no identities.json found: pass --identities <creds dir>)`);
  if (s.unsigned > 0) {
    console.log(`UNSIGNED: ${s.unsigned} records carry no signature (the tool host ran without an nkey): a rewrite that keeps the hashes consistent is not detectable in them`);
  }
  if (a.latest) {
    const after = result.lastSeq - a.latest.seq;
    console.log(`anchors: ${a.count}, the latest at seq ${a.latest.seq} (${new Date(a.latest.at).toISOString()})${after > 0 ? `; ${after} records after it are not anchored yet` : ""}`);
  } else if (result.records > 0) console.log("anchors: none: the chain's tip was never anchored (governance anchors it only when it runs with its nkey)");
}

function row(r: AuditRecord & { seq: number }, timeZone: string): string[] {
  // a delegation to a peer the agent's host made itself and reported (Atlas's peer tasks) says so where the mode is
  return [String(r.seq), localTime(r.at, timeZone), r.agentId, r.tool, r.risk, r.reportedBy ? `${r.mode} (delegated)` : r.mode, r.ok ? "yes" : "no", `${Math.round(r.durationMs)} ms`, r.proposalId ?? "", r.error ? `${r.error.code}${r.refusedBy ? " (by the agent's host)" : ""}` : ""];
}

function localTime(epoch: number, timeZone: string): string {
  const p = localParts(epoch, timeZone);
  const two = (n: number) => String(n).padStart(2, "0");
  return `${p.year}-${two(p.month)}-${two(p.day)} ${two(p.hour)}:${two(p.minute)}:${two(new Date(epoch).getUTCSeconds())}`;
}
