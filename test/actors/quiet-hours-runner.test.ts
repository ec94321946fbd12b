import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino } from "pino";
import { AgentDiscipline } from "../../actors/discipline.js";
import { QuietHoursRunner } from "../../actors/quiet-hours-runner.js";
import type { QuietHoursEmitted } from "../../actors/quiet-hours.js";
import type { DailyWindow } from "../../config/index.js";

const at = (iso: string): number => Date.parse(iso);
const BERLIN: DailyWindow = { start: "23:30", end: "06:30", timeZone: "Europe/Berlin" };
const log = pino({ level: "silent" });

/** A simulated clock and the one timer the runner arms: `advance` moves time and fires what came due. */
function simulated(startIso: string) {
  const clock = { t: at(startIso), now() { return this.t; } };
  const timers = new Map<string, { at: number; fn: () => void }>();
  const scheduler = {
    schedule: (key: string, due: number, fn: () => void) => void timers.set(key, { at: due, fn }),
    cancel: (key: string) => void timers.delete(key),
  };
  const advance = (iso: string) => {
    clock.t = at(iso);
    for (const [key, timer] of [...timers]) if (timer.at <= clock.t) { timers.delete(key); timer.fn(); }
  };
  return { clock, scheduler, timers, advance };
}

describe("QuietHoursRunner (the running chart)", () => {
  it("goes active → quiet → active at the boundaries on a simulated clock, announcing each transition and re-arming", () => {
    const sim = simulated("2026-01-15T12:00:00Z");
    const runner = new QuietHoursRunner({ window: BERLIN, clock: sim.clock, scheduler: sim.scheduler, log }).start();
    const events: QuietHoursEmitted[] = [];
    runner.onChange((e) => events.push(e));
    assert.deepEqual(runner.view(), { state: "active", nextBoundaryAt: at("2026-01-15T22:30:00Z") });
    assert.equal(sim.timers.get("quiet-hours:boundary")?.at, at("2026-01-15T22:30:00Z"));
    sim.advance("2026-01-15T22:30:00Z");
    assert.deepEqual(runner.view(), { state: "quiet", nextBoundaryAt: at("2026-01-16T05:30:00Z") });
    assert.deepEqual(events, [{ type: "quietHours.began", at: at("2026-01-15T22:30:00Z"), until: at("2026-01-16T05:30:00Z") }]);
    assert.equal(sim.timers.get("quiet-hours:boundary")?.at, at("2026-01-16T05:30:00Z"));
    sim.advance("2026-01-16T05:30:00Z");
    assert.deepEqual(runner.view(), { state: "active", nextBoundaryAt: at("2026-01-16T22:30:00Z") });
    assert.deepEqual(events.at(-1), { type: "quietHours.ended", at: at("2026-01-16T05:30:00Z"), nextQuietAt: at("2026-01-16T22:30:00Z") });
    runner.stop();
    assert.equal(sim.timers.size, 0, "stop cancels the boundary timer");
  });

  it("at(now) answers for the caller's instant even when the boundary timer has not fired yet", () => {
    const sim = simulated("2026-01-15T12:00:00Z");
    const runner = new QuietHoursRunner({ window: BERLIN, clock: sim.clock, scheduler: sim.scheduler, log }).start();
    assert.equal(runner.at(at("2026-01-15T22:45:00Z")).state, "quiet");
    runner.stop();
  });

  it("holds an agent's cycles while quiet and lets them run again once the chart leaves quiet", () => {
    const sim = simulated("2026-01-15T22:00:00Z");
    const runner = new QuietHoursRunner({ window: BERLIN, clock: sim.clock, scheduler: sim.scheduler, log }).start();
    const discipline = new AgentDiscipline({ quietHours: runner, now: () => sim.clock.now(), log, restored: undefined, onChange: () => undefined });
    assert.equal(discipline.mayRunCycle(sim.clock.now()), true);
    sim.advance("2026-01-15T23:00:00Z");
    assert.equal(runner.view().state, "quiet");
    assert.equal(discipline.mayRunCycle(sim.clock.now()), false, "held in quiet");
    assert.equal(discipline.cycleAllowedAt(sim.clock.now()), at("2026-01-16T05:30:00Z"), "resumes at the chart's boundary");
    sim.advance("2026-01-16T05:30:00Z");
    assert.equal(runner.view().state, "active");
    assert.equal(discipline.mayRunCycle(sim.clock.now()), true, "resumed after");
    discipline.stop();
    runner.stop();
  });
});
