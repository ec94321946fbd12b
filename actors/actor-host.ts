import { setTimeout as sleep } from "node:timers/promises";
import type { NatsConnection, Subscription } from "@nats-io/nats-core";
import type { Consumer, ConsumerMessages, JetStreamClient, JetStreamManager, JsMsg } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { Logger } from "pino";
import { createActor, fromPromise, type Actor } from "xstate";
import {
  TaskAssignment,
  deadLetter,
  decode,
  encode,
  ensureTaskConsumer,
  FleetError,
  type FleetService,
  isTerminal,
  wireHeaders,
  type AgentCard,
  type BucketKey,
  type CodecName,
  type FleetNames,
  type TaskEvent,
  type TaskState,
} from "../protocol/index.js";
import type { Clock } from "../protocol/index.js";
import { agentMachine, type ActInput, type Outcome, type PlanInput, type ReportInput } from "./agent-machine.js";
import { a2aService } from "./a2a-service.js";
import { controlService } from "./control-service.js";
import { AgentDiscipline } from "./discipline.js";
import type { QuietHoursRunner } from "./quiet-hours-runner.js";
import type { AgentBehaviour, HostedAgent } from "./behaviour.js";
import { submitTask, type SubmitDeps } from "./submit-task.js";
import { agentCard, buildAgentRecord, isRunningSnapshot, readAgentRecord } from "./agent-record.js";
import { CoalescedWriter } from "./coalesced-writer.js";
import { codecOf, InboxBatcher } from "./inbox-batcher.js";
import { CycleGate } from "./cycle-gate.js";
import type { CycleScheduler } from "./cycle-scheduler.js";
import { staggerOf } from "./stagger.js";
import { TaskDedup } from "./task-dedup.js";
import { TaskStore } from "./task-store.js";

export interface ActorHostOptions {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  kv: Record<BucketKey, KV>;
  names: FleetNames;
  codec: CodecName;
  maxPayloadBytes: number;
  agent: HostedAgent;
  behaviour: AgentBehaviour;
  tasks: { ackWaitMs: number; maxDeliver: number; backoffMs: number[]; workingAckMs: number };
  heartbeatMs: number;
  runId: string;
  clock: Clock;
  log: Logger;
  /** the fleet's quiet window: no cycles inside it */
  quietHours: QuietHoursRunner;
  /** the runtime's one timer for every host's deadlines: the next cycle, the breaker's cooldown, the end of quiet hours */
  scheduler: CycleScheduler;
  /** `fleet restart <agent>`: how this process restarts (exit and let its supervisor start it); absent = unsupported */
  onRestartRequested?: (() => void) | undefined;
}

type AgentActor = Actor<typeof agentMachine>;

/** How long an assignment may wait for its Task to appear in KV before it is dead-lettered. */
const MISSING_TASK_GRACE_MS = 10_000;

/**
 * Binds one agent chart to NATS: the A2A operations, the durable task consumer, status events, Task state in KV, the
 * AgentCard and heartbeat in KV `agents`, and the persisted snapshot that lets a restarted agent resume where it was.
 */
export class ActorHost {
  readonly agentId: string;
  readonly store: TaskStore;
  readonly dedup: TaskDedup;
  private dedupSuppressed = 0;
  private readonly o: ActorHostOptions;
  private readonly log: Logger;
  private actor!: AgentActor;
  private service!: FleetService;
  private control!: FleetService;
  private discipline!: AgentDiscipline;
  private inbox: Subscription | undefined;
  private wake: Subscription | undefined;
  /** a wake-up arrived (`fleet.wake.<id>`); the payload is only a hint, so there is nothing in it to validate */
  private loop: Promise<void> | undefined;
  private timers: NodeJS.Timeout[] = [];
  /** when the next cycle runs: the host's entries in the runtime's scheduler */
  private readonly cycles: CycleGate;
  /** the chart's state at its last notification: reaching idle is when the next check is armed */
  private lastValue = "";
  private stopping = false;
  private inFlight: { taskId: string; msg: JsMsg } | undefined;
  private messages: ConsumerMessages | undefined;
  private restarts = 0;
  private startedAt = 0;
  private lastPersistedState = "";
  private announced = false;
  // starting and finishing work are written at most every 250 ms: under load, one write carries many state changes
  private readonly recordWriter = new CoalescedWriter(() => this.putRecord(), 250, (err) => this.log.debug({ err }, "snapshot not persisted"));
  private readonly inboxBatcher: InboxBatcher;

