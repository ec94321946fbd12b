import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { initialTransition, transition } from "xstate";
import { budgetMachine, budgetStateOf, roundUsd, stricter, type BudgetEmitted, type BudgetEvent, type BudgetInput, type BudgetSnapshot } from "../../router/budget-machine.js";
import { fleetDay, nextMidnight } from "../../config/index.js";

const at = (iso: string): number => Date.parse(iso);
const HOUR = 3_600_000;
type Action = { type: string; params?: unknown };

function emitted(actions: ReadonlyArray<Action>): BudgetEmitted[] {
  return actions.filter((a) => a.type === "xstate.emit").map((a) => (a.params as { event: BudgetEmitted }).event);
}

function start(input: Partial<BudgetInput> & { now: number }): [BudgetSnapshot, BudgetEmitted[]] {
  const [snapshot, actions] = initialTransition(budgetMachine, { capUsd: 10, downgradeAt: 0.8, timeZone: "Europe/Berlin", ...input });
  return [snapshot, emitted(actions)];
}

/** Sends the events in order (a simulated clock: every event carries its own `now`); returns the last snapshot and all emissions. */
function run(snapshot: BudgetSnapshot, ...events: BudgetEvent[]): [BudgetSnapshot, BudgetEmitted[]] {
  const all: BudgetEmitted[] = [];
  for (const event of events) {
    const [next, actions] = transition(budgetMachine, snapshot, event);
    snapshot = next;
    all.push(...emitted(actions));
  }
  return [snapshot, all];
}

const spend = (spentUsd: number, now: number): BudgetEvent => ({ type: "SPEND_CHANGED", spentUsd, now });
const tick = (now: number): BudgetEvent => ({ type: "TICK", now });

describe("budgetStateOf and stricter", () => {
  it("79.9 % is normal, exactly 80 % downgraded, exactly 100 % nanoOnly (>=)", () => {
    assert.equal(budgetStateOf(7.99, 10, 0.8), "normal");
    assert.equal(budgetStateOf(8, 10, 0.8), "downgraded");
    assert.equal(budgetStateOf(9.99, 10, 0.8), "downgraded");
    assert.equal(budgetStateOf(10, 10, 0.8), "nanoOnly");
    assert.equal(budgetStateOf(12, 10, 0.8), "nanoOnly");
  });

  it("compares as written, not as floating point happens to round", () => {
    // 3 × 0.8 is 2.4000000000000004 and 0.1 + 0.2 is 0.30000000000000004 in binary floating point
    assert.equal(budgetStateOf(2.4, 3, 0.8), "downgraded");
    assert.equal(budgetStateOf(0.1 + 0.2, 0.3, 0.8), "nanoOnly");
    assert.equal(roundUsd(0.1 + 0.2), 0.3);
  });

  it("a zero cap admits only nano from the first call", () => {
    assert.equal(budgetStateOf(0, 0, 0.8), "nanoOnly");
  });

  it("stricter picks the more restrictive state, in either order", () => {
    assert.equal(stricter("normal", "downgraded"), "downgraded");
    assert.equal(stricter("nanoOnly", "downgraded"), "nanoOnly");
    assert.equal(stricter("downgraded", "nanoOnly"), "nanoOnly");
    assert.equal(stricter("normal", "normal"), "normal");
  });
});

