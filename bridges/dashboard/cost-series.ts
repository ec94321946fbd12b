import { DAY_MS, fleetDay } from "../../config/index.js";
import type { UsageRecord } from "../../protocol/index.js";
import { addUsage, emptyTotals, type CostGroup, type CostReport, type CostTotals } from "../../router/index.js";

/*
 * The costs page's numbers, per day in the fleet's time zone, by agent and by served tier: a report for the last 7 and
 * the last N days, each against the days before it (the trend). Kept as day totals, fed each USAGE record once by the
 * follower /metrics already runs (deduplicated by callId and attempt), so a page sums at most 2 × N days of totals
 * instead of reading and decoding every record of the window per load.
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

interface DayTotals {
  totals: CostTotals;
  byAgent: Map<string, CostTotals>;
  byTier: Map<string, CostTotals>;
}

export class UsageDays {
  private readonly days = new Map<string, DayTotals>();
  private malformedCount = 0;

  constructor(private readonly timeZone: string) {}

  /** One USAGE record, counted once (the caller deduplicates). */
  add(r: UsageRecord): void {
    const day = fleetDay(r.at, this.timeZone);
    let d = this.days.get(day);
    if (!d) this.days.set(day, (d = { totals: emptyTotals(), byAgent: new Map(), byTier: new Map() }));
    addUsage(d.totals, r);
    addUsage(group(d.byAgent, r.agentId), r);
    addUsage(group(d.byTier, r.servedTier), r);
  }

  /** A USAGE message that did not decode. */
  malformed(): void {
    this.malformedCount++;
  }

  /** The last 7 and the last `monthDays` fleet days up to `now` (today included), each with the trend. */
  series(now: number, monthDays: number): CostSeries {
    const dayList = (count: number, endingDaysAgo: number): string[] =>
      Array.from({ length: count }, (_, i) => fleetDay(now - (endingDaysAgo + count - 1 - i) * DAY_MS, this.timeZone));
    this.prune(dayList(1, 2 * monthDays)[0]!);
    const report = (count: number): CostReport => {
      const current = this.merge(dayList(count, 0));
      const before = this.merge(dayList(count, count));
      return {
        window: { from: now - count * DAY_MS, to: now },
        totals: current.totals,
        byAgent: groups(current.byAgent),
        byTier: groups(current.byTier),
        byKind: [],
        topCalls: [],
        trend: before.totals.calls === 0 ? undefined : {
          costUsd: current.totals.costUsd,
          previousCostUsd: before.totals.costUsd,
          deltaUsd: current.totals.costUsd - before.totals.costUsd,
          ratio: before.totals.costUsd > 0 ? current.totals.costUsd / before.totals.costUsd : undefined,
          simulatedUsd: current.totals.simulatedUsd,
          previousSimulatedUsd: before.totals.simulatedUsd,
        },
      };
    };
    const days = dayList(monthDays, 0).map((day): DaySpend => {
      const d = this.days.get(day);
      return { day, costUsd: d?.totals.costUsd ?? 0, byAgent: realSpend(d?.byAgent), byTier: realSpend(d?.byTier) };
    });
    return { days, week: report(7), month: report(monthDays), monthDays, malformed: this.malformedCount };
  }

  /** Days before `oldest` are no longer shown. */
  private prune(oldest: string): void {
    for (const day of this.days.keys()) if (day < oldest) this.days.delete(day);
  }

  private merge(days: readonly string[]): DayTotals {
    const out: DayTotals = { totals: emptyTotals(), byAgent: new Map(), byTier: new Map() };
    for (const day of days) {
      const d = this.days.get(day);
      if (!d) continue;
      addTotals(out.totals, d.totals);
      for (const [key, t] of d.byAgent) addTotals(group(out.byAgent, key), t);
      for (const [key, t] of d.byTier) addTotals(group(out.byTier, key), t);
    }
    return out;
  }
}

function group(map: Map<string, CostTotals>, key: string): CostTotals {
  let t = map.get(key);
  if (!t) map.set(key, (t = emptyTotals()));
  return t;
}

function addTotals(into: CostTotals, t: CostTotals): void {
  for (const k of Object.keys(t) as (keyof CostTotals)[]) into[k] += t[k];
}

/** Sorted as buildCostReport sorts its groups: by real spend, then simulated, then name. */
function groups(map: Map<string, CostTotals>): CostGroup[] {
  return [...map].map(([key, t]) => ({ key, ...t })).sort((a, b) => b.costUsd - a.costUsd || b.simulatedUsd - a.simulatedUsd || a.key.localeCompare(b.key));
}

/** The day chart shows money paid: simulated calls count for nothing there. */
function realSpend(map: Map<string, CostTotals> | undefined): Record<string, number> {
  return Object.fromEntries([...(map ?? [])].map(([key, t]) => [key, t.costUsd]));
}