  constructor(options: ActorHostOptions) {
    this.o = options;
    this.agentId = options.agent.id;
    this.log = options.log.child({ component: "actor-host", agentId: this.agentId });
    this.cycles = new CycleGate({
      agentId: this.agentId,
      scheduler: options.scheduler,
      clock: options.clock,
      discipline: () => this.discipline,
      chart: () => {
        const snap = this.actor.getSnapshot();
        return { idle: snap.value === "idle", nextCycleAt: snap.context.nextCycleAt };
      },
      tick: (now) => this.actor.send({ type: "CYCLE_TICK", now }),
    });
    this.store = new TaskStore(options.kv.tasks, options.names, options.codec);
    this.inboxBatcher = new InboxBatcher({
      codec: options.codec,
      maxPayloadBytes: options.maxPayloadBytes,
      deliver: (messages) => !this.stopping && this.actor.send({ type: "MESSAGES_RECEIVED", messages }),
      reject: (subject, data, error) => void this.deadLetter("inbox", subject, data, error),
    });
    this.dedup = new TaskDedup({ kv: options.kv.dedup, codec: options.codec, now: () => options.clock.now(), log: this.log });
  }

  get card(): AgentCard {
    return agentCard(this.o.agent, this.o.names);
  }

  get submitDeps(): SubmitDeps {
    return { js: this.o.js, store: this.store, dedup: this.dedup, log: this.log, names: this.o.names, codec: this.o.codec, now: () => this.o.clock.now() };
  }

  async start(): Promise<void> {
    const { names } = this.o;
    this.startedAt = this.o.clock.now();
    const previous = await readAgentRecord(this.o.kv.agents, this.agentId, this.o.codec);
    this.restarts = previous && previous.runId === this.o.runId ? previous.restarts + 1 : 0;
    this.discipline = new AgentDiscipline({
      quietHours: this.o.quietHours,
      now: () => this.o.clock.now(),
      log: this.log,
      restored: previous?.breakerSnapshot,
      onChange: () => {
        // called from the constructor too (a trial that died with its process): arming waits for the assignment below
        if (!this.discipline) return;
        this.cycles.onBreakerChange();
        if (this.announced) void this.putRecord().catch((err) => this.log.debug({ err }, "breaker not persisted"));
      },
    });
    this.cycles.armCooldown();
    this.actor = this.createAgentActor(previous?.snapshot);
    this.actor.subscribe({
      next: (snap) => {
        const value = String(snap.value);
        // back to idle (a cycle or a task done, or a restored task finished): the next cycle is due at its new time, or
        // at once if it passed meanwhile (one coalesced tick) or a wake-up came while busy
        if (value === "idle" && this.lastValue !== "idle") this.cycles.onIdle(snap.context.nextCycleAt);
        this.lastValue = value;
        this.persistOnStateChange(value);
      },
      error: (err) => this.log.error({ err }, "agent chart failed"),
    });
    this.actor.start();

    await ensureTaskConsumer(this.o.jsm, names, this.agentId, {
      ackWaitMs: this.o.tasks.ackWaitMs,
      maxDeliver: this.o.tasks.maxDeliver,
      backoffMs: this.o.tasks.backoffMs,
    });
    const consumer = await this.o.js.consumers.get(names.stream("TASKS"), names.agentConsumer(this.agentId));

    this.service = a2aService({
      nc: this.o.nc,
      names,
      codec: this.o.codec,
      maxPayloadBytes: this.o.maxPayloadBytes,
      agentId: this.agentId,
      store: this.store,
      // an agent reporting a finding marks it `metadata.discovery`: it passes the discovery dedup layer
      submit: (message) => submitTask(this.submitDeps, this.agentId, message, "a2a", message.metadata?.discovery === true ? "discovery" : undefined),
      cancel: (taskId) => this.cancel(taskId),
      deadLetter: (subject, data, error) => this.deadLetter("a2a", subject, data, error),
      log: this.log,
    });
    this.service.start();
    this.control = controlService({
      nc: this.o.nc,
      names,
      codec: this.o.codec,
      agentId: this.agentId,
      deadLetter: (subject, data, error) => this.deadLetter("control", subject, data, error),
      log: this.log,
      handlers: {
        BreakerReset: async () => this.discipline.reset(),
        Restart: async () => {
          const restart = this.o.onRestartRequested;
          if (!restart) throw new FleetError("UNSUPPORTED_OPERATION", "this process was started without a supervisor to restart it");
          // reply first, then go
          setTimeout(restart, 50);
          return { restarting: true };
        },
      },
    });
    this.control.start();
    this.inbox = this.o.nc.subscribe(names.agentInbox(this.agentId), {
      callback: (err, msg) => {
        if (!err) this.inboxBatcher.receive(msg.subject, msg.data, msg.headers?.get("Content-Type"));
      },
    });
    // the heartbeat keeps its own interval: Node runs every interval of one duration off one native timer, so 10,000 of
    // them cost their callbacks (a KV put each, the heartbeat's point) and nothing a shared heap would save
    this.timers.push(setInterval(() => void this.heartbeat(), this.o.heartbeatMs));
    this.cycles.check();
    this.wake = this.o.nc.subscribe(names.wake(this.agentId), {
      callback: (err) => {
        if (err) return;
        this.cycles.wake();
      },
    });
    this.loop = this.consumeLoop(consumer);
    // announce the agent only once its subscriptions are registered on the server: a client that sees the record
    // alive can reach it at once
    await this.o.nc.flush();
    this.announced = true;
    await this.putRecord();
    this.log.info({ restarts: this.restarts, resumedIn: previous?.snapshot ? this.actor.getSnapshot().value : undefined }, "agent started");
  }

