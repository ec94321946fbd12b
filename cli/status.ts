import type { z } from "zod";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { AgentRecord, decode, discoverServices, FleetNames, isAlive, isFinalProposalState, ProposalRecord, QUIET_HOURS_KEY, QuietHoursRecord, secrets, type BucketKey, type CodecName, type MicroStats, type UsageReply } from "../protocol/index.js";
import { listHeld } from "../actors/index.js";
import { RouterClient } from "../router/index.js";
import { heldRows } from "./held-text.js";
import { guardSecrets, inspect, loadConfig, prefixOf, type CliOptions } from "./options.js";
import { gatewayLines } from "./gateway-status.js";
import { serviceSummary } from "./service-summary.js";
import { clusterHealth, healthLines, leaseHolders } from "./cluster-health.js";
import { DUTY_HEADER, dutyRows, readDutyRecords } from "./duty-status.js";

/** `fleet status`: each agent's state, current task, tier, last heartbeat and restarts, read from KV `agents`. */
export async function status(options: CliOptions, env: NodeJS.ProcessEnv): Promise<number> {
  guardSecrets(env, options.config ? loadConfig(options) : undefined);
  const { nc, kv } = await inspect(options, env);
  try {
    const records: AgentRecord[] = [];
    for await (const key of await kv.agents.keys()) {
      const entry = await kv.agents.get(key);
      if (!entry || entry.operation !== "PUT") continue;
      const decoded = decodeAny(AgentRecord, entry.value);
      if (decoded) records.push(decoded);
    }
    records.sort((a, b) => a.agentId.localeCompare(b.agentId));
    const now = Date.now();
    // today's spend is the router's to tell (it keeps the budgets); without a router the column says so
    const usage = await new RouterClient(nc, new FleetNames(prefixOf(options)), { timeoutMs: 2_000, retries: 0 }).usage().catch(() => undefined);
    const quiet = await kv.schedules.get(QUIET_HOURS_KEY).catch(() => null);
    const quietRecord = quiet?.operation === "PUT" ? decodeAny(QuietHoursRecord, quiet.value) : undefined;
    // held work: model work waiting for the end of quiet hours or for midnight after a spent cap
    const timeZone = quietRecord?.timeZone ?? (options.config ? loadConfig(options).fleet.timeZone : "UTC");
    const held = heldRows(await listHeld(kv.held, undefined).catch(() => []), timeZone);
    if (options.json) {
      print(
        JSON.stringify(
          records.map(({ snapshot: _s, card: _c, ...r }) => ({
            ...r,
            alive: isAlive({ ...r, card: _c }, now),
            budget: usage?.agents[r.agentId],
            held: held.filter((h) => h.agentId === r.agentId).map(({ taskId, reason, why, until, title }) => ({ taskId, reason, why, until, title })),
          })),
          null,
          2,
        ),
      );
      return 0;
    }
    if (records.length === 0) {
      print("no agents have reported yet");
      // a gateway or a service may well be up before any agent is
      for (const line of await discoveredLines(nc, options)) print(line);
      return 0;
    }
    const heldBy = (agentId: string) => held.filter((h) => h.agentId === agentId).length;
    const rows = records.map((r) => [
      r.agentId,
      isAlive(r, now) ? r.state : r.heartbeatAt === 0 ? "stopped" : "DOWN",
      r.currentTaskId ?? "-",
      r.tier,
      r.heartbeatAt ? `${Math.round((now - r.heartbeatAt) / 1000)}s ago` : "-",
      String(r.restarts),
      breakerText(r, now),
      spendText(usage, r.agentId),
      String(r.dedupSuppressed ?? 0),
      `${r.tasksCompleted}/${r.tasksFailed}`,
      String(heldBy(r.agentId)),
      `${r.host}:${r.pid}`,
    ]);
    if (usage) print(`fleet: ${spendText(usage, undefined)} on ${usage.day}${usage.waiting.length > 0 ? `; ${usage.waiting.length} premium call(s) waiting` : ""}`);
    printTable(["AGENT", "STATE", "TASK", "TIER", "HEARTBEAT", "RESTARTS", "BREAKER", "SPENT TODAY", "DEDUPED", "DONE/FAILED", "HELD", "PROCESS"], rows);
    if (quietRecord) print(quietHoursText(quietRecord));
    if (held.length > 0) {
      print(`held: ${held.length} task(s) wait; none is failed, each runs when its hold ends`);
      printTable(["AGENT", "TASK", "WHY", "UNTIL", "TITLE"], held.map((h) => [h.agentId, h.taskId, h.why, h.untilText, h.title]));
    }
    const proposals = await proposalSummary(kv.proposals, now);
    if (proposals) print(proposals);
    const duties = await readDutyRecords(kv.schedules).catch(() => []);
    if (duties.length > 0) printTable(DUTY_HEADER, dutyRows(duties, now, quietRecord?.timeZone));
    for (const line of await discoveredLines(nc, options)) print(line);
    for (const line of await leaseHolders(kv.leases).catch(() => [])) print(line);
    // a single server has nothing to say here; a cluster shows its servers, leaders and lagging replicas
    const health = await clusterHealth(nc, new FleetNames(prefixOf(options)), Object.keys(kv) as BucketKey[]).catch(() => []);
    if (health.some((h) => h.replicas > 1 || Object.keys(h.peers).length > 1)) for (const line of healthLines(health)) print(line);
    return 0;
  } finally {
    await nc.close();
  }
}

