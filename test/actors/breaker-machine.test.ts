import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createActor, initialTransition, transition } from "xstate";
import { allowsWork, breakerMachine, breakerSummary, type BreakerEmitted, type BreakerEvent, type BreakerSnapshot } from "../../actors/breaker-machine.js";

const NOW = 1_700_000_000_000;
const MIN = 60_000;
type Action = { type: string; params?: unknown };

/** The events the chart emits for the host, as data. */
function emitted(actions: ReadonlyArray<Action>): BreakerEmitted[] {
  return actions.filter((a) => a.type === "xstate.emit").map((a) => (a.params as { event: BreakerEmitted }).event);
}

function closed(): BreakerSnapshot {
  return initialTransition(breakerMachine, {})[0];
}

/** Sends the events in order and returns the last snapshot with everything emitted on the way. */
function run(start: BreakerSnapshot, ...events: BreakerEvent[]): [BreakerSnapshot, BreakerEmitted[]] {
  let snapshot = start;
  const all: BreakerEmitted[] = [];
  for (const event of events) {
    const [next, actions] = transition(breakerMachine, snapshot, event);
    snapshot = next;
    all.push(...emitted(actions));
  }
  return [snapshot, all];
}

const fail = (now = NOW): BreakerEvent => ({ type: "TASK_FAILED", now });
const succeed = (now = NOW): BreakerEvent => ({ type: "TASK_SUCCEEDED", now });
const started = (now = NOW): BreakerEvent => ({ type: "TASK_STARTED", now });
const tick = (now: number): BreakerEvent => ({ type: "TICK", now });

const opened = (): BreakerSnapshot => run(closed(), fail(), fail(), fail())[0];
const halfOpen = (): BreakerSnapshot => run(opened(), tick(NOW + 5 * MIN))[0];

