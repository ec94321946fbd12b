import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino } from "pino";
import { AgentDiscipline } from "../../actors/discipline.js";
import { CycleScheduler, type SchedulerTimers } from "../../actors/cycle-scheduler.js";
import type { DailyWindow } from "../../config/index.js";
import { QuietHoursRunner } from "../../actors/quiet-hours-runner.js";

const at = (iso: string): number => Date.parse(iso);
const MIN = 60_000;
const BERLIN: DailyWindow = { start: "23:30", end: "06:30", timeZone: "Europe/Berlin" };
const log = pino({ level: "silent" });

function discipline(clock: { t: number }, restored?: unknown, onChange = () => undefined): AgentDiscipline {
  // the running chart; no boundary timer needed, since the discipline TICKs it with the time it asks about
  const quietHours = new QuietHoursRunner({ window: BERLIN, clock: { now: () => clock.t }, scheduler: { schedule: () => undefined, cancel: () => undefined }, log }).start();
  return new AgentDiscipline({ quietHours, now: () => clock.t, log, restored, onChange });
}

/** The deadlines the host hands the runtime scheduler instead of asking every second. */
describe("AgentDiscipline deadlines", () => {
  it("a due cycle may run at once while active, at the end of quiet hours (DST-correct), not at all while the breaker is open", () => {
    const clock = { t: at("2026-03-28T12:00:00Z") };
    const d = discipline(clock);
    assert.equal(d.cycleAllowedAt(clock.t), clock.t);
    // spring-forward night: quiet from 23:30 CET until 06:30 CEST
    assert.equal(d.cycleAllowedAt(at("2026-03-28T23:00:00Z")), at("2026-03-29T04:30:00Z"));
    assert.equal(d.cycleAllowedAt(at("2026-03-29T04:30:00Z")), at("2026-03-29T04:30:00Z"), "the boundary itself is active");
    for (let i = 0; i < 3; i++) d.taskFailed();
    assert.equal(d.cycleAllowedAt(clock.t), undefined, "the breaker's own change is the cue");
    d.stop();
  });

  it("an open breaker names when its cooldown ends; a TICK then half-opens it; a failed trial doubles the cooldown", () => {
    const clock = { t: at("2026-01-15T12:00:00Z") };
    let changes = 0;
    const d = discipline(clock, undefined, () => void changes++);
    assert.equal(d.cooldownEndsAt(), undefined, "closed: no deadline");
    for (let i = 0; i < 3; i++) d.taskFailed();
    assert.equal(d.cooldownEndsAt(), clock.t + 5 * MIN);
    const opened = changes;
    d.tick(clock.t + 5 * MIN - 1);
    assert.equal(d.summary().state, "open");
    assert.equal(changes, opened, "a TICK before the deadline changes nothing");
    clock.t += 5 * MIN;
    d.tick(clock.t);
    assert.equal(d.summary().state, "half-open");
    assert.equal(d.cooldownEndsAt(), undefined);
    d.taskStarted();
    d.taskFailed();
    assert.equal(d.cooldownEndsAt(), clock.t + 10 * MIN);
    d.stop();
  });

  it("a restored open breaker keeps its absolute deadline; the scheduler wakes it there", () => {
    const clock = { t: at("2026-01-15T12:00:00Z") };
    const first = discipline(clock);
    for (let i = 0; i < 3; i++) first.taskFailed();
    const persisted = first.persisted();
    const openUntil = first.cooldownEndsAt()!;
    first.stop();

    clock.t += 2 * MIN; // the process was away for two minutes
    const restored = discipline(clock, persisted);
    assert.equal(restored.cooldownEndsAt(), openUntil);
    const timers: SchedulerTimers & { fire?: () => void; delay?: number } = {
      now: () => clock.t,
      set(fn, ms) {
        timers.fire = fn;
        timers.delay = ms;
        return 1;
      },
      clear: () => undefined,
    };
    const scheduler = new CycleScheduler({ timers, log });
    scheduler.schedule("breaker", openUntil, () => restored.tick(clock.t));
    assert.equal(timers.delay, 3 * MIN, "armed for the rest of the cooldown");
    clock.t = openUntil;
    timers.fire!();
    assert.equal(restored.summary().state, "half-open");
    restored.stop();
  });
});
