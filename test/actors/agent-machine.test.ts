import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createActor, fromPromise, initialTransition, transition, waitFor, type Actor, type SnapshotFrom } from "xstate";
import {
  agentMachine,
  type ActInput,
  type AgentEvent,
  type AgentInput,
  type Outcome,
  type Plan,
  type PlanInput,
  type ReportInput,
  type WorkItem,
} from "../../actors/agent-machine.js";
import type { DeliveryOutcome } from "../../actors/delivery-outcome.js";
import { decodeUnknown, encode, type Message } from "../../protocol/index.js";

const CYCLE_MS = 60_000;
const NOW = 1_700_000_000_000;
const INPUT: AgentInput = { agentId: "agent-1", cycleMs: CYCLE_MS, now: NOW };

type Snapshot = SnapshotFrom<typeof agentMachine>;
type Action = { type: string; params?: unknown };

function message(id: string, text = id): Message {
  return { messageId: id, role: "ROLE_USER", parts: [{ text }] };
}

function workItem(taskId: string): WorkItem {
  return { taskId, contextId: `ctx-${taskId}`, message: message(`msg-${taskId}`, `please do ${taskId}`) };
}

const OK: Outcome = { ok: true, artifacts: [{ artifactId: "art-1", parts: [{ text: "done" }] }] };

// ---------------------------------------------------------------------------------------------------------------------
// pure transitions: the chart's decisions and the effects it asks for, as data

/** The params of the child the actions start from `src` (plan, act or report), if any. */
function spawnOf(actions: ReadonlyArray<Action>, src: string): { id: string; input: unknown } | undefined {
  for (const action of actions) {
    const params = action.params as { id?: unknown; src?: unknown; input?: unknown } | undefined;
    if (action.type === "xstate.spawnChild" && params?.src === src && typeof params.id === "string") return { id: params.id, input: params.input };
  }
  return undefined;
}

function stoppedIds(actions: ReadonlyArray<Action>): string[] {
  return actions.filter((a) => a.type === "xstate.stopChild").map((a) => String((a.params as { id?: unknown }).id));
}

function spawnedSources(actions: ReadonlyArray<Action>): string[] {
  return actions.filter((a) => a.type === "xstate.spawnChild").map((a) => String((a.params as { src?: unknown }).src));
}

/** The event XState sends when an invoked promise resolves or rejects; the chart's events type does not name these. */
function done(id: string, output: unknown): AgentEvent {
  return { type: `xstate.done.actor.${id}`, output } as unknown as AgentEvent;
}
function failed(id: string, error: unknown): AgentEvent {
  return { type: `xstate.error.actor.${id}`, error } as unknown as AgentEvent;
}

/** Steps the chart and requires that it starts `src`, returning the next snapshot and the started child's id and input. */
function stepTo(snapshot: Snapshot, event: AgentEvent, src: string): [Snapshot, { id: string; input: unknown }] {
  const [next, actions] = transition(agentMachine, snapshot, event);
  const spawn = spawnOf(actions, src);
  assert.ok(spawn, `${event.type} starts ${src}; it started [${spawnedSources(actions).join(", ")}] and is in ${String(next.value)}`);
  return [next, spawn];
}

function idle(): Snapshot {
  return initialTransition(agentMachine, INPUT)[0];
}

/** A snapshot in `acting` on task `taskId`, with the id of the act child. */
function actingOn(taskId: string): [Snapshot, string] {
  const [planning, plan] = stepTo(idle(), { type: "TASK_ASSIGNED", item: workItem(taskId) }, "plan");
  const [acting, act] = stepTo(planning, done(plan.id, { kind: "work", item: workItem(taskId), skillId: "s" }), "act");
  return [acting, act.id];
}

