import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino } from "pino";
import { CycleScheduler, type SchedulerTimers } from "../../actors/cycle-scheduler.js";

const NOW = 1_700_000_000_000;
const silent = pino({ level: "silent" });

/** A simulated clock with one-shot timers: `advance` moves time and fires what came due, in due order. */
class FakeTimers implements SchedulerTimers {
  t = NOW;
  private nextId = 1;
  readonly pending = new Map<number, { due: number; fn: () => void }>();
  /** every delay a timer was armed with, in order */
  readonly delays: number[] = [];
  now = (): number => this.t;
  set = (fn: () => void, ms: number): unknown => {
    const id = this.nextId++;
    this.pending.set(id, { due: this.t + ms, fn });
    this.delays.push(ms);
    return id;
  };
  clear = (handle: unknown): void => {
    this.pending.delete(handle as number);
  };
  advance(ms: number): void {
    const until = this.t + ms;
    for (;;) {
      const next = [...this.pending.entries()].filter(([, p]) => p.due <= until).sort((a, b) => a[1].due - b[1].due)[0];
      if (!next) break;
      this.pending.delete(next[0]);
      this.t = Math.max(this.t, next[1].due);
      next[1].fn();
    }
    this.t = until;
  }
  /** fires a timer before the clock reaches its due time (a real timer may, by a millisecond) */
  fireEarly(): void {
    const [id, p] = [...this.pending.entries()][0]!;
    this.pending.delete(id);
    p.fn();
  }
}

function setup(log = silent): { timers: FakeTimers; scheduler: CycleScheduler; ran: string[] } {
  const timers = new FakeTimers();
  return { timers, scheduler: new CycleScheduler({ timers, log }), ran: [] };
}

