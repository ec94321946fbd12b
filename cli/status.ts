import type { z } from "zod";
import { AgentRecord, decode, isAlive, type CodecName } from "../protocol/index.js";
import { inspect, type CliOptions } from "./context.js";

/** `fleet status`: each agent's state, current task, tier, last heartbeat and restarts, read from KV `agents`. */
export async function status(options: CliOptions, env: NodeJS.ProcessEnv): Promise<number> {
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
    if (options.json) {
      console.log(JSON.stringify(records.map(({ snapshot: _s, card: _c, ...r }) => ({ ...r, alive: isAlive({ ...r, card: _c }, now) })), null, 2));
      return 0;
    }
    if (records.length === 0) {
      console.log("no agents have reported yet");
      return 0;
    }
    const rows = records.map((r) => [
      r.agentId,
      isAlive(r, now) ? r.state : r.heartbeatAt === 0 ? "stopped" : "DOWN",
      r.currentTaskId ?? "-",
      r.tier,
      r.heartbeatAt ? `${Math.round((now - r.heartbeatAt) / 1000)}s ago` : "-",
      String(r.restarts),
      breakerText(r, now),
      String(r.dedupSuppressed ?? 0),
      `${r.tasksCompleted}/${r.tasksFailed}`,
      `${r.host}:${r.pid}`,
    ]);
    printTable(["AGENT", "STATE", "TASK", "TIER", "HEARTBEAT", "RESTARTS", "BREAKER", "DEDUPED", "DONE/FAILED", "PROCESS"], rows);
    return 0;
  } finally {
    await nc.close();
  }
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
  console.log(line(header));
  for (const r of rows) console.log(line(r));
}
