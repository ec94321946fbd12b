import type { TierName, UsageRecord } from "../protocol/index.js";

/*
 * Where the money went: USAGE records summed by agent, by served tier and by task kind. Pure: the records and the window
 * come in, the report goes out; reading the stream is router/usage-reader.ts and printing it is cli/costs.ts.
 *
 * What the counters mean, read off how the router publishes (router/model-router.ts): every model call publishes its own
 * record, including cache hits (cost 0) and failed calls. A record's `escalations` and `fallbacks` are how many steps up
 * or along the chain its step had taken *before* this call, so summing them would count one escalation again on every
 * later call of the step. We count calls instead: `escalations` is the number of calls made at a tier an escalation led
 * to (record.escalations > 0), which is also what escalating cost; `fallbacks` likewise.
 *
 * Simulated calls (the simulated provider answered; nothing was billed) are kept apart: `costUsd` is real money only and
 * `simulatedUsd` is the simulated provider's estimate. Tokens and call counts include both, flagged by `simulatedCalls`.
 */

export const UNKNOWN_KIND = "general";
const TOP_CALLS = 5;

export interface CostTotals {
  calls: number;
  /** calls answered by the simulated provider: their cost is in simulatedUsd, not costUsd */
  simulatedCalls: number;
  failed: number;
  inputTokens: number;
  outputTokens: number;
  cachedTokens: number;
  /** real spend */
  costUsd: number;
  /** what the simulated calls would have cost at the tiers' prices */
  simulatedUsd: number;
  /** answered from the semantic cache, no model called */
  cacheHits: number;
  /** calls made at a tier an escalation (a failed check) led to */
  escalations: number;
  /** calls made at a tier a failed provider fell back to */
  fallbacks: number;
}

export interface CostGroup extends CostTotals {
  key: string;
}

export interface TopCall {
  callId: string;
  attempt: number;
  agentId: string;
  kind: string;
  servedTier: TierName;
  model: string;
  inputTokens: number;
  outputTokens: number;
  cachedTokens: number;
  costUsd: number;
  simulated: boolean;
  escalations: number;
  at: number;
}

export interface CostTrend {
  /** real spend of this window and of the previous one */
  costUsd: number;
  previousCostUsd: number;
  deltaUsd: number;
  /** this window ÷ the previous one; undefined when the previous window spent nothing real */
  ratio: number | undefined;
  simulatedUsd: number;
  previousSimulatedUsd: number;
}

export interface CostReport {
  window: { from: number; to: number };
  totals: CostTotals;
  /** sorted by spend (real, then simulated), largest first */
  byAgent: CostGroup[];
  byTier: CostGroup[];
  byKind: CostGroup[];
  /** the most expensive calls (by real or simulated cost), most expensive first */
  topCalls: TopCall[];
  /** undefined when there is no previous window to compare with */
  trend: CostTrend | undefined;
}

export function emptyTotals(): CostTotals {
  return { calls: 0, simulatedCalls: 0, failed: 0, inputTokens: 0, outputTokens: 0, cachedTokens: 0, costUsd: 0, simulatedUsd: 0, cacheHits: 0, escalations: 0, fallbacks: 0 };
}

/** Counts one call into `totals`. */
export function addUsage(totals: CostTotals, r: UsageRecord): void {
  totals.calls++;
  if (r.simulated) totals.simulatedCalls++;
  if (!r.ok) totals.failed++;
  totals.inputTokens += r.inputTokens;
  totals.outputTokens += r.outputTokens;
  totals.cachedTokens += r.cachedTokens;
  if (r.simulated) totals.simulatedUsd += r.costUsd;
  else totals.costUsd += r.costUsd;
  if (r.cacheHit) totals.cacheHits++;
  if (r.escalations > 0) totals.escalations++;
  if (r.fallbacks > 0) totals.fallbacks++;
}

/**
 * A stream read twice (or restored from a backup) can hold a call twice; the router's own dedup key is callId + attempt,
 * so the report uses it too.
 */
export function dedupUsage(records: readonly UsageRecord[]): UsageRecord[] {
  const seen = new Set<string>();
  const out: UsageRecord[] = [];
  for (const r of records) {
    const key = `${r.callId}\u0000${r.attempt}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(r);
  }
  return out;
}

export function kindOf(r: UsageRecord): string {
  return r.kind ?? UNKNOWN_KIND;
}

function groupBy(records: readonly UsageRecord[], keyOf: (r: UsageRecord) => string): CostGroup[] {
  const groups = new Map<string, CostGroup>();
  for (const r of records) {
    const key = keyOf(r);
    let group = groups.get(key);
    if (!group) groups.set(key, (group = { key, ...emptyTotals() }));
    addUsage(group, r);
  }
  return [...groups.values()].sort((a, b) => b.costUsd - a.costUsd || b.simulatedUsd - a.simulatedUsd || a.key.localeCompare(b.key));
}

export function sumUsage(records: readonly UsageRecord[]): CostTotals {
  const totals = emptyTotals();
  for (const r of records) addUsage(totals, r);
  return totals;
}

function topCallsOf(records: readonly UsageRecord[]): TopCall[] {
  // real money outranks an estimate of the same size; ties go to the earlier call so the order is stable
  return [...records]
    .sort((a, b) => b.costUsd - a.costUsd || Number(a.simulated) - Number(b.simulated) || a.at - b.at || a.callId.localeCompare(b.callId))
    .slice(0, TOP_CALLS)
    .map((r) => ({
      callId: r.callId, attempt: r.attempt, agentId: r.agentId, kind: kindOf(r), servedTier: r.servedTier, model: r.model,
      inputTokens: r.inputTokens, outputTokens: r.outputTokens, cachedTokens: r.cachedTokens, costUsd: r.costUsd,
      simulated: r.simulated, escalations: r.escalations, at: r.at,
    }));
}

/**
 * The report of `records` inside [window.from, window.to) (records outside it are ignored, so a caller can pass one read
 * covering both windows), with the trend against `previous` (taken as given: the caller chose its window).
 */
export function buildCostReport(records: readonly UsageRecord[], window: { from: number; to: number }, previous: readonly UsageRecord[]): CostReport {
  const inWindow = dedupUsage(records.filter((r) => r.at >= window.from && r.at < window.to));
  const totals = sumUsage(inWindow);
  let trend: CostTrend | undefined;
  if (previous.length > 0) {
    const before = sumUsage(dedupUsage(previous));
    trend = {
      costUsd: totals.costUsd,
      previousCostUsd: before.costUsd,
      deltaUsd: totals.costUsd - before.costUsd,
      ratio: before.costUsd > 0 ? totals.costUsd / before.costUsd : undefined,
      simulatedUsd: totals.simulatedUsd,
      previousSimulatedUsd: before.simulatedUsd,
    };
  }
  return {
    window: { from: window.from, to: window.to },
    totals,
    byAgent: groupBy(inWindow, (r) => r.agentId),
    byTier: groupBy(inWindow, (r) => r.servedTier),
    byKind: groupBy(inWindow, kindOf),
    topCalls: topCallsOf(inWindow),
    trend,
  };
}