  /** Stop intake, let the task in hand finish (bounded), then stop the actor and record it as stopped. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
    this.cycles.stop();
    // intake stops at once (both unsubscribe before their first await); requests under way finish on their own
    void this.service?.stop();
    void this.control?.stop();
    this.inbox?.unsubscribe();
    this.wake?.unsubscribe();
    // ends the iterator once the task in hand (if any) is done
    void this.messages?.close().catch(() => undefined);
    await Promise.race([this.loop, sleep(graceMs)]);
    // persist the running snapshot, not the stopped one: a stopped snapshot would restore as a dead actor
    const snapshot = this.actor?.getPersistedSnapshot();
    this.recordWriter.cancel();
    this.actor?.stop();
    this.discipline?.stop();
    await Promise.race([this.putRecord("stopped", snapshot).catch(() => undefined), sleep(2_000)]);
    this.log.info({}, "agent stopped");
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  private createAgentActor(snapshot: unknown): AgentActor {
    const machine = agentMachine.provide({
      actors: {
        plan: fromPromise<Awaited<ReturnType<AgentBehaviour["plan"]>>, PlanInput>(({ input, signal }) =>
          this.o.behaviour.plan(input, { signal, log: this.log }),
        ),
        act: fromPromise<Outcome, ActInput>(({ input, signal }) => this.o.behaviour.act(input, { signal, log: this.log })),
        report: fromPromise<void, ReportInput>(({ input }) => this.report(input)),
      },
    });
    const cycleMs = this.o.agent.cycleMinutes * 60_000;
    const now = this.o.clock.now();
    const input = { agentId: this.agentId, cycleMs, now, firstCycleAt: now + staggerOf(this.agentId, cycleMs) };
    if (isRunningSnapshot(snapshot)) {
      try {
        // a snapshot taken mid-task re-runs the interrupted effect; report is idempotent (CAS on the Task)
        return createActor(machine, { input, snapshot: snapshot as Parameters<typeof createActor>[1] extends { snapshot?: infer S } ? S : never });
      } catch (err) {
        this.log.warn({ err }, "persisted snapshot could not be restored; starting fresh");
      }
    }
    return createActor(machine, { input });
  }

  private whenIdle(): Promise<void> {
    if (this.actor.getSnapshot().value === "idle") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        sub.unsubscribe();
        resolve();
      };
      const sub = this.actor.subscribe({
        next: (s) => {
          if (s.value === "idle" || s.status !== "active") done();
        },
        error: done,
      });
    });
  }

  /**
   * One long-lived pull subscription (cheaper per task than a pull request each time); the consumer's max_ack_pending of
   * 1 means the next task is not even sent before this one is acked, so a pull for ten is still one task at a time, and
   * it saves a pull request (a socket write) per task. The iterator re-pulls by itself after a reconnect.
   */
  private async consumeLoop(consumer: Consumer): Promise<void> {
    while (!this.stopping) {
      try {
        this.messages = await consumer.consume({ max_messages: 10, expires: 5_000 });
        for await (const msg of this.messages) {
          if (this.stopping) {
            msg.nak();
            break;
          }
          await this.whenIdle();
          await this.onTaskMessage(msg).catch((err) => this.log.error({ err }, "task handling failed; it will be redelivered"));
        }
      } catch (err) {
        // the server is away (restart, partition) or the consumer was recreated: start over shortly
        this.log.debug({ err }, "task subscription ended");
        await sleep(500);
      }
    }
  }

