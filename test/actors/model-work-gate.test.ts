import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino } from "pino";
import { FleetModelWorkGate, gateModelCall, ModelWorkHeld, QuietHoursRunner } from "../../actors/index.js";
import { FleetError } from "../../protocol/index.js";

const at = (iso: string): number => Date.parse(iso);
const log = pino({ level: "silent" });

/** The gate on a simulated clock, with the real quiet-hours chart (23:30–06:30 Berlin: 22:30–05:30Z in January). */
function gate(startIso: string, urgent: { tiers?: string[]; triggers?: ("cron" | "event" | "operator")[]; titles?: string[] } = {}) {
  const clock = { t: at(startIso), now() { return this.t; } };
  const quietHours = new QuietHoursRunner({
    window: { start: "23:30", end: "06:30", timeZone: "Europe/Berlin" },
    clock,
    scheduler: { schedule: () => undefined, cancel: () => undefined },
    log,
  }).start();
  const g = new FleetModelWorkGate({
    quietHours,
    timeZone: "Europe/Berlin",
    urgent: { tiers: urgent.tiers ?? [], triggers: urgent.triggers ?? [], titles: urgent.titles ?? [] },
    aliases: { triage: "nano", standard: "capable", heavy: "power", crisis: "premium" },
    clock,
    log,
  });
  return { g, clock, stop: () => quietHours.stop() };
}

const refused = (path: string) => new FleetError("BUDGET_EXHAUSTED", "spent", { details: [{ path, message: "spent" }] });

describe("FleetModelWorkGate: when model work waits", () => {
  it("lets everything run outside quiet hours; inside, holds it until the window ends", () => {
    const { g, clock, stop } = gate("2026-01-15T12:00:00Z");
    assert.equal(g.check({ agentId: "scout", title: "research pricing" }), undefined);
    clock.t = at("2026-01-15T23:00:00Z");
    const hold = g.check({ agentId: "scout", title: "research pricing", work: { cronJob: "report", trigger: "cron" } });
    assert.deepEqual([hold?.reason, hold?.until], ["quiet-hours", at("2026-01-16T05:30:00Z")]);
    assert.match(hold?.detail ?? "", /quiet hours until Fri 06:30 Europe\/Berlin/);
    clock.t = at("2026-01-16T05:30:00Z");
    assert.equal(g.check({ agentId: "scout", title: "research pricing" }), undefined, "the window's end lets it run");
    stop();
  });

  it("urgent work runs in quiet hours: marked urgent, or by tier (alias either way), trigger or title policy", () => {
    const { g, stop } = gate("2026-01-15T23:00:00Z", { tiers: ["premium"], triggers: ["event"], titles: ["Site Down"] });
    const runs = (step: Parameters<typeof g.check>[0]) => g.check(step) === undefined;
    assert.equal(runs({ agentId: "ship", work: { urgent: true } }), true, "work.urgent");
    assert.equal(runs({ agentId: "ship", tier: "premium" }), true, "a premium step");
    assert.equal(runs({ agentId: "ship", work: { tier: "crisis" } }), true, "an alias of premium");
    assert.equal(runs({ agentId: "ship", work: { trigger: "event" } }), true, "an event's task");
    assert.equal(runs({ agentId: "ship", title: "the site down again?" }), true, "a phrase in the title, any case");
    assert.equal(runs({ agentId: "ship", tier: "heavy", work: { trigger: "cron", urgent: false }, title: "daily report" }), false, "none of them");
    stop();
  });

  it("a spent agent cap holds that agent's work until the fleet's midnight; a spent fleet cap holds every agent's", () => {
    const { g, clock, stop } = gate("2026-01-15T10:00:00Z");
    assert.equal(g.holdOf(new FleetError("CHECK_FAILED", "no"), { agentId: "scout" }), undefined, "only a budget refusal is a hold");
    const agentHold = g.holdOf(refused("agents.scout.dailyCapUsd"), { agentId: "scout" });
    assert.deepEqual([agentHold?.reason, agentHold?.until], ["agent-cap", at("2026-01-15T23:00:00Z")]);
    assert.equal(g.check({ agentId: "scout" })?.reason, "agent-cap", "remembered: the next step waits without asking the router");
    assert.equal(g.check({ agentId: "scout", work: { urgent: true } })?.reason, "agent-cap", "urgency does not lift a spent cap");
    assert.equal(g.check({ agentId: "ship" }), undefined, "another agent works on");
    const fleetHold = g.holdOf(refused("fleet.dailyCapUsd"), { agentId: "ship" });
    assert.equal(fleetHold?.reason, "fleet-cap");
    assert.equal(g.check({ agentId: "mira" })?.reason, "fleet-cap", "the fleet's cap holds everyone");
    clock.t = at("2026-01-15T22:59:59Z");
    assert.notEqual(g.check({ agentId: "mira" }), undefined);
    clock.t = at("2026-01-15T23:00:00Z");
    // midnight in Berlin is inside quiet hours: the cap's hold is over, the window's begins
    assert.deepEqual([g.check({ agentId: "scout" })?.reason, g.check({ agentId: "scout" })?.until], ["quiet-hours", at("2026-01-16T05:30:00Z")]);
    stop();
  });

  it("when a cap and quiet hours both hold, the later end wins", () => {
    const { g, clock, stop } = gate("2026-01-15T22:00:00Z");
    g.holdOf(refused("agents.scout.dailyCapUsd"), { agentId: "scout" });
    clock.t = at("2026-01-15T22:40:00Z");
    // quiet until 05:30Z beats the cap's midnight (23:00Z)
    assert.equal(g.check({ agentId: "scout" })?.reason, "quiet-hours");
    stop();
  });

  it("gateModelCall, the seam a pipeline runner wraps each model step in: a hold before the call or from its refusal is thrown as ModelWorkHeld", async () => {
    const { g, clock, stop } = gate("2026-01-15T23:00:00Z");
    let calls = 0;
    const call = async () => ++calls;
    await assert.rejects(gateModelCall(g, { agentId: "ship", tier: "triage" }, call), (err) => err instanceof ModelWorkHeld && err.hold.reason === "quiet-hours");
    assert.equal(calls, 0, "held before the call: no router asked");
    clock.t = at("2026-01-15T10:00:00Z");
    assert.equal(await gateModelCall(g, { agentId: "ship" }, call), 1);
    await assert.rejects(
      gateModelCall(g, { agentId: "ship" }, async () => { throw refused("agents.ship.dailyCapUsd"); }),
      (err) => err instanceof ModelWorkHeld && err.hold.reason === "agent-cap",
    );
    await assert.rejects(gateModelCall(g, { agentId: "scout" }, async () => { throw new FleetError("CHECK_FAILED", "bad"); }), (err) => err instanceof FleetError);
    assert.equal(await gateModelCall(undefined, { agentId: "ship" }, call), 2, "no gate: the call as it is");
    stop();
  });
});