describe("fleet day", () => {
  it("is the local date and changes at local midnight", () => {
    assert.equal(fleetDay(at("2026-06-15T21:59:59Z"), "Europe/Berlin"), "2026-06-15");
    assert.equal(fleetDay(at("2026-06-15T22:00:00Z"), "Europe/Berlin"), "2026-06-16");
    assert.equal(fleetDay(at("2026-06-15T22:00:00Z"), "UTC"), "2026-06-15");
    assert.equal(nextMidnight(at("2026-06-15T12:00:00Z"), "Europe/Berlin"), at("2026-06-15T22:00:00Z"));
    // strictly after: at midnight the next one is a day away
    assert.equal(nextMidnight(at("2026-06-15T22:00:00Z"), "Europe/Berlin"), at("2026-06-16T22:00:00Z"));
  });

  it("DST days in Berlin are 23 and 25 hours long", () => {
    const springStart = at("2026-03-28T23:00:00Z"); // 00:00 CET
    assert.equal(nextMidnight(springStart, "Europe/Berlin") - springStart, 23 * HOUR);
    const autumnStart = at("2026-10-24T22:00:00Z"); // 00:00 CEST
    assert.equal(nextMidnight(autumnStart, "Europe/Berlin") - autumnStart, 25 * HOUR);
    // the repeated hour (02:00–03:00 twice) is still the same day
    assert.equal(fleetDay(at("2026-10-25T00:30:00Z"), "Europe/Berlin"), "2026-10-25");
    assert.equal(fleetDay(at("2026-10-25T01:30:00Z"), "Europe/Berlin"), "2026-10-25");
  });

  it("a midnight skipped by spring-forward happens at the first instant after the gap", () => {
    // Chile moves 2026-09-06 00:00 (-04) to 01:00 (-03): the day begins at 04:00Z
    const midnight = nextMidnight(at("2026-09-05T12:00:00Z"), "America/Santiago");
    assert.equal(midnight, at("2026-09-06T04:00:00Z"));
    assert.equal(fleetDay(midnight - 1, "America/Santiago"), "2026-09-05");
    assert.equal(fleetDay(midnight, "America/Santiago"), "2026-09-06");
  });
});

