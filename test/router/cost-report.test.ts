import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { UsageRecord } from "../../protocol/index.js";
import { buildCostReport, UNKNOWN_KIND } from "../../router/cost-report.js";

const T0 = Date.parse("2025-06-02T08:00:00Z");
const HOUR = 3_600_000;
const window = { from: T0, to: T0 + 24 * HOUR };

let calls = 0;
function usage(overrides: Partial<UsageRecord> = {}): UsageRecord {
  return {
    callId: `call-${++calls}`, agentId: "scout", kind: "research", requestedTier: "capable", servedTier: "capable",
    model: "m-capable", deploymentId: "d1", inputTokens: 1000, outputTokens: 100, cachedTokens: 0, costUsd: 0.01,
    latencyMs: 100, cacheHit: false, escalations: 0, fallbacks: 0, simulated: false, decisionReason: "default", ok: true,
    attempt: 0, at: T0 + HOUR, ...overrides,
  };
}

const close = (actual: number, expected: number) => assert.ok(Math.abs(actual - expected) < 1e-9, `${actual} ≈ ${expected}`);

describe("buildCostReport", () => {
  it("sums calls, tokens, cost and cache hits by agent, served tier and kind (no kind is general)", () => {
    const records = [
      usage({ agentId: "scout", kind: "research", servedTier: "capable", inputTokens: 1000, outputTokens: 100, cachedTokens: 200, costUsd: 0.01 }),
      usage({ agentId: "scout", kind: undefined, servedTier: "nano", inputTokens: 500, outputTokens: 20, costUsd: 0.001 }),
      usage({ agentId: "atlas", kind: "status-report", servedTier: "power", inputTokens: 3000, outputTokens: 800, costUsd: 0.03 }),
      usage({ agentId: "atlas", kind: "status-report", servedTier: "power", deploymentId: "cache", inputTokens: 0, outputTokens: 0, costUsd: 0, cacheHit: true }),
    ];
    const report = buildCostReport(records, window, []);
    assert.equal(report.totals.calls, 4);
    assert.equal(report.totals.inputTokens, 4500);
    assert.equal(report.totals.outputTokens, 920);
    assert.equal(report.totals.cachedTokens, 200);
    close(report.totals.costUsd, 0.041);
    assert.equal(report.totals.cacheHits, 1);

    assert.deepEqual(report.byAgent.map((g) => [g.key, g.calls]), [["atlas", 2], ["scout", 2]], "largest spend first");
    assert.deepEqual(report.byTier.map((g) => g.key), ["power", "capable", "nano"]);
    const kinds = Object.fromEntries(report.byKind.map((g) => [g.key, g]));
    assert.equal(kinds[UNKNOWN_KIND]?.calls, 1);
    assert.equal(kinds["status-report"]?.cacheHits, 1);
    close(kinds["research"]?.costUsd ?? -1, 0.01);
  });

  it("counts escalated and fallen-back calls (a record with escalations > 0), not the running counter's sum", () => {
    // one step: capable failed its check, power failed its check, premium answered; then a fallback in another step
    const records = [
      usage({ callId: "s1", attempt: 0, servedTier: "capable", escalations: 0 }),
      usage({ callId: "s1", attempt: 1, servedTier: "power", escalations: 1 }),
      usage({ callId: "s1", attempt: 2, servedTier: "premium", escalations: 2 }),
      usage({ callId: "s2", attempt: 0, servedTier: "workhorse", ok: false, error: "timeout", costUsd: 0 }),
      usage({ callId: "s2", attempt: 1, servedTier: "capable", fallbacks: 1 }),
    ];
    const { totals, byTier } = buildCostReport(records, window, []);
    assert.equal(totals.escalations, 2);
    assert.equal(totals.fallbacks, 1);
    assert.equal(totals.failed, 1);
    assert.equal(byTier.find((g) => g.key === "premium")?.escalations, 1);
  });

  it("keeps simulated spend apart from real spend", () => {
    const records = [usage({ costUsd: 0.5 }), usage({ simulated: true, costUsd: 2 }), usage({ simulated: true, costUsd: 1, agentId: "ship" })];
    const report = buildCostReport(records, window, []);
    close(report.totals.costUsd, 0.5);
    close(report.totals.simulatedUsd, 3);
    assert.equal(report.totals.simulatedCalls, 2);
    assert.equal(report.totals.calls, 3);
    const ship = report.byAgent.find((g) => g.key === "ship");
    assert.equal(ship?.costUsd, 0);
    assert.equal(ship?.simulatedUsd, 1);
    assert.equal(report.byAgent[0]?.key, "scout", "real money ranks first");
  });

  it("lists the five most expensive calls, most expensive first", () => {
    const costs = [0.02, 0.5, 0.01, 0.3, 0.04, 0.9, 0.05];
    const records = costs.map((costUsd, i) => usage({ callId: `c${i}`, costUsd, at: T0 + i }));
    const { topCalls } = buildCostReport(records, window, []);
    assert.deepEqual(topCalls.map((c) => c.costUsd), [0.9, 0.5, 0.3, 0.05, 0.04]);
    assert.equal(topCalls[0]?.callId, "c5");
    assert.equal(topCalls[0]?.kind, "research");
  });

  it("ignores records outside the window and a record published twice (same callId and attempt)", () => {
    const twice = usage({ callId: "dup", costUsd: 0.2 });
    const records = [twice, { ...twice }, usage({ callId: "dup", attempt: 1, costUsd: 0.1 }), usage({ at: T0 - 1 }), usage({ at: window.to })];
    const { totals } = buildCostReport(records, window, []);
    assert.equal(totals.calls, 2);
    close(totals.costUsd, 0.3);
  });

  it("compares with the previous window: delta and ratio; no trend without a previous window", () => {
    const now = [usage({ costUsd: 0.3 }), usage({ costUsd: 0.3 })];
    const before = [usage({ at: T0 - HOUR, costUsd: 0.4 }), usage({ at: T0 - HOUR, costUsd: 1, simulated: true })];
    const { trend } = buildCostReport(now, window, before);
    assert.ok(trend);
    close(trend.costUsd, 0.6);
    close(trend.previousCostUsd, 0.4);
    close(trend.deltaUsd, 0.2);
    close(trend.ratio ?? -1, 1.5);
    close(trend.previousSimulatedUsd, 1);

    assert.equal(buildCostReport(now, window, []).trend, undefined);
    const onlySimulatedBefore = buildCostReport(now, window, [usage({ simulated: true, costUsd: 1 })]).trend;
    assert.equal(onlySimulatedBefore?.ratio, undefined, "no ratio against zero real spend");
    close(onlySimulatedBefore?.deltaUsd ?? -1, 0.6);
  });

  it("an empty window is all zeros", () => {
    const report = buildCostReport([], window, []);
    assert.equal(report.totals.calls, 0);
    assert.deepEqual(report.byAgent, []);
    assert.deepEqual(report.topCalls, []);
  });
});