describe("agent chart, pure transitions", () => {
  it("starts idle, with the first cycle due one cycle after `now`, and starts no effect", () => {
    const [snapshot, actions] = initialTransition(agentMachine, INPUT);
    assert.equal(snapshot.value, "idle");
    assert.equal(snapshot.context.nextCycleAt, NOW + CYCLE_MS);
    assert.equal(snapshot.context.completed, 0);
    assert.equal(snapshot.context.failed, 0);
    assert.deepEqual(snapshot.context.inbox, []);
    assert.deepEqual(spawnedSources(actions), []);
  });

  it("a CYCLE_TICK while idle goes to planning and asks plan about a cycle", () => {
    const [planning, plan] = stepTo(idle(), { type: "CYCLE_TICK", now: NOW + 61_000 }, "plan");
    assert.equal(planning.value, "planning");
    assert.deepEqual(plan.input, { agentId: "agent-1", trigger: "cycle", item: undefined, inbox: [] });
  });

  it("after a tick the next cycle is due at event.now + cycleMs, whatever the start time was", () => {
    const tickAt = NOW + 5 * CYCLE_MS + 1_234;
    const [planning] = transition(agentMachine, idle(), { type: "CYCLE_TICK", now: tickAt });
    assert.equal(planning.context.nextCycleAt, tickAt + CYCLE_MS);
  });

  it("a cycle whose plan is nothing goes back to idle without starting act or report", () => {
    const [planning, plan] = stepTo(idle(), { type: "CYCLE_TICK", now: NOW + CYCLE_MS }, "plan");
    const [after, actions] = transition(agentMachine, planning, done(plan.id, { kind: "nothing" }));
    assert.equal(after.value, "idle");
    assert.deepEqual(spawnedSources(actions), []);
    assert.equal(after.context.completed, 0);
    assert.equal(after.context.failed, 0);
    assert.equal(after.context.trigger, undefined);
    assert.equal(after.context.plan, undefined);
  });

  it("an assigned task runs plan → act → report, each with what the previous one produced, and counts as completed", () => {
    const item = workItem("t-1");
    const [planning, plan] = stepTo(idle(), { type: "TASK_ASSIGNED", item }, "plan");
    assert.deepEqual(plan.input, { agentId: "agent-1", trigger: "task", item, inbox: [] });

    const workPlan: Plan = { kind: "work", item, skillId: "summarise" };
    const [acting, act] = stepTo(planning, done(plan.id, workPlan), "act");
    assert.equal(acting.value, "acting");
    assert.deepEqual(act.input, { agentId: "agent-1", trigger: "task", plan: workPlan });

    const [reporting, report] = stepTo(acting, done(act.id, OK), "report");
    assert.equal(reporting.value, "reporting");
    assert.deepEqual(report.input, { agentId: "agent-1", item, outcome: OK });

    const [after, actions] = transition(agentMachine, reporting, done(report.id, undefined));
    assert.equal(after.value, "idle");
    assert.deepEqual(spawnedSources(actions), []);
    assert.equal(after.context.completed, 1);
    assert.equal(after.context.failed, 0);
    assert.equal(after.context.item, undefined, "the finished task is no longer held");
    assert.equal(after.context.outcome, undefined);
  });

  it("an assigned task does not move the next cycle", () => {
    const [planning] = transition(agentMachine, idle(), { type: "TASK_ASSIGNED", item: workItem("t-1") });
    assert.equal(planning.context.nextCycleAt, NOW + CYCLE_MS);
  });

  it("act failing reports ok:false with the reason and counts as failed", () => {
    const [acting, actId] = actingOn("t-1");
    const [reporting, report] = stepTo(acting, failed(actId, new Error("tool exploded")), "report");
    const outcome = (report.input as ReportInput).outcome;
    assert.equal(outcome.ok, false);
    assert.ok(!outcome.ok && outcome.reason.includes("tool exploded"), JSON.stringify(outcome));
    assert.ok(!("canceled" in outcome));
    const [after] = transition(agentMachine, reporting, done(report.id, undefined));
    assert.equal(after.context.failed, 1);
    assert.equal(after.context.completed, 0);
  });

  it("plan failing on a task skips act, reports ok:false and counts as failed", () => {
    const [planning, plan] = stepTo(idle(), { type: "TASK_ASSIGNED", item: workItem("t-1") }, "plan");
    const [reporting, report] = stepTo(planning, failed(plan.id, new Error("router down")), "report");
    const outcome = (report.input as ReportInput).outcome;
    assert.ok(!outcome.ok && outcome.reason.includes("router down"), JSON.stringify(outcome));
    const [after] = transition(agentMachine, reporting, done(report.id, undefined));
    assert.equal(after.value, "idle");
    assert.equal(after.context.failed, 1);
  });

  it("CANCEL for the task in hand while acting stops act and reports a canceled outcome, counted as neither", () => {
    const [acting, actId] = actingOn("t-1");
    const [reporting, actions] = transition(agentMachine, acting, { type: "CANCEL", taskId: "t-1" });
    assert.equal(reporting.value, "reporting");
    assert.ok(stoppedIds(actions).includes(actId), "act is stopped, which aborts its signal");
    const report = spawnOf(actions, "report");
    assert.ok(report);
    const outcome = (report.input as ReportInput).outcome;
    assert.deepEqual(outcome, { ok: false, canceled: true, reason: "task t-1 was canceled" });
    const [after] = transition(agentMachine, reporting, done(report.id, undefined));
    assert.equal(after.context.completed, 0);
    assert.equal(after.context.failed, 0);
  });

  it("CANCEL for another task id is ignored", () => {
    const [acting] = actingOn("t-1");
    const [after, actions] = transition(agentMachine, acting, { type: "CANCEL", taskId: "t-2" });
    assert.equal(after.value, "acting");
    assert.deepEqual(after.context, acting.context);
    assert.deepEqual(actions, []);
  });

  it("CANCEL while idle changes nothing", () => {
    const [after, actions] = transition(agentMachine, idle(), { type: "CANCEL", taskId: "t-1" });
    assert.equal(after.value, "idle");
    assert.deepEqual(after.context, idle().context);
    assert.deepEqual(actions, []);
  });

  it("CYCLE_TICK while busy is ignored (coalesced): same state, same deadline, no new effect", () => {
    const [planning, plan] = stepTo(idle(), { type: "TASK_ASSIGNED", item: workItem("t-1") }, "plan");
    const [acting, act] = stepTo(planning, done(plan.id, { kind: "work", item: workItem("t-1"), skillId: undefined }), "act");
    const [reporting] = stepTo(acting, done(act.id, OK), "report");
    for (const busy of [planning, acting, reporting]) {
      const [after, actions] = transition(agentMachine, busy, { type: "CYCLE_TICK", now: NOW + 10 * CYCLE_MS });
      assert.equal(after.value, busy.value);
      assert.deepEqual(after.context, busy.context, `${String(busy.value)} keeps its context`);
      assert.deepEqual(actions, [], `${String(busy.value)} starts nothing`);
    }
  });

  it("TASK_ASSIGNED while busy does not replace the task in hand", () => {
    const [acting] = actingOn("t-1");
    const [after, actions] = transition(agentMachine, acting, { type: "TASK_ASSIGNED", item: workItem("t-2") });
    assert.equal(after.value, "acting");
    assert.equal(after.context.item?.taskId, "t-1");
    assert.deepEqual(actions, []);
  });

  it("MESSAGE_RECEIVED is kept in every state, up to the latest 50", () => {
    const [planning, plan] = stepTo(idle(), { type: "TASK_ASSIGNED", item: workItem("t-1") }, "plan");
    const [acting, act] = stepTo(planning, done(plan.id, { kind: "work", item: workItem("t-1"), skillId: undefined }), "act");
    const [reporting] = stepTo(acting, done(act.id, OK), "report");
    for (const start of [idle(), planning, acting, reporting]) {
      let snapshot = start;
      for (let i = 0; i < 60; i++) {
        const [next, actions] = transition(agentMachine, snapshot, { type: "MESSAGE_RECEIVED", message: message(`in-${i}`) });
        assert.equal(next.value, start.value, "a message does not move the chart");
        assert.deepEqual(spawnedSources(actions), []);
        snapshot = next;
      }
      const ids = snapshot.context.inbox.map((m) => m.messageId);
      assert.equal(ids.length, 50, String(start.value));
      assert.equal(ids[0], "in-10", "the oldest are dropped");
      assert.equal(ids[49], "in-59");
    }
  });

  it("the inbox is handed to the next plan and then cleared", () => {
    let snapshot = idle();
    for (const id of ["a", "b", "c"]) [snapshot] = transition(agentMachine, snapshot, { type: "MESSAGE_RECEIVED", message: message(id) });
    const [planning, plan] = stepTo(snapshot, { type: "CYCLE_TICK", now: NOW + CYCLE_MS }, "plan");
    assert.deepEqual(
      (plan.input as PlanInput).inbox.map((m) => m.messageId),
      ["a", "b", "c"],
    );
    const [after] = transition(agentMachine, planning, done(plan.id, { kind: "nothing" }));
    assert.deepEqual(after.context.inbox, []);
    const [, nextPlan] = stepTo(after, { type: "CYCLE_TICK", now: NOW + 2 * CYCLE_MS }, "plan");
    assert.deepEqual((nextPlan.input as PlanInput).inbox, [], "a message is planned on once");
  });

  it(
    "a message that arrives while plan runs is kept for the next plan",
    () => {
      const [planning, plan] = stepTo(idle(), { type: "CYCLE_TICK", now: NOW + CYCLE_MS }, "plan");
      const [withLate] = transition(agentMachine, planning, { type: "MESSAGE_RECEIVED", message: message("late") });
      const [after] = transition(agentMachine, withLate, done(plan.id, { kind: "nothing" }));
      assert.deepEqual(
        after.context.inbox.map((m) => m.messageId),
        ["late"],
      );
    },
  );

  it(
    "CANCEL for the task in hand while planning means act never runs and the task is reported canceled",
    () => {
      const [planning, plan] = stepTo(idle(), { type: "TASK_ASSIGNED", item: workItem("t-1") }, "plan");
      const [canceled] = transition(agentMachine, planning, { type: "CANCEL", taskId: "t-1" });
      const [after, actions] = transition(agentMachine, canceled, done(plan.id, { kind: "work", item: workItem("t-1"), skillId: undefined }));
      assert.equal(spawnOf(actions, "act"), undefined, "no act (no model call, no tool) for a canceled task");
      assert.equal(after.value, "reporting");
      assert.equal(after.context.outcome && !after.context.outcome.ok && "canceled" in after.context.outcome, true);
    },
  );

  it(
    "an assigned task whose plan is nothing is still reported, so the Task settles and its message is acked",
    () => {
      const [planning, plan] = stepTo(idle(), { type: "TASK_ASSIGNED", item: workItem("t-1") }, "plan");
      const [, actions] = transition(agentMachine, planning, done(plan.id, { kind: "nothing" }));
      const report = spawnOf(actions, "report");
      assert.ok(report, "report is started for the task");
      assert.equal((report.input as ReportInput).item.taskId, "t-1");
    },
  );
});