  private async onTaskMessage(msg: JsMsg): Promise<void> {
    const decoded = decode(TaskAssignment, msg.data, { codec: codecOf(msg.headers?.get("Content-Type"), this.o.codec), maxBytes: this.o.maxPayloadBytes });
    if (!decoded.ok) return this.rejectTaskMessage(msg, decoded.error);
    const assignment = decoded.value;
    if (assignment.agentId !== this.agentId) {
      return this.rejectTaskMessage(msg, new FleetError("MESSAGE_INVALID", `assignment for ${assignment.agentId} arrived at ${this.agentId}`));
    }
    if (!(await this.discipline.holdWhileOpen(msg, () => this.stopping, this.o.tasks.workingAckMs))) return;
    // one CAS on the revision this process already knows (it usually created the Task): no read on the common path
    let working;
    try {
      working = await this.store.transition(this.agentId, assignment.taskId, () => ({ status: { state: "TASK_STATE_WORKING", timestamp: this.isoNow() } }));
    } catch (err) {
      if (!(err instanceof FleetError && err.code === "TASK_NOT_FOUND")) throw err;
      // the Task and its assignment are written together; a fresh assignment may arrive a moment before its Task. Retry
      // while deliveries remain, and dead-letter with the original bytes before the server would drop it.
      const fresh = this.o.clock.now() - assignment.assignedAt < MISSING_TASK_GRACE_MS;
      if (fresh && msg.info.deliveryCount < this.o.tasks.maxDeliver - 1) {
        msg.nak(250);
        return;
      }
      return this.rejectTaskMessage(msg, err);
    }
    // a redelivery of finished work (the process died between completing and acking) completes nothing twice
    if (isTerminal(working.status.state)) {
      msg.ack();
      return;
    }
    const task = working;
    this.discipline.taskStarted();
    this.publishStatus(working.id, working.contextId, "TASK_STATE_WORKING", false);
    this.inFlight = { taskId: task.id, msg };
    // long work keeps its claim on the message; a dead process stops sending these and the task is redelivered
    const workingAck = setInterval(() => msg.working(), this.o.tasks.workingAckMs);
    try {
      this.actor.send({ type: "TASK_ASSIGNED", item: { taskId: task.id, contextId: task.contextId, message: assignment.message } });
      await this.whenIdle();
    } finally {
      clearInterval(workingAck);
      if (this.inFlight?.msg === msg) {
        // reporting failed (NATS away): retry the task shortly instead of waiting out the ack wait
        this.inFlight = undefined;
        msg.nak(1_000);
      }
    }
  }

  private async rejectTaskMessage(msg: JsMsg, error: FleetError): Promise<void> {
    this.log.warn({ code: error.code, subject: msg.subject, seq: msg.seq }, "task message dead-lettered");
    await this.deadLetter("tasks", msg.subject, msg.data, error, `${msg.info.stream}-${msg.seq}`);
    msg.ack();
  }

  /** The chart's report effect: settle the Task (once: CAS, skipped when already terminal), tell watchers, ack the message. */
  private async report({ item, outcome }: ReportInput): Promise<void> {
    // unsettled on purpose: the message stays unacked and is naked below, so the task comes back (up to maxDeliver)
    if (!outcome.ok && "retry" in outcome) {
      this.log.warn({ taskId: item.taskId, reason: outcome.reason }, "task will be retried");
      throw new FleetError("INTERNAL", `task ${item.taskId} will be retried: ${outcome.reason}`);
    }
    const state: TaskState = outcome.ok ? "TASK_STATE_COMPLETED" : "canceled" in outcome ? "TASK_STATE_CANCELED" : "TASK_STATE_FAILED";
    let settled = false;
    const task = await this.store.transition(this.agentId, item.taskId, (t) => {
      settled = true;
      return {
        status: {
          state,
          timestamp: this.isoNow(),
          ...(outcome.ok ? {} : { message: { messageId: `${t.id}-status`, role: "ROLE_AGENT", parts: [{ text: outcome.reason }] } }),
        },
        artifacts: [...(t.artifacts ?? []), ...(outcome.ok ? outcome.artifacts : [])],
      };
    });
    if (settled && outcome.ok) {
      for (const artifact of outcome.artifacts) this.publish({ kind: "artifact-update", taskId: task.id, contextId: task.contextId, artifact, lastChunk: true });
    }
    if (settled) this.publishStatus(task.id, task.contextId, state, true);
    if (state === "TASK_STATE_COMPLETED") {
      this.discipline.taskSucceeded();
      // completed work blocks similar findings for the discovery window
      await this.dedup.completed(this.agentId, item.taskId).catch((err) => this.log.warn({ err }, "dedup completion not recorded"));
    }
    else if (state === "TASK_STATE_FAILED") this.discipline.taskFailed();
    if (this.inFlight?.taskId === item.taskId) {
      // a plain ack: if it is lost, the redelivery finds the Task terminal and is acked then (no second completion)
      this.inFlight.msg.ack();
      this.inFlight = undefined;
    }
  }