describe("budget chart, pure transitions on a simulated clock", () => {
  const NOON = at("2026-06-15T10:00:00Z"); // 12:00 in Berlin (CEST)

  it("starts in the state its spend puts it in, announcing nothing", () => {
    const [normal, none] = start({ now: NOON });
    assert.equal(normal.value, "normal");
    assert.deepEqual(none, []);
    assert.equal(normal.context.day, "2026-06-15");
    assert.equal(normal.context.resetAt, at("2026-06-15T22:00:00Z"));
    const [restarted, quiet] = start({ now: NOON, spentUsd: 10 });
    assert.equal(restarted.value, "nanoOnly");
    assert.deepEqual(quiet, []);
  });

  it("normal → downgraded at exactly 80 % → nanoOnly at exactly 100 %, each change announced once", () => {
    const [s0] = start({ now: NOON });
    const [s1, e1] = run(s0, spend(7.99, NOON + 1));
    assert.equal(s1.value, "normal");
    assert.deepEqual(e1, []);
    const [s2, e2] = run(s1, spend(8, NOON + 2));
    assert.equal(s2.value, "downgraded");
    assert.deepEqual(e2, [{ type: "budget.stateChanged", from: "normal", to: "downgraded", spentUsd: 8, capUsd: 10, day: "2026-06-15", at: NOON + 2 }]);
    const [s3, e3] = run(s2, spend(9, NOON + 3));
    assert.equal(s3.value, "downgraded");
    assert.deepEqual(e3, []);
    const [s4, e4] = run(s3, spend(10, NOON + 4));
    assert.equal(s4.value, "nanoOnly");
    assert.deepEqual(e4.map((e) => e.type === "budget.stateChanged" && [e.from, e.to]), [["downgraded", "nanoOnly"]]);
  });

  it("jumps straight to nanoOnly, and steps back down when reservations are released", () => {
    const [s0] = start({ now: NOON });
    const [s1] = run(s0, spend(10.3, NOON + 1));
    assert.equal(s1.value, "nanoOnly");
    const [s2, e2] = run(s1, spend(8.5, NOON + 2));
    assert.equal(s2.value, "downgraded");
    assert.deepEqual(e2.map((e) => e.type === "budget.stateChanged" && [e.from, e.to]), [["nanoOnly", "downgraded"]]);
  });

  /** Spends the cap at `spentAt`, then checks that a TICK before `midnight` keeps nanoOnly and one at it resets. */
  function resetsAt(timeZone: string, spentAt: number, midnight: number, newDay: string, nextReset: number): void {
    const [s0] = start({ now: spentAt, timeZone });
    const [spent] = run(s0, spend(10, spentAt));
    assert.equal(spent.value, "nanoOnly");
    assert.equal(spent.context.resetAt, midnight);
    const [before, none] = run(spent, tick(midnight - 1));
    assert.equal(before.value, "nanoOnly");
    assert.deepEqual(none, []);
    const [after, events] = run(before, tick(midnight));
    assert.equal(after.value, "normal");
    assert.equal(after.context.spentUsd, 0);
    assert.equal(after.context.day, newDay);
    assert.equal(after.context.resetAt, nextReset);
    assert.deepEqual(events, [
      { type: "budget.reset", day: newDay, previousDay: spent.context.day, previousSpentUsd: 10, at: midnight, nextResetAt: nextReset },
      { type: "budget.stateChanged", from: "nanoOnly", to: "normal", spentUsd: 0, capUsd: 10, day: newDay, at: midnight },
    ]);
  }

  it("resets at midnight in Berlin on an ordinary day", () => {
    resetsAt("Europe/Berlin", NOON, at("2026-06-15T22:00:00Z"), "2026-06-16", at("2026-06-16T22:00:00Z"));
  });

  it("resets at midnight in Berlin on the spring-forward day (23 h) and the day after", () => {
    resetsAt("Europe/Berlin", at("2026-03-28T12:00:00Z"), at("2026-03-28T23:00:00Z"), "2026-03-29", at("2026-03-29T22:00:00Z"));
    resetsAt("Europe/Berlin", at("2026-03-29T01:30:00Z"), at("2026-03-29T22:00:00Z"), "2026-03-30", at("2026-03-30T22:00:00Z"));
  });

  it("resets at midnight in Berlin on the fall-back day (25 h), not in the repeated hour", () => {
    resetsAt("Europe/Berlin", at("2026-10-24T12:00:00Z"), at("2026-10-24T22:00:00Z"), "2026-10-25", at("2026-10-25T23:00:00Z"));
    const [s0] = start({ now: at("2026-10-25T00:15:00Z"), timeZone: "Europe/Berlin" }); // 02:15 CEST
    const [repeated] = run(s0, spend(10, at("2026-10-25T00:15:00Z")), tick(at("2026-10-25T01:15:00Z"))); // 02:15 CET
    assert.equal(repeated.value, "nanoOnly");
    resetsAt("Europe/Berlin", at("2026-10-25T12:00:00Z"), at("2026-10-25T23:00:00Z"), "2026-10-26", at("2026-10-26T23:00:00Z"));
  });

  it("resets at midnight in UTC", () => {
    resetsAt("UTC", at("2026-06-15T23:59:00Z"), at("2026-06-16T00:00:00Z"), "2026-06-16", at("2026-06-17T00:00:00Z"));
  });

  it("a spend reported after midnight is booked on the new day", () => {
    const [s0] = start({ now: NOON });
    const [spent] = run(s0, spend(10, NOON));
    const [next, events] = run(spent, spend(8, at("2026-06-15T22:00:05Z")));
    assert.equal(next.value, "downgraded");
    assert.equal(next.context.day, "2026-06-16");
    assert.deepEqual(events.map((e) => e.type), ["budget.reset", "budget.stateChanged"]);
  });

  it("a tick long after a missed midnight resets to the day of the tick", () => {
    const [s0] = start({ now: NOON });
    const [spent] = run(s0, spend(10, NOON));
    const [after] = run(spent, tick(at("2026-06-18T09:00:00Z")));
    assert.equal(after.value, "normal");
    assert.equal(after.context.day, "2026-06-18");
    assert.equal(after.context.resetAt, at("2026-06-18T22:00:00Z"));
  });

  it("a snapshot persisted as JSON and restored still resets at its deadline (no lost timer)", () => {
    const [s0] = start({ now: NOON });
    const [spent] = run(s0, spend(10, NOON));
    const stored = JSON.parse(JSON.stringify(budgetMachine.getPersistedSnapshot(spent))) as Parameters<typeof budgetMachine.resolveState>[0];
    const restored = budgetMachine.resolveState({ value: stored.value, context: stored.context });
    assert.equal(restored.value, "nanoOnly");
    const [after] = run(restored, tick(at("2026-06-15T22:00:00Z")));
    assert.equal(after.value, "normal");
  });
});