// ---------------------------------------------------------------------------------------------------------------------
// running actors with fake effects: what the host sees

interface Effects {
  plan?(input: PlanInput): Promise<Plan>;
  act?(input: ActInput, signal: AbortSignal): Promise<Outcome>;
  report?(input: ReportInput): Promise<void>;
}

/** The chart with recording fakes of its three effects; by default a task is planned as work, a cycle as nothing. */
function withFakes(effects: Effects = {}) {
  const calls = { plan: [] as PlanInput[], act: [] as Array<{ input: ActInput; signal: AbortSignal }>, report: [] as ReportInput[] };
  const machine = agentMachine.provide({
    actors: {
      plan: fromPromise<Plan, PlanInput>(async ({ input }) => {
        calls.plan.push(input);
        if (effects.plan) return effects.plan(input);
        return input.item ? { kind: "work", item: input.item, skillId: undefined } : { kind: "nothing" };
      }),
      act: fromPromise<Outcome, ActInput>(async ({ input, signal }) => {
        calls.act.push({ input, signal });
        return effects.act ? effects.act(input, signal) : OK;
      }),
      report: fromPromise<DeliveryOutcome, ReportInput>(async ({ input }) => {
        calls.report.push(input);
        if (effects.report) await effects.report(input);
        return { kind: "done" };
      }),
    },
  });
  return { machine, calls };
}