describe("CycleScheduler", () => {
  it("runs each callback at its due time, in due order, with one timer armed for the earliest", () => {
    const { timers, scheduler, ran } = setup();
    for (const [key, at] of [["c", 3_000], ["a", 1_000], ["b", 2_000], ["b2", 2_000]] as const) {
      scheduler.schedule(key, NOW + at, () => ran.push(`${key}@${timers.now() - NOW}`));
    }
    assert.equal(timers.pending.size, 1, "one timer, however many entries");
    assert.equal(scheduler.size, 4);
    timers.advance(999);
    assert.deepEqual(ran, []);
    timers.advance(1);
    assert.deepEqual(ran, ["a@1000"]);
    timers.advance(5_000);
    assert.deepEqual(ran, ["a@1000", "b@2000", "b2@2000", "c@3000"], "ties run in the order they were scheduled");
    assert.equal(timers.pending.size, 0, "nothing left: no timer armed");
    assert.equal(scheduler.size, 0);
  });

  it("scheduling a key again moves it; cancel removes it; the timer follows the earliest", () => {
    const { timers, scheduler, ran } = setup();
    scheduler.schedule("a", NOW + 10_000, () => ran.push("a"));
    scheduler.schedule("b", NOW + 20_000, () => ran.push("b"));
    assert.deepEqual(timers.delays, [10_000]);
    scheduler.schedule("b", NOW + 5_000, () => ran.push("b moved"));
    assert.deepEqual(timers.delays, [10_000, 5_000], "re-armed for the new earliest");
    assert.equal(timers.pending.size, 1, "the old timer was cleared");
    assert.equal(scheduler.dueAt("b"), NOW + 5_000);
    scheduler.schedule("c", NOW + 30_000, () => ran.push("c"));
    assert.equal(timers.delays.length, 2, "a later entry does not re-arm");
    scheduler.cancel("b");
    assert.deepEqual(timers.delays.at(-1), 10_000);
    scheduler.cancel("missing");
    timers.advance(60_000);
    assert.deepEqual(ran, ["a", "c"], "one callback per key, the latest one; cancelled ones never run");
  });

  it("a due time in the past runs on the next timer, without delay", () => {
    const { timers, scheduler, ran } = setup();
    scheduler.schedule("late", NOW - 60_000, () => ran.push("late"));
    assert.deepEqual(timers.delays, [0]);
    timers.advance(0);
    assert.deepEqual(ran, ["late"]);
  });

  it("a callback that throws is logged and the others due with it still run", () => {
    const logged: unknown[] = [];
    const log = pino({ level: "error" }, { write: (line: string) => void logged.push(JSON.parse(line)) });
    const { timers, scheduler, ran } = setup(log);
    scheduler.schedule("a", NOW + 1_000, () => ran.push("a"));
    scheduler.schedule("boom", NOW + 1_000, () => {
      throw new Error("agent broke");
    });
    scheduler.schedule("c", NOW + 1_000, () => ran.push("c"));
    scheduler.schedule("d", NOW + 2_000, () => ran.push("d"));
    timers.advance(1_000);
    assert.deepEqual(ran, ["a", "c"]);
    assert.equal(logged.length, 1);
    assert.equal((logged[0] as { key: string }).key, "boom");
    timers.advance(1_000);
    assert.deepEqual(ran, ["a", "c", "d"], "the timer was re-armed after the failure");
  });

  it("a callback that re-schedules itself for now runs again on the next timer, not in a loop", () => {
    const { timers, scheduler } = setup();
    let runs = 0;
    const again = () => {
      runs++;
      if (runs < 3) scheduler.schedule("self", timers.now(), again);
    };
    scheduler.schedule("self", NOW + 1_000, again);
    scheduler.schedule("other", NOW + 1_000, () => scheduler.cancel("never"));
    scheduler.schedule("never", NOW + 1_000, () => assert.fail("cancelled by a callback in the same run"));
    const armed = timers.delays.length;
    timers.advance(1_000);
    assert.equal(runs, 3);
    assert.deepEqual(timers.delays.slice(armed), [0, 0], "each re-schedule was one new timer, armed after the run");
  });

  it("a timer that fires before the clock reaches the due time runs nothing and re-arms", () => {
    const { timers, scheduler, ran } = setup();
    scheduler.schedule("a", NOW + 1_000, () => ran.push("a"));
    timers.t = NOW + 999;
    timers.fireEarly();
    assert.deepEqual(ran, []);
    assert.equal(timers.pending.size, 1);
    assert.equal(timers.delays.at(-1), 1);
    timers.advance(1);
    assert.deepEqual(ran, ["a"]);
  });

  it("a due time beyond setTimeout's range is reached in steps", () => {
    const { timers, scheduler, ran } = setup();
    const days40 = 40 * 24 * 3_600_000;
    scheduler.schedule("far", NOW + days40, () => ran.push("far"));
    assert.equal(timers.delays[0], 2 ** 31 - 1);
    timers.advance(days40 - 1);
    assert.deepEqual(ran, []);
    timers.advance(1);
    assert.deepEqual(ran, ["far"]);
  });

  it("stop() drops every entry and the timer; later schedules are ignored", () => {
    const { timers, scheduler, ran } = setup();
    scheduler.schedule("a", NOW + 1_000, () => ran.push("a"));
    scheduler.schedule("b", NOW + 2_000, () => ran.push("b"));
    scheduler.stop();
    assert.equal(timers.pending.size, 0);
    scheduler.schedule("c", NOW + 500, () => ran.push("c"));
    timers.advance(10_000);
    assert.deepEqual(ran, []);
    assert.equal(scheduler.size, 0);
  });

  it("keeps due order through thousands of random schedules, moves and cancels", () => {
    const { timers, scheduler } = setup();
    let seed = 42;
    const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const expected = new Map<string, number>();
    const ran: [string, number][] = [];
    for (let i = 0; i < 5_000; i++) {
      const key = `k${Math.floor(random() * 1_000)}`;
      if (random() < 0.2) {
        scheduler.cancel(key);
        expected.delete(key);
      } else {
        const at = NOW + Math.floor(random() * 60_000);
        scheduler.schedule(key, at, () => ran.push([key, timers.now()]));
        expected.set(key, at);
      }
    }
    assert.equal(scheduler.size, expected.size);
    timers.advance(60_000);
    assert.equal(ran.length, expected.size, "every live key ran once");
    for (const [key, when] of ran) assert.equal(when, expected.get(key), `${key} ran at its due time`);
    for (let i = 1; i < ran.length; i++) assert.ok(ran[i - 1]![1] <= ran[i]![1], "in due order");
  });
});