  private async cancel(taskId: string) {
    const task = await this.store.get(this.agentId, taskId);
    if (!task) throw new FleetError("TASK_NOT_FOUND", `task ${taskId} not found`);
    if (isTerminal(task.status.state)) throw new FleetError("TASK_NOT_CANCELABLE", `task ${taskId} is already ${task.status.state}`);
    const canceled = await this.store.transition(this.agentId, taskId, () => ({ status: { state: "TASK_STATE_CANCELED", timestamp: this.isoNow() } }));
    if (canceled.status.state === "TASK_STATE_CANCELED") this.publishStatus(taskId, canceled.contextId, "TASK_STATE_CANCELED", true);
    this.actor.send({ type: "CANCEL", taskId });
    return canceled;
  }

  private async deadLetter(source: string, subject: string, data: Uint8Array, error: FleetError, msgId?: string): Promise<void> {
    try {
      await deadLetter(this.o.js, this.o.names, source, { subject, data, ...(msgId ? { msgId } : {}) }, error);
    } catch (err) {
      this.log.error({ err, subject, code: error.code }, "dead letter could not be stored");
    }
  }

  private publishStatus(taskId: string, contextId: string, state: TaskState, final: boolean): void {
    this.publish({ kind: "status-update", taskId, contextId, status: { state, timestamp: this.isoNow() }, final });
  }

  private publish(event: TaskEvent): void {
    this.o.nc.publish(this.o.names.agentEvents(this.agentId), encode(event, this.o.codec), { headers: wireHeaders(this.o.codec) });
  }

  private isoNow(): string {
    return new Date(this.o.clock.now()).toISOString();
  }

  /**
   * Persists the record when the agent starts or finishes work: the snapshot in `acting` is what a restarted process
   * resumes from, `idle` is what `fleet status` shows between tasks. Other steps wait for the heartbeat.
   */
  private persistOnStateChange(value: string): void {
    // before start() has announced the agent, a record would tell clients it is reachable when it is not yet
    if (!this.announced) return;
    if (value === this.lastPersistedState) return;
    this.lastPersistedState = value;
    if (value !== "acting" && value !== "idle") return;
    this.recordWriter.request();
  }

  private async heartbeat(): Promise<void> {
    try {
      this.dedupSuppressed = (await this.dedup.counts(this.agentId)).suppressed;
      await this.putRecord();
    } catch (err) {
      this.log.warn({ err }, "heartbeat failed");
    }
  }

  private async putRecord(state?: string, persisted?: unknown): Promise<void> {
    const snap = this.actor.getSnapshot();
    const record = buildAgentRecord({
      agent: this.o.agent,
      card: this.card,
      state: state ?? String(snap.value),
      currentTaskId: snap.context.item?.taskId,
      runId: this.o.runId,
      restarts: this.restarts,
      startedAt: this.startedAt,
      // a stopped agent's record says so by a heartbeat of 0
      heartbeatAt: state === "stopped" ? 0 : this.o.clock.now(),
      heartbeatMs: this.o.heartbeatMs,
      completed: snap.context.completed,
      failed: snap.context.failed,
      snapshot: persisted ?? this.actor.getPersistedSnapshot(),
      breaker: this.discipline.summary(),
      breakerSnapshot: this.discipline.persisted(),
      dedupSuppressed: this.dedupSuppressed,
    });
    await this.o.kv.agents.put(this.agentId, encode(record, this.o.codec));
  }
}
