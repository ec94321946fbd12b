import { userInfo } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { jetstream } from "@nats-io/jetstream";
import { ProposalStore } from "../governance/index.js";
import { pino } from "pino";
import { decideAsOperator } from "../bridges/index.js";
import { FleetError, isFinalProposalState, ProposalRecord, requestTyped, type ApprovalDecision } from "../protocol/index.js";
import { inspect, loadConfig, type CliOptions } from "./options.js";
import { printTable } from "./status.js";

export interface ProposalOptions extends CliOptions {
  all?: boolean | undefined;
  reason?: string | undefined;
  timeout?: string | undefined;
}

/** The operator as decisions and rollbacks record them. */
function operator(): string {
  return `cli:${userInfo().username}`;
}

/** `fleet proposals [--all]` lists them; `fleet proposals <id>` shows one with every rule's verdict and its history. */
export async function proposals(positionals: string[], options: ProposalOptions, env: NodeJS.ProcessEnv): Promise<number> {
  const config = loadConfig(options);
  const { nc, names, kv } = await inspect(options, env);
  try {
    const store = new ProposalStore(kv.proposals, jetstream(nc), names, config.fleet.codec);
    const [id] = positionals;
    if (id) {
      const stored = await store.get(id);
      if (!stored) throw new FleetError("PROPOSAL_NOT_FOUND", `no proposal ${id}`);
      if (options.json) console.log(JSON.stringify(stored.record, null, 2));
      else printProposal(stored.record);
      return 0;
    }
    const now = Date.now();
    const list = (await store.list()).filter((p) => options.all || !isFinalProposalState(p.state));
    if (options.json) console.log(JSON.stringify(list, null, 2));
    else if (list.length === 0) console.log(options.all ? "no proposals" : "no open proposals (--all shows settled ones too)");
    else printTable(["PROPOSAL", "AGENT", "TOOL", "RISK", "STATE", "AGE", "NEXT"], list.map((p) => [p.id, p.agentId, p.tool, p.risk, p.state, age(now - p.createdAt), next(p, now)]));
    return 0;
  } finally {
    await nc.close();
  }
}

function printProposal(p: ProposalRecord): void {
  console.log(`${p.id}: ${p.agentId} → ${p.tool} (${p.risk}) — ${p.state}`);
  console.log(`  reason: ${p.reason}`);
  console.log(`  input:  ${JSON.stringify(p.input)}`);
  if (p.verdict) {
    console.log(`  Sentinel: ${p.verdict.outcome}${p.verdict.rejectedBy ? ` by ${p.verdict.rejectedBy.rule}: ${p.verdict.rejectedBy.reason}` : ""}`);
    for (const r of p.verdict.results) console.log(`    ${r.outcome.padEnd(11)} ${r.rule.padEnd(20)} ${r.reason}`);
  }
  if (p.deadlines) console.log(`  expires: ${new Date(p.deadlines.expiresAt).toISOString()}   notified: ${p.notified.join(", ") || "-"}`);
  if (p.decision) console.log(`  decided: ${p.decision.decision} by ${p.decision.by} via ${p.decision.via}${p.decision.reason ? ` (${p.decision.reason})` : ""}`);
  if (p.rollbackUntil) console.log(`  rollback until: ${new Date(p.rollbackUntil).toISOString()}`);
  if (p.attempts) console.log(`  attempts: ${p.attempts}${p.lastError ? `   last error: ${p.lastError.code}: ${p.lastError.message}` : ""}`);
  if (p.output !== undefined) console.log(`  output: ${JSON.stringify(p.output).slice(0, 500)}`);
  console.log("  history:");
  for (const h of p.history) console.log(`    ${new Date(h.at).toISOString()}  ${h.from ?? "-"} → ${h.to}  (${h.event})${h.note ? ` ${h.note}` : ""}`);
}