/** What answers NATS micro discovery: the services, then the A2A gateway (one round of discovery for both). */
async function discoveredLines(nc: NatsConnection, options: CliOptions): Promise<string[]> {
  const found = await discoverServices(nc, 400).catch(() => [] as MicroStats[]);
  return [...serviceSummary(found), ...gatewayLines(found, options.config ? loadConfig(options) : undefined)];
}

/**
 * One line on governance: open proposals, those waiting for a person (the oldest's expiry), and the last day's
 * refusals by the proposal-dedup rule (the third dedup layer; the DEDUPED column counts the task and discovery layers).
 */
async function proposalSummary(proposals: KV, now: number): Promise<string | undefined> {
  let open = 0;
  let awaiting = 0;
  let firstExpiry = Infinity;
  let dedupRefused = 0;
  for await (const key of await proposals.keys()) {
    const entry = await proposals.get(key);
    const record = entry?.operation === "PUT" ? decodeAny(ProposalRecord, entry.value) : undefined;
    if (!record) continue;
    if (!isFinalProposalState(record.state) && record.state !== "completed") open++;
    if (record.state === "awaiting_human") {
      awaiting++;
      firstExpiry = Math.min(firstExpiry, record.deadlines?.expiresAt ?? Infinity);
    }
    if (record.verdict?.rejectedBy?.rule === "proposal_dedup" && now - record.createdAt < 24 * 3600_000) dedupRefused++;
  }
  if (open === 0 && dedupRefused === 0) return undefined;
  const waiting = awaiting > 0 ? `, ${awaiting} awaiting a human (first expires in ${Math.max(0, Math.round((firstExpiry - now) / 60_000))} min: fleet proposals)` : "";
  return `proposals: ${open} open${waiting}; ${dedupRefused} refused as duplicates in the last 24 h`;
}

/** The fleet's quiet-hours chart as the scheduler runs it: its state and when it next changes, in the fleet's zone. */
function quietHoursText(r: QuietHoursRecord): string {
  if (r.nextBoundaryAt === null) return `quiet hours: ${r.state} (never quiet)`;
  const next = new Date(r.nextBoundaryAt).toLocaleString("en-GB", { timeZone: r.timeZone, hour: "2-digit", minute: "2-digit", weekday: "short" });
  return `quiet hours: ${r.state} until ${next} ${r.timeZone}`;
}

function spendText(usage: UsageReply | undefined, agentId: string | undefined): string {
  if (!usage) return "no router";
  const view = agentId === undefined ? usage.fleet : usage.agents[agentId];
  if (!view) return "-";
  const state = view.state === "normal" ? "" : ` ${view.state}`;
  return `$${view.spentUsd.toFixed(view.spentUsd < 1 ? 4 : 2)}/$${view.capUsd}${state}`;
}

function breakerText(r: AgentRecord, now: number): string {
  const b = r.breaker;
  if (!b || b.state === "closed") return b && b.consecutiveFailures > 0 ? `closed (${b.consecutiveFailures} failed)` : "closed";
  if (b.state === "open" && b.openUntil) return `open ${Math.max(0, Math.ceil((b.openUntil - now) / 60_000))} min`;
  return b.state;
}

/** Records are written with the fleet's codec; the CLI does not need the config to read them. */
export function decodeAny<S extends Parameters<typeof decode>[0]>(schema: S, bytes: Uint8Array): z.infer<S> | undefined {
  for (const codec of ["msgpack", "json"] as CodecName[]) {
    const d = decode(schema, bytes, { codec });
    if (d.ok) return d.value;
  }
  return undefined;
}

export function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  ").trimEnd();
  print(line(header));
  for (const r of rows) print(line(r));
}

/** Every line `fleet status` prints passes the scrubber: records and service metadata are written by other processes. */
function print(line: string): void {
  console.log(secrets.scrub(line));
}
