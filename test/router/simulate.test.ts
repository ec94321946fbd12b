import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadFleetConfig, parseFleetConfig, shippedFleetPath, type FleetConfig } from "../../config/index.js";
import { activeMinutes, DEFAULT_ASSUMPTIONS, simulateFleet } from "../../router/simulate.js";

const close = (actual: number, expected: number, what = "") => assert.ok(Math.abs(actual - expected) < 1e-9, `${what} ${actual} ≈ ${expected}`);

/** A fleet from a few knobs; prices are round numbers so the expected dollars can be worked out by hand. */
function fleet(o: { quiet?: [string, string]; fleetCap?: number; agents: { id: string; tier: string; cycle: number; cap: number }[]; cron?: string; duties?: Record<string, string>; extra?: string }): FleetConfig {
  const tiers = { nano: [1, 2, 0.5], workhorse: [2, 4, 1], capable: [3, 6, 1.5], power: [5, 15, 2.5], premium: [10, 50, 5] };
  const yaml = `
fleet:
  name: sim
  timeZone: UTC
  dailyCapUsd: ${o.fleetCap ?? 1000}
  quietHours: { start: "${o.quiet?.[0] ?? "00:00"}", end: "${o.quiet?.[1] ?? "00:00"}" }
tiers:
${Object.entries(tiers).map(([t, [i, out, c]]) => `  ${t}: { model: m-${t}, inputPerM: ${i}, outputPerM: ${out}, cachedPerM: ${c} }`).join("\n")}
agents:
${o.agents
  .map(
    (a, k) => `  - id: ${a.id}
    name: ${a.id}
    role: r
    layer: ${k === 0 ? "orchestration" : "execution"}
    defaultTier: ${a.tier}
    cycleMinutes: ${a.cycle}
    dailyCapUsd: ${a.cap}
    tools: ${k === 0 ? '["*"]' : "[web_fetch, http_check, disk_usage]"}
    skills: [{ id: s, name: S, description: d, tags: [t] }]${o.duties?.[a.id] ? `\n${o.duties[a.id]}` : ""}`,
  )
  .join("\n")}
${o.cron ?? ""}
${o.extra ?? ""}`;
  return parseFleetConfig(yaml, "sim.yaml");
}

