import { jetstream } from "@nats-io/jetstream";
import { localParts } from "../config/index.js";
import { readAuditRecords, verifyAuditChain } from "../governance/index.js";
import { FleetError, type AuditRecord } from "../protocol/index.js";
import { inspect, loadConfig, prefixOf, type CliOptions } from "./options.js";
import { printTable } from "./status.js";

export interface AuditOptions extends CliOptions {
  agent?: string | undefined;
  tool?: string | undefined;
  limit?: string | undefined;
}

const DEFAULT_LIMIT = 50;

/**
 * `fleet audit [--agent <id>] [--tool <name>] [--limit N] [--json]`: the latest tool calls from the AUDIT stream, refused
 * ones included. `fleet audit verify`: walks the whole hash chain; exit 0 when intact, 1 with every problem found.
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
      const result = await verifyAuditChain(js, names, codec);
      if (options.json) console.log(JSON.stringify({ intact: result.problems.length === 0, ...result }, null, 2));
      else if (result.problems.length === 0) console.log(`chain intact: ${result.records} records`);
      else {
        console.log(`AUDIT_CHAIN_BROKEN: ${result.problems.length} problem${result.problems.length === 1 ? "" : "s"} in ${result.records} records`);
        for (const p of result.problems) console.log(`  seq ${p.seq}: ${p.problem}`);
      }
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

function row(r: AuditRecord & { seq: number }, timeZone: string): string[] {
  return [String(r.seq), localTime(r.at, timeZone), r.agentId, r.tool, r.risk, r.mode, r.ok ? "yes" : "no", `${Math.round(r.durationMs)} ms`, r.proposalId ?? "", r.error?.code ?? ""];
}

function localTime(epoch: number, timeZone: string): string {
  const p = localParts(epoch, timeZone);
  const two = (n: number) => String(n).padStart(2, "0");
  return `${p.year}-${two(p.month)}-${two(p.day)} ${two(p.hour)}:${two(p.minute)}:${two(new Date(epoch).getUTCSeconds())}`;
}
