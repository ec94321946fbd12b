import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CycleGate } from "../../actors/cycle-gate.js";
import type { CycleScheduler } from "../../actors/cycle-scheduler.js";
import type { AgentDiscipline } from "../../actors/discipline.js";
import { firstCycleAfter } from "../../actors/stagger.js";

const CYCLE = 2_500;

/** A gate over a scheduler that only remembers what it was asked, a chart that is always idle, and a settable clock. */
function gate(options: { nextCycleAt: () => number; allowedAt?: (now: number) => number | undefined }) {
  const clock = { t: 0, now: () => clock.t };
  const ticks: number[] = [];
  const armed = new Map<string, number>();
  const scheduler = { schedule: (key: string, at: number) => void armed.set(key, at), cancel: (key: string) => void armed.delete(key) } as unknown as CycleScheduler;
  const discipline = { cycleAllowedAt: options.allowedAt ?? ((now: number) => now), cooldownEndsAt: () => undefined } as unknown as AgentDiscipline;
  const g = new CycleGate({ agentId: "atlas", scheduler, clock, discipline: () => discipline, chart: () => ({ idle: true, nextCycleAt: options.nextCycleAt() }), tick: (at) => ticks.push(at), cycleMs: CYCLE });
  return { g, clock, ticks, armed };
}

describe("cycles keep their phase", () => {
  it("the first cycle falls on the agent's phase of the epoch's grid, within one cycle of the start", () => {
    assert.equal(firstCycleAfter(10_000, CYCLE, 700), 10_700);
    assert.equal(firstCycleAfter(10_700, CYCLE, 700), 13_200, "strictly after now");
    assert.equal(firstCycleAfter(11_000, CYCLE, 700), 13_200);
    for (const now of [0, 1, 999, 123_456_789]) {
      const first = firstCycleAfter(now, CYCLE, 700);
      assert.ok(first > now && first <= now + CYCLE && (first - 700) % CYCLE === 0, `${now} → ${first}`);
    }
  });

  it("a tick that fires a little late is taken at its due time, so the next is due a whole cycle after it; a wake-up or a long-overdue cycle starts from now", () => {
    let due = 12_200;
    const { g, clock, ticks } = gate({ nextCycleAt: () => due });
    clock.t = 12_237; // the timer was 37 ms late
    g.check();
    assert.deepEqual(ticks, [12_200]);
    due = 12_200 + CYCLE;
    clock.t = due + 3 * CYCLE; // busy for three cycles: one tick, from now
    g.check();
    assert.deepEqual(ticks, [12_200, clock.t]);
    due = clock.t + CYCLE;
    clock.t += 100;
    g.wake(); // early, on request: from now
    assert.deepEqual(ticks.at(-1), clock.t);
  });

  it("a cycle held by quiet hours is taken when they end, from then", () => {
    const { g, clock, ticks, armed } = gate({ nextCycleAt: () => 1_000, allowedAt: () => 5_000 });
    clock.t = 1_010;
    g.check();
    assert.deepEqual(ticks, []);
    assert.equal(armed.get("atlas:cycle"), 5_000);
    clock.t = 5_020;
    g.check();
    assert.deepEqual(ticks, [5_020]);
  });
});