describe("simulateFleet", () => {
  it("the reference fleet costs less than sending every call to premium", () => {
    const config = loadFleetConfig(shippedFleetPath("dcode-ops"));
    const s = simulateFleet(config, { days: 30 });
    assert.equal(s.agents.length, config.agents.length);
    assert.ok(s.totals.usdPerDay > 0);
    assert.ok(s.totals.usdPerPeriod < s.baseline.usdPerPeriod, `${s.totals.usdPerPeriod} < ${s.baseline.usdPerPeriod}`);
    assert.ok((s.ratio ?? 0) > 2, `ratio ${s.ratio}`);
    assert.ok((s.savedShare ?? 0) > 0.5 && (s.savedShare ?? 1) < 1);
    close(s.totals.usdPerPeriod, s.totals.usdPerDay * 30, "period");
    // 23:30-06:30 quiet: 17 h of cycles; Atlas every 15 min
    assert.equal(s.activeMinutesPerDay, 17 * 60);
    assert.equal(s.agents.find((a) => a.agentId === "atlas")?.cyclesPerDay, 68);
    for (const agent of config.agents) {
      // triage at nano, work at the default tier, the tiers its duties' model steps name (triage: nano, standard:
      // capable), and Atlas's plans at planning.tier (workhorse)
      const rows = s.rows.filter((r) => r.agentId === agent.id);
      assert.deepEqual(rows.slice(0, 2).map((r) => r.tier), ["nano", agent.defaultTier]);
      for (const row of rows.slice(2)) assert.ok(row.tier === "capable" || (agent.id === "atlas" && row.tier === "workhorse" && row.steps === "plan"), `${agent.id}: ${row.tier}`);
    }
  });

  it("duties cost their pipelines' model steps: unconditioned once a run, conditioned at the finding rate, tool steps nothing; the orchestrator plans on what was found", () => {
    const agents = [{ id: "atlas", tier: "power", cycle: 60, cap: 100 }, { id: "ship", tier: "workhorse", cycle: 60, cap: 100 }];
    const pipelines = `pipelines:
  watch:
    steps:
      - { id: http, tool: http_check, input: { url: "http://127.0.0.1/" }, findings: [{ when: { path: output.ok, is: falsy }, severity: critical, subject: s, key: down, summary: down }] }
      - { id: triage, when: { path: findings, is: nonEmpty }, model: { tier: triage, prompt: p, output: { type: object } } }
  report:
    steps:
      - { id: write, model: { tier: standard, prompt: p, output: { type: object } } }
  disk:
    steps:
      - { id: disk, tool: disk_usage, input: { path: / } }`;
    const duties = {
      ship: `    duties:
      - { id: watch, pipeline: watch, every: 30m, delivery: none }
      - { id: disk, pipeline: disk, every: 5m, delivery: none }
      - { id: report, pipeline: report, cron: "0 9 * * 1", delivery: none }`,
    };
    const s = simulateFleet(fleet({ agents, duties, extra: pipelines }), { days: 1, assumptions: { workShare: 0, findingRate: 0.25 } });
    const ship = s.agents.find((a) => a.agentId === "ship");
    close(ship?.dutyRunsPerDay ?? -1, 48 + 288 + 1 / 7, "runs");
    close(ship?.dutyCallsPerDay ?? -1, 48 * 0.25 + 1 / 7, "calls: the disk duty makes none");
    close(s.rows.find((r) => r.agentId === "ship" && r.tier === "nano")?.callsPerDay ?? -1, 12, "conditioned triage at the finding rate");
    close(s.rows.find((r) => r.agentId === "ship" && r.tier === "capable")?.callsPerDay ?? -1, 1 / 7, "the weekly report at standard");
    // the watch's runs at :00 and :30 each find something at 25 %; atlas's hourly cycle after them takes both, and plans
    // when either did: 24 (1 - 0.75²) plans a day, at planning.tier (workhorse)
    const plans = s.rows.find((r) => r.agentId === "atlas" && r.tier === "workhorse");
    close(plans?.callsPerDay ?? -1, 24 * (1 - 0.75 ** 2), "plans");
    assert.equal(plans?.steps, "plan");
    // an agent reporting to atlas wakes it with every task it completes: ship's 336 runs would, but atlas cycles 24 times
    const reporting = simulateFleet(fleet({ agents, duties: { ship: `    reportsTo: atlas\n${duties.ship}` }, extra: pipelines }), { days: 1, assumptions: { workShare: 0, findingRate: 0.25 } });
    const busy = reporting.rows.find((r) => r.agentId === "atlas" && r.tier === "workhorse")?.callsPerDay ?? -1;
    assert.ok(busy > 23.99 && busy <= 24, `a plan a cycle at most: ${busy}`);
  });

  it("works the numbers out per call: idle cycles free, work on a share of them triaged at nano, cached input at the cached price", () => {
    const config = fleet({ agents: [{ id: "atlas", tier: "power", cycle: 60, cap: 100 }] });
    const s = simulateFleet(config, { days: 10, assumptions: { workShare: 0.5, cachedInputShare: 0.5 } });
    const [triage, work] = s.rows;
    assert.equal(triage?.tier, "nano");
    assert.equal(triage?.callsPerDay, 12, "one triage call per working step; 12 idle cycles cost nothing");
    assert.equal(work?.callsPerDay, 12);
    assert.equal(work?.inputTokensPerDay, 12 * 3000);
    // triage: 300 in at $1 + 300 cached at $0.5 + 50 out at $2 per M; work: 1500 at $5 + 1500 at $2.5 + 800 at $15
    close(triage?.usdPerDay ?? -1, (12 * (300 * 1 + 300 * 0.5 + 50 * 2)) / 1e6, "triage");
    close(work?.usdPerDay ?? -1, (12 * (1500 * 5 + 1500 * 2.5 + 800 * 15)) / 1e6, "work");
    const baseline = (12 * (300 * 10 + 300 * 5 + 50 * 50) + 12 * (1500 * 10 + 1500 * 5 + 800 * 50)) / 1e6;
    close(s.baseline.usdPerDay, baseline, "baseline");
    close(s.baseline.usdPerPeriod, baseline * 10, "baseline period");
  });

  it("a fleet of premium agents is about as dear as the baseline (only the triage calls save)", () => {
    const agents = [{ id: "atlas", tier: "premium", cycle: 30, cap: 1000 }, { id: "scout", tier: "premium", cycle: 60, cap: 1000 }];
    const withTriage = simulateFleet(fleet({ agents }), { days: 30 });
    assert.ok((withTriage.ratio ?? 0) > 1 && (withTriage.ratio ?? 9) < 1.5, `ratio ${withTriage.ratio}`);
    const allPremium = simulateFleet(fleet({ agents }), { days: 30, assumptions: { triageTier: "premium" } });
    close(allPremium.ratio ?? -1, 1, "ratio");
    assert.equal(allPremium.rows.length, 2, "triage and work share one row per agent");
    assert.equal(allPremium.rows[0]?.steps, "triage+work");
  });

  it("quiet hours reduce the cycles", () => {
    const agents = [{ id: "atlas", tier: "capable", cycle: 30, cap: 100 }];
    const never = simulateFleet(fleet({ agents }), { days: 1 });
    const nights = simulateFleet(fleet({ agents, quiet: ["22:00", "06:00"] }), { days: 1 });
    assert.equal(never.agents[0]?.cyclesPerDay, 48);
    assert.equal(nights.agents[0]?.cyclesPerDay, 32);
    close(nights.totals.usdPerDay, (never.totals.usdPerDay * 32) / 48, "cost scales with cycles");
  });

  it("cron runs add working steps (a weekly job counts a seventh a day); the orchestrator's own status report costs none", () => {
    const agents = [{ id: "atlas", tier: "capable", cycle: 60, cap: 100 }, { id: "mira", tier: "capable", cycle: 60, cap: 100 }];
    const cron = `cron:
  - { id: daily, agent: mira, at: "08:00", message: report, delivery: none }
  - { id: weekly, agent: mira, at: "09:00", days: [mon], message: growth, delivery: none }
  - { id: status, agent: atlas, at: "08:00", message: "What is the fleet doing?", delivery: none }`;
    const s = simulateFleet(fleet({ agents, cron }), { days: 30, assumptions: { workShare: 0 } });
    close(s.agents[1]?.cronRunsPerDay ?? -1, 1 + 1 / 7);
    close(s.rows.find((r) => r.agentId === "mira" && r.steps === "work")?.callsPerDay ?? -1, 1 + 1 / 7);
    // no other agent's skills match the status question better than atlas's: answered from its records, no model
    close(s.agents[0]?.cronRunsPerDay ?? -1, 1);
    close(s.rows.find((r) => r.agentId === "atlas" && r.steps === "work")?.callsPerDay ?? -1, 0);
  });

  it("interval and cron-expression jobs count their runs; a job that runs a tool calls no model", () => {
    const agents = [{ id: "atlas", tier: "capable", cycle: 60, cap: 100 }];
    const cron = `cron:
  - { id: hourly, agent: atlas, every: 1h, message: report, delivery: none }
  - { id: weekdays, agent: atlas, cron: "0 9 * * 1-5", message: digest, delivery: none }
  - { id: probe, agent: atlas, every: 5m, tool: http_check, input: { url: "http://127.0.0.1/" }, delivery: none }`;
    const s = simulateFleet(fleet({ agents, cron }), { days: 30, assumptions: { workShare: 0 } });
    close(s.agents[0]?.cronRunsPerDay ?? -1, 24 + 5 / 7);
  });

  it("a day above the agent's cap is clipped to the cap and flagged; the baseline is not capped", () => {
    const agents = [{ id: "atlas", tier: "power", cycle: 1, cap: 1 }, { id: "scout", tier: "nano", cycle: 60, cap: 1 }];
    const capped = simulateFleet(fleet({ agents }), { days: 30 });
    const atlas = capped.agents.find((a) => a.agentId === "atlas");
    assert.ok(atlas && atlas.capped && atlas.uncappedUsdPerDay > 1);
    close(atlas.usdPerDay, 1, "atlas per day");
    const atlasRows = capped.rows.filter((r) => r.agentId === "atlas");
    assert.ok(atlasRows.every((r) => r.capped));
    close(atlasRows.reduce((sum, r) => sum + r.usdPerDay, 0), 1, "rows add up to the cap");
    assert.equal(capped.agents.find((a) => a.agentId === "scout")?.capped, false);
    const uncapped = simulateFleet(fleet({ agents: agents.map((a) => ({ ...a, cap: 1000 })) }), { days: 30 });
    close(capped.baseline.usdPerDay, uncapped.baseline.usdPerDay, "baseline");
  });

  it("the fleet's cap clips the total", () => {
    const agents = [{ id: "atlas", tier: "power", cycle: 1, cap: 2 }, { id: "scout", tier: "power", cycle: 1, cap: 2 }];
    const s = simulateFleet(fleet({ agents, fleetCap: 3 }), { days: 30 });
    assert.equal(s.fleetCapped, true);
    close(s.totals.usdPerDay, 3, "fleet per day");
    close(s.totals.usdPerPeriod, 90, "fleet per period");
  });

  it("refuses nonsense options", () => {
    const config = fleet({ agents: [{ id: "atlas", tier: "power", cycle: 60, cap: 1 }] });
    assert.throws(() => simulateFleet(config, { days: 0 }), RangeError);
    assert.throws(() => simulateFleet(config, { days: 30, assumptions: { workShare: 1.5 } }), RangeError);
    assert.equal(DEFAULT_ASSUMPTIONS.workShare, 0.3);
  });
});

describe("activeMinutes", () => {
  it("a window across midnight, a window inside the day, and a never-quiet window", () => {
    assert.equal(activeMinutes({ start: "23:30", end: "06:30" }), 17 * 60);
    assert.equal(activeMinutes({ start: "12:00", end: "13:00" }), 23 * 60);
    assert.equal(activeMinutes({ start: "00:00", end: "00:00" }), 24 * 60);
  });
});
