import type { KV } from "@nats-io/kv";
import { decode, DutyRunRecord, type CodecName } from "../protocol/index.js";

/** Every duty's record in KV `schedules` (`duty.<agent>.<id>`), as the scheduler last wrote it. */
export async function readDutyRecords(schedules: KV): Promise<DutyRunRecord[]> {
  const out: DutyRunRecord[] = [];
  for await (const key of await schedules.keys("duty.>")) {
    const entry = await schedules.get(key);
    if (!entry || entry.operation !== "PUT") continue;
    for (const codec of ["msgpack", "json"] as CodecName[]) {
      const d = decode(DutyRunRecord, entry.value, { codec });
      if (d.ok) {
        out.push(d.value);
        break;
      }
    }
  }
  return out.sort((a, b) => a.agentId.localeCompare(b.agentId) || a.dutyId.localeCompare(b.dutyId));
}

/** `fleet status`'s duty table: each duty's schedule, its last run (clean / found N / failed) and when it is next due. */
export function dutyRows(records: readonly DutyRunRecord[], now: number, timeZone = "UTC"): string[][] {
  return records.map((r) => [
    `${r.agentId}/${r.dutyId}`,
    r.schedule,
    lastRunText(r, now, timeZone),
    r.running?.heldUntil !== undefined && r.running.heldUntil > now
      ? `held until ${clockText(r.running.heldUntil, timeZone)}`
      : r.running ? `running (due ${ago(r.running.dueAt, now)})` : r.nextDueAt === null ? "never" : `${clockText(r.nextDueAt, timeZone)} (${until(r.nextDueAt, now)})`,
    `${r.counts.clean}/${r.counts.found}/${r.counts.failed}`,
  ]);
}

export const DUTY_HEADER = ["DUTY", "SCHEDULE", "LAST RUN", "NEXT DUE", "CLEAN/FOUND/FAILED"];

function lastRunText(r: DutyRunRecord, now: number, timeZone: string): string {
  const run = r.lastRun;
  if (!run) return "not yet";
  const found = run.findings ? `found ${run.findings}` : run.stillOpen ? `still open ${run.stillOpen}` : "found something";
  const outcome =
    run.outcome === "found" ? `${found}${run.delivered ? ", delivered" : ""}` : run.outcome === "failed" ? `failed: ${(run.reason ?? "").slice(0, 60)}` : "clean";
  // a run held at its model steps: its report comes when they have run
  const held = r.held.filter((h) => h.until > now).map((h) => h.until);
  const waits = held.length > 0 ? `; ${held.length} report${held.length > 1 ? "s" : ""} held until ${clockText(Math.min(...held), timeZone)}` : "";
  return `${outcome} (${ago(run.finishedAt, now)})${waits}`;
}

function clockText(at: number, timeZone: string): string {
  return new Date(at).toLocaleString("en-GB", { timeZone, weekday: "short", hour: "2-digit", minute: "2-digit" });
}

function span(ms: number): string {
  const s = Math.round(Math.abs(ms) / 1000);
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86_400)} d`;
}

const ago = (at: number, now: number) => `${span(now - at)} ago`;
const until = (at: number, now: number) => (at <= now ? "now" : `in ${span(at - now)}`);