describe("breaker chart, pure transitions", () => {
  it("starts closed, allowing work, with nothing emitted", () => {
    const [snapshot, actions] = initialTransition(breakerMachine, {});
    assert.equal(snapshot.value, "closed");
    assert.equal(allowsWork(snapshot), true);
    assert.deepEqual(emitted(actions), []);
    assert.deepEqual(breakerSummary(snapshot), { state: "closed", consecutiveFailures: 0, reopenCount: 0 });
  });

  it("two failures stay closed; the third opens with openUntil = now + 5 min and says so", () => {
    const [two, quiet] = run(closed(), fail(), fail());
    assert.deepEqual([two.value, two.context.consecutiveFailures, quiet], ["closed", 2, []]);
    const [open, events] = run(two, fail(NOW + 1_000));
    assert.equal(open.value, "open");
    assert.equal(open.context.openUntil, NOW + 1_000 + 5 * MIN);
    assert.deepEqual(events, [{ type: "breaker.opened", openUntil: NOW + 1_000 + 5 * MIN, reopenCount: 0, consecutiveFailures: 3 }]);
    assert.equal(allowsWork(open), false);
    assert.deepEqual(breakerSummary(open), { state: "open", consecutiveFailures: 3, openUntil: NOW + 1_000 + 5 * MIN, reopenCount: 0 });
  });

  it("a success in between resets the count: failures must be consecutive", () => {
    const [snapshot] = run(closed(), fail(), fail(), succeed(), fail(), fail());
    assert.deepEqual([snapshot.value, snapshot.context.consecutiveFailures], ["closed", 2]);
  });

  it("a TICK before openUntil stays open; at openUntil it goes half-open", () => {
    const [early, none] = run(opened(), tick(NOW + 5 * MIN - 1));
    assert.deepEqual([early.value, none], ["open", []]);
    const [half, events] = run(early, tick(NOW + 5 * MIN));
    assert.equal(half.value, "halfOpen");
    assert.deepEqual(events, [{ type: "breaker.halfOpened", at: NOW + 5 * MIN }]);
    assert.equal(breakerSummary(half).state, "half-open");
  });

  it("open ignores task outcomes of tasks started before it opened", () => {
    const [snapshot, events] = run(opened(), succeed(), fail());
    assert.deepEqual([snapshot.value, snapshot.context.openUntil, events], ["open", NOW + 5 * MIN, []]);
  });

  it("half-open lets one TASK_STARTED through, then no more until its outcome", () => {
    const half = halfOpen();
    assert.equal(allowsWork(half), true);
    assert.equal(run(half, fail(), succeed())[0].value, "halfOpen", "outcomes without a trial are not the trial's");
    const [trial] = run(half, started());
    assert.equal(trial.context.trialInFlight, true);
    assert.equal(allowsWork(trial), false);
    const [again] = run(trial, started(), tick(NOW + 60 * MIN));
    assert.deepEqual([again.value, allowsWork(again)], ["halfOpen", false]);
  });

  it("the trial's success closes the breaker with reopenCount 0 and a clean count", () => {
    const [reopened] = run(halfOpen(), started(), fail(NOW + 6 * MIN));
    const [half] = run(reopened, tick(NOW + 16 * MIN));
    const [snapshot, events] = run(half, started(), succeed(NOW + 17 * MIN));
    assert.equal(snapshot.value, "closed");
    assert.deepEqual(breakerSummary(snapshot), { state: "closed", consecutiveFailures: 0, reopenCount: 0 });
    assert.deepEqual(events, [{ type: "breaker.closed", at: NOW + 17 * MIN, reason: "trial-succeeded" }]);
    assert.equal(allowsWork(snapshot), true);
  });

  it("each failed trial re-opens with the next cooldown: 10, 20, 40, 60, then 60 again", () => {
    let snapshot = halfOpen();
    let now = NOW + 5 * MIN;
    for (const [reopenCount, minutes] of [[1, 10], [2, 20], [3, 40], [4, 60], [5, 60], [6, 60]] as const) {
      const [open, events] = run(snapshot, started(now), fail(now));
      assert.equal(open.value, "open");
      assert.equal(open.context.openUntil, now + minutes * MIN, `re-open ${reopenCount} waits ${minutes} min`);
      assert.deepEqual(events, [{ type: "breaker.opened", openUntil: now + minutes * MIN, reopenCount, consecutiveFailures: 3 }]);
      now += minutes * MIN;
      snapshot = run(open, tick(now))[0];
      assert.equal(snapshot.value, "halfOpen");
    }
  });

  for (const [name, from] of [["open", opened], ["halfOpen", () => run(halfOpen(), started())[0]]] as const) {
    it(`RESET from ${name} closes it and clears every counter`, () => {
      const [snapshot, events] = run(from(), { type: "RESET", now: NOW + MIN });
      assert.equal(snapshot.value, "closed");
      assert.deepEqual(breakerSummary(snapshot), { state: "closed", consecutiveFailures: 0, reopenCount: 0 });
      assert.equal(snapshot.context.trialInFlight, false);
      assert.deepEqual(events, [{ type: "breaker.closed", at: NOW + MIN, reason: "reset" }]);
    });
  }

  it("a held task (quiet hours, a spent cap) is no failure: any number of them leave it closed; a held trial frees the trial", () => {
    const held = (now = NOW): BreakerEvent => ({ type: "TASK_HELD", now });
    const [afterHolds, said] = run(closed(), fail(), started(), held(), started(), held(), started(), held(), started(), held());
    assert.deepEqual([afterHolds.value, afterHolds.context.consecutiveFailures, said], ["closed", 1, []], "holds neither count nor reset");
    const [trialHeld] = run(halfOpen(), started(), held());
    assert.deepEqual([trialHeld.value, trialHeld.context.trialInFlight, allowsWork(trialHeld)], ["halfOpen", false, true], "the next task may be the trial");
    const [closedAfter] = run(trialHeld, started(), succeed());
    assert.equal(closedAfter.value, "closed");
  });

  it("honours a custom threshold and cooldown list", () => {
    const [start] = initialTransition(breakerMachine, { threshold: 1, cooldownsMinutes: [1, 2] });
    const [open] = run(start, fail());
    assert.equal(open.context.openUntil, NOW + MIN);
    const [reopened] = run(open, tick(NOW + MIN), started(), fail(NOW + MIN));
    assert.equal(reopened.context.openUntil, NOW + 3 * MIN);
  });
});

describe("breaker chart, running as an actor", () => {
  it("a snapshot persisted while open survives a JSON round trip, keeps openUntil and half-opens on a later TICK", () => {
    const before = createActor(breakerMachine, { input: {} }).start();
    for (let i = 0; i < 3; i++) before.send(fail());
    assert.equal(before.getSnapshot().value, "open");
    const persisted: unknown = JSON.parse(JSON.stringify(before.getPersistedSnapshot()));
    before.stop(); // the process dies here

    const after = createActor(breakerMachine, { snapshot: persisted as ReturnType<typeof before.getPersistedSnapshot>, input: {} });
    const heard: BreakerEmitted[] = [];
    after.on("*", (event) => heard.push(event));
    after.start();
    assert.equal(after.getSnapshot().value, "open");
    assert.equal(after.getSnapshot().context.openUntil, NOW + 5 * MIN, "the absolute deadline, not one recomputed on restore");
    after.send(tick(NOW + 4 * MIN));
    assert.equal(after.getSnapshot().value, "open");
    after.send(tick(NOW + 5 * MIN + 1));
    assert.equal(after.getSnapshot().value, "halfOpen");
    assert.deepEqual(heard, [{ type: "breaker.halfOpened", at: NOW + 5 * MIN + 1 }]);
    after.stop();
  });
});
