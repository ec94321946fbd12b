import type { JetStreamClient } from "@nats-io/jetstream";
import { DAY_MS, fleetDay } from "../../config/index.js";
import type { FleetNames } from "../../protocol/index.js";
import { buildCostReport, dedupUsage, readUsage, type CostReport } from "../../router/index.js";

/*
 * The costs page's numbers, from the USAGE stream as `fleet costs` reads it: per day (in the fleet's time zone) by agent
 * and by served tier, and a report for the last 7 and the last N days each against the window before it (the trend).
 */

export interface DaySpend {
  day: string;
  costUsd: number;
  byAgent: Record<string, number>;
  byTier: Record<string, number>;
}

export interface CostSeries {
  days: DaySpend[];
  week: CostReport;
  month: CostReport;
  monthDays: number;
  malformed: number;
}

export async function costSeries(js: JetStreamClient, names: FleetNames, timeZone: string, now: number, monthDays: number): Promise<CostSeries> {
  const windowMs = monthDays * DAY_MS;
  // the window before the longer one too, for its trend
  const read = await readUsage(js, names, now - 2 * windowMs, now);
  const records = dedupUsage(read.records);
  const within = (from: number, to: number) => records.filter((r) => r.at >= from && r.at < to);
  const report = (ms: number) => buildCostReport(within(now - ms, now), { from: now - ms, to: now }, within(now - 2 * ms, now - ms));
  const days = new Map<string, DaySpend>();
  for (let t = now - windowMs + DAY_MS; t <= now; t += DAY_MS) {
    const day = fleetDay(t, timeZone);
    days.set(day, { day, costUsd: 0, byAgent: {}, byTier: {} });
  }
  for (const r of within(now - windowMs, now)) {
    if (r.simulated) continue;
    const d = days.get(fleetDay(r.at, timeZone));
    if (!d) continue;
    d.costUsd += r.costUsd;
    d.byAgent[r.agentId] = (d.byAgent[r.agentId] ?? 0) + r.costUsd;
    d.byTier[r.servedTier] = (d.byTier[r.servedTier] ?? 0) + r.costUsd;
  }
  return { days: [...days.values()], week: report(7 * DAY_MS), month: report(windowMs), monthDays, malformed: read.malformed };
}