function next(p: ProposalRecord, now: number): string {
  if (p.state === "awaiting_human" && p.deadlines) return `expires in ${age(p.deadlines.expiresAt - now)}`;
  if (p.state === "completed" && p.rollbackUntil && p.rollbackUntil > now) return `rollback for ${age(p.rollbackUntil - now)}`;
  if (p.state === "sentinel_approved" && p.retryAt) return `retry in ${age(Math.max(0, p.retryAt - now))}`;
  if (p.state === "rejected" && p.verdict?.rejectedBy) return `${p.verdict.rejectedBy.rule}: ${p.verdict.rejectedBy.reason}`.slice(0, 60);
  return "";
}

function age(ms: number): string {
  const m = Math.round(ms / 60_000);
  return m < 60 ? `${m}m` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}`;
}

/**
 * `fleet approve <id>` / `fleet reject <id> --reason ...`: the operator's decision, published like a bridge's on
 * APPROVALS under the operator's own channel token `_operator` (under `fleet up` the broker lets each bridge publish
 * only under its own channel, and governance holds `via` to the subject's channel). Waits
 * until governance has taken it and prints the proposal's new state.
 */
export async function decide(decision: ApprovalDecision["decision"], positionals: string[], options: ProposalOptions, env: NodeJS.ProcessEnv): Promise<number> {
  const [id] = positionals;
  if (!id) throw new FleetError("MESSAGE_INVALID", `usage: fleet ${decision} <proposal-id>${decision === "reject" ? " --reason <why>" : ""}`);
  if (decision === "reject" && !options.reason) throw new FleetError("MESSAGE_INVALID", "a rejection needs --reason <why>: the agent and the audit trail keep it");
  const config = loadConfig(options);
  const { nc, names, kv } = await inspect(options, env);
  try {
    const store = new ProposalStore(kv.proposals, jetstream(nc), names, config.fleet.codec);
    // the operator's decision goes the one way the dashboard's does too
    await decideAsOperator(
      { js: jetstream(nc), names, codec: config.fleet.codec, store, clock: { now: () => Date.now() }, log: pino({ level: "silent" }) },
      { proposalId: id, decision, by: operator(), reason: options.reason },
    );
    const deadline = Date.now() + Number(options.timeout ?? 10) * 1000;
    while (Date.now() < deadline) {
      const now = await store.get(id);
      if (now && now.record.state !== "awaiting_human") {
        console.log(`${id}: ${now.record.state}${now.record.state === "completed" ? ` — ${JSON.stringify(now.record.output).slice(0, 200)}` : ""}`);
        return now.record.state === "dead_letter" ? 1 : 0;
      }
      await sleep(100);
    }
    console.log(`${id}: decision published; governance has not taken it yet (is \`fleet run governance\` running?)`);
    return 1;
  } finally {
    await nc.close();
  }
}

/** `fleet rollback <id>`: undoes a PROPOSE proposal's effect inside its window (refused after it, with the time it closed). */
export async function rollback(positionals: string[], options: ProposalOptions, env: NodeJS.ProcessEnv): Promise<number> {
  const [id] = positionals;
  if (!id) throw new FleetError("MESSAGE_INVALID", "usage: fleet rollback <proposal-id> [--reason <why>]");
  const config = loadConfig(options);
  const { nc, names } = await inspect(options, env);
  try {
    const record = await requestTyped(nc, names.governance("rollback"), { proposalId: id, by: operator(), ...(options.reason ? { reason: options.reason } : {}) }, ProposalRecord, {
      codec: config.fleet.codec,
      timeoutMs: Number(options.timeout ?? 60) * 1000,
    }).catch((err: unknown) => {
      if (err instanceof FleetError) throw err;
      throw new FleetError("AGENT_UNAVAILABLE", "the governance process does not answer (is `fleet run governance` running?)", { cause: err });
    });
    console.log(`${id}: ${record.state}`);
    return 0;
  } finally {
    await nc.close();
  }
}