type Running = Actor<ReturnType<typeof withFakes>["machine"]>;

function until(actor: Running, predicate: (s: ReturnType<Running["getSnapshot"]>) => boolean): Promise<unknown> {
  return waitFor(actor, predicate, { timeout: 2_000 });
}

function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** An act that only ends when its signal aborts, as a well-behaved effect does. */
function actUntilAborted(_input: ActInput, signal: AbortSignal): Promise<Outcome> {
  return new Promise((_resolve, reject) => signal.addEventListener("abort", () => reject(signal.reason), { once: true }));
}

describe("agent chart, running with fake effects", () => {
  it("passes through waking on its way from idle to planning", async () => {
    const { machine } = withFakes();
    const seen: string[] = [];
    const actor = createActor(machine, {
      input: INPUT,
      inspect: (event) => {
        if (event.type === "@xstate.microstep") seen.push(String((event.snapshot as Snapshot).value));
      },
    });
    actor.start();
    actor.send({ type: "CYCLE_TICK", now: NOW + CYCLE_MS });
    await until(actor, (s) => s.value === "idle");
    actor.stop();
    assert.deepEqual(seen.slice(0, 2), ["waking", "planning"]);
  });

  it("an empty cycle calls plan once and neither act nor report: no model call", async () => {
    const { machine, calls } = withFakes();
    const actor = createActor(machine, { input: INPUT });
    actor.start();
    actor.send({ type: "CYCLE_TICK", now: NOW + CYCLE_MS });
    await until(actor, (s) => s.value === "idle" && calls.plan.length === 1);
    await new Promise((resolve) => setImmediate(resolve));
    actor.stop();
    assert.equal(calls.plan.length, 1);
    assert.equal(calls.act.length, 0, "act was never called");
    assert.equal(calls.report.length, 0);
    assert.equal(actor.getSnapshot().context.completed, 0);
  });

  it("cycle work without a task runs act but reports on no task", async () => {
    const { machine, calls } = withFakes({ plan: async () => ({ kind: "work", item: undefined, skillId: "status-report" }) });
    const actor = createActor(machine, { input: INPUT });
    actor.start();
    actor.send({ type: "CYCLE_TICK", now: NOW + CYCLE_MS });
    await until(actor, (s) => s.value === "idle" && calls.act.length === 1);
    await new Promise((resolve) => setImmediate(resolve));
    actor.stop();
    assert.equal(calls.act[0]?.input.trigger, "cycle");
    assert.equal(calls.report.length, 0);
  });

  it("TASK_ASSIGNED runs plan, act and report once each and ends idle with completed = 1", async () => {
    const { machine, calls } = withFakes();
    const actor = createActor(machine, { input: INPUT });
    actor.start();
    const item = workItem("t-1");
    actor.send({ type: "TASK_ASSIGNED", item });
    await until(actor, (s) => s.value === "idle" && s.context.completed === 1);
    actor.stop();
    assert.equal(calls.plan.length, 1);
    assert.equal(calls.act.length, 1);
    assert.deepEqual(calls.report, [{ agentId: "agent-1", item, outcome: OK }]);
    assert.equal(actor.getSnapshot().context.failed, 0);
  });

  it("act rejecting reports ok:false and counts a failure", async () => {
    const { machine, calls } = withFakes({ act: async () => Promise.reject(new Error("model returned garbage")) });
    const actor = createActor(machine, { input: INPUT });
    actor.start();
    actor.send({ type: "TASK_ASSIGNED", item: workItem("t-1") });
    await until(actor, (s) => s.value === "idle" && s.context.failed === 1);
    actor.stop();
    assert.equal(calls.report.length, 1);
    const outcome = calls.report[0]!.outcome;
    assert.ok(!outcome.ok && outcome.reason.includes("model returned garbage"), JSON.stringify(outcome));
    assert.equal(actor.getSnapshot().context.completed, 0);
  });

  it("report rejecting still returns to idle, ready for the next task", async () => {
    let first = true;
    const { machine, calls } = withFakes({
      report: async () => {
        if (first) {
          first = false;
          throw new Error("NATS away");
        }
      },
    });
    const actor = createActor(machine, { input: INPUT });
    actor.start();
    actor.send({ type: "TASK_ASSIGNED", item: workItem("t-1") });
    await until(actor, (s) => s.value === "idle" && calls.report.length === 1);
    actor.send({ type: "TASK_ASSIGNED", item: workItem("t-2") });
    await until(actor, (s) => s.value === "idle" && calls.report.length === 2);
    actor.stop();
    assert.equal(calls.report[1]?.item.taskId, "t-2");
  });

  it("CANCEL for the task in hand aborts act's signal and reports canceled; act's late result is ignored", async () => {
    const late = deferred<Outcome>();
    const { machine, calls } = withFakes({ act: () => late.promise });
    const actor = createActor(machine, { input: INPUT });
    actor.start();
    actor.send({ type: "TASK_ASSIGNED", item: workItem("t-1") });
    await until(actor, (s) => s.value === "acting" && calls.act.length === 1);
    const signal = calls.act[0]!.signal;
    assert.equal(signal.aborted, false);

    actor.send({ type: "CANCEL", taskId: "t-1" });
    assert.equal(signal.aborted, true, "act's AbortSignal is aborted");
    await until(actor, (s) => s.value === "idle" && calls.report.length === 1);
    late.resolve(OK);
    await new Promise((resolve) => setImmediate(resolve));
    actor.stop();
    assert.deepEqual(calls.report[0]?.outcome, { ok: false, canceled: true, reason: "task t-1 was canceled" });
    assert.equal(calls.report.length, 1);
    const { completed, failed: failures } = actor.getSnapshot().context;
    assert.deepEqual({ completed, failures }, { completed: 0, failures: 0 });
  });

  it("CANCEL for another task leaves act running to completion", async () => {
    const { machine, calls } = withFakes({ act: actUntilAborted });
    const actor = createActor(machine, { input: INPUT });
    actor.start();
    actor.send({ type: "TASK_ASSIGNED", item: workItem("t-1") });
    await until(actor, (s) => s.value === "acting" && calls.act.length === 1);
    actor.send({ type: "CANCEL", taskId: "t-other" });
    assert.equal(calls.act[0]!.signal.aborted, false);
    assert.equal(actor.getSnapshot().value, "acting");
    actor.stop();
  });

  it("messages received while busy reach the next plan, at most the latest 50", async () => {
    const gate = deferred<Outcome>();
    const { machine, calls } = withFakes({ act: () => gate.promise });
    const actor = createActor(machine, { input: INPUT });
    actor.start();
    actor.send({ type: "TASK_ASSIGNED", item: workItem("t-1") });
    await until(actor, (s) => s.value === "acting");
    for (let i = 0; i < 55; i++) actor.send({ type: "MESSAGE_RECEIVED", message: message(`m-${i}`) });
    gate.resolve(OK);
    await until(actor, (s) => s.value === "idle" && s.context.completed === 1);
    actor.send({ type: "CYCLE_TICK", now: NOW + CYCLE_MS });
    await until(actor, (s) => s.value === "idle" && calls.plan.length === 2);
    actor.stop();
    const handed = calls.plan[1]!.inbox.map((m) => m.messageId);
    assert.equal(handed.length, 50);
    assert.deepEqual([handed[0], handed[49]], ["m-5", "m-54"]);
    assert.deepEqual(actor.getSnapshot().context.inbox, []);
  });

  for (const via of ["memory", "msgpack"] as const) {
    it(`a snapshot persisted in acting (${via}) restores, re-runs act and completes the task`, async () => {
      const item = workItem("t-1");
      const first = withFakes({ act: actUntilAborted });
      const before = createActor(first.machine, { input: INPUT });
      before.start();
      before.send({ type: "TASK_ASSIGNED", item });
      await until(before, (s) => s.value === "acting" && first.calls.act.length === 1);
      const persisted = before.getPersistedSnapshot();
      before.stop(); // the process dies here
      assert.equal(first.calls.report.length, 0);

      // the host keeps the snapshot in KV as msgpack, so it must survive the codec too
      const snapshot = via === "memory" ? persisted : (decodeUnknown(encode(persisted)) as { ok: true; value: typeof persisted }).value;
      const second = withFakes();
      const after = createActor(second.machine, { snapshot, input: { ...INPUT, now: NOW + 3_600_000 } });
      after.start();
      await until(after, (s) => s.value === "idle" && s.context.completed === 1);
      after.stop();
      assert.equal(second.calls.plan.length, 0, "planning is not repeated");
      assert.equal(second.calls.act.length, 1, "act re-runs");
      // msgpack leaves undefined fields out (skillId here), which is the same input to an effect
      const sameInput = (value: unknown): unknown => JSON.parse(JSON.stringify(value));
      assert.deepEqual(sameInput(second.calls.act[0]?.input), sameInput(first.calls.act[0]?.input), "with the same input");
      assert.deepEqual(second.calls.report, [{ agentId: "agent-1", item, outcome: OK }]);
    });
  }

  it("a snapshot persisted in reporting restores and reports again (report is idempotent)", async () => {
    const item = workItem("t-1");
    const stuck = deferred<void>();
    const first = withFakes({ report: () => stuck.promise });
    const before = createActor(first.machine, { input: INPUT });
    before.start();
    before.send({ type: "TASK_ASSIGNED", item });
    await until(before, (s) => s.value === "reporting" && first.calls.report.length === 1);
    const persisted = before.getPersistedSnapshot();
    before.stop();

    const second = withFakes();
    const after = createActor(second.machine, { snapshot: persisted, input: INPUT });
    after.start();
    await until(after, (s) => s.value === "idle" && s.context.completed === 1);
    after.stop();
    assert.equal(second.calls.act.length, 0, "finished work is not redone");
    assert.deepEqual(second.calls.report, [{ agentId: "agent-1", item, outcome: OK }]);
  });

  it("nextCycleAt is absolute: a restored agent keeps the deadline set by its last tick", async () => {
    const { machine } = withFakes();
    const tickAt = NOW + 7 * CYCLE_MS + 500;
    const before = createActor(machine, { input: INPUT });
    before.start();
    before.send({ type: "CYCLE_TICK", now: tickAt });
    await until(before, (s) => s.value === "idle" && s.context.nextCycleAt === tickAt + CYCLE_MS);
    const persisted = before.getPersistedSnapshot();
    before.stop();

    const after = createActor(machine, { snapshot: persisted, input: { ...INPUT, now: NOW + 100 * CYCLE_MS } });
    after.start();
    assert.equal(after.getSnapshot().value, "idle");
    assert.equal(after.getSnapshot().context.nextCycleAt, tickAt + CYCLE_MS, "not input.now + cycleMs");
    after.stop();
  });
});
