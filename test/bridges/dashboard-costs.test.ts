import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { UsageDays } from "../../bridges/index.js";
import { DAY_MS, fleetDay } from "../../config/index.js";
import type { UsageRecord } from "../../protocol/index.js";
import { buildCostReport } from "../../router/index.js";

/*
 * The costs page's day totals, fed one record at a time, give the figures the report built from the records themselves
 * gives for the same fleet days: totals, by agent, by tier, and the trend against the days before.
 */
describe("dashboard: the costs page's day totals", () => {
  it("equal buildCostReport over the same fleet days (7 and 30, with the trend), simulated calls kept apart", () => {
    const zone = "Europe/Berlin";
    const now = Date.parse("2026-12-05T21:00:00Z");
    const records: UsageRecord[] = Array.from({ length: 3_000 }, (_, n) => ({
      callId: `c-${n}`, agentId: ["scout", "ship", "atlas"][n % 3]!, requestedTier: "nano", servedTier: (["nano", "capable", "power"] as const)[n % 3 === 0 ? 2 : n % 2]!,
      model: "m", deploymentId: "d", inputTokens: 100 + n, outputTokens: 10 + (n % 50), cachedTokens: n % 4 ? 0 : 20, costUsd: (n % 17) / 1000,
      latencyMs: 5, cacheHit: n % 11 === 0, escalations: n % 13 === 0 ? 1 : 0, fallbacks: 0, simulated: n % 29 === 0, decisionReason: "rule",
      ok: n % 31 !== 0, attempt: 0, at: now - Math.floor((n / 3_000) * 65 * DAY_MS),
    }));
    const days = new UsageDays(zone);
    for (const r of records) days.add(r);
    const series = days.series(now, 30);

    const dayOf = (r: UsageRecord) => fleetDay(r.at, zone);
    const lastDays = (count: number, endingDaysAgo: number) => new Set(Array.from({ length: count }, (_, i) => fleetDay(now - (endingDaysAgo + i) * DAY_MS, zone)));
    for (const [report, n] of [[series.week, 7], [series.month, 30]] as const) {
      const current = lastDays(n, 0);
      const before = lastDays(n, n);
      const expected = buildCostReport(records.filter((r) => current.has(dayOf(r))), { from: 0, to: Infinity }, records.filter((r) => before.has(dayOf(r))));
      assert.deepEqual(round(report.totals), round(expected.totals), `${n} days: totals`);
      assert.deepEqual(report.byAgent.map(round), expected.byAgent.map(round), `${n} days: by agent`);
      assert.deepEqual(report.byTier.map(round), expected.byTier.map(round), `${n} days: by tier`);
      assert.deepEqual(round(report.trend ?? {}), round(expected.trend ?? {}), `${n} days: trend`);
    }
    assert.equal(series.days.length, 30);
    assert.equal(series.days.at(-1)?.day, fleetDay(now, zone), "today is the last day of the chart");
    const today = records.filter((r) => dayOf(r) === fleetDay(now, zone) && !r.simulated).reduce((sum, r) => sum + r.costUsd, 0);
    assert.ok(Math.abs(series.days.at(-1)!.costUsd - today) < 1e-9, "the chart counts money paid only");
  });
});

/** Sums of floats in another order differ in the last bits. */
function round<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, typeof v === "number" ? Number(v.toFixed(9)) : v])) as T;
}
