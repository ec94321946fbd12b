import { setTimeout as sleep } from "node:timers/promises";
import type { NatsConnection, Subscription } from "@nats-io/nats-core";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { Logger } from "pino";
import { createActor, fromPromise, type Actor } from "xstate";
import { context, trace, type Span, type Tracer } from "@opentelemetry/api";
import {
  contextOfTraceparent,
  deadLetter,
  ensureTaskConsumer,
  failSpan,
  FleetError,
  GEN_AI,
  inGenAiSpan,
  type FleetService,
  type AgentCard,
  type BucketKey,
  type CodecName,
  type FleetNames,
  type TaskAssignment,
} from "../protocol/index.js";
import type { Clock } from "../protocol/index.js";
import { agentMachine, type ActInput, type Outcome, type PlanInput, type ReportInput } from "./agent-machine.js";
import { a2aService } from "./a2a-service.js";
import { controlService } from "./control-service.js";
import { AgentDiscipline } from "./discipline.js";
import type { QuietHoursRunner } from "./quiet-hours-runner.js";
import type { AgentBehaviour, HostedAgent } from "./behaviour.js";
import { submitTask, type SubmitDeps } from "./submit-task.js";
import { agentCard, isRunningSnapshot, readAgentRecord } from "./agent-record.js";
import { AgentHeartbeat } from "./agent-heartbeat.js";
import { InboxBatcher } from "./inbox-batcher.js";
import { CycleGate } from "./cycle-gate.js";
import type { CycleScheduler } from "./cycle-scheduler.js";
import { RETRY_DELAY_MS, type DeliveryOutcome } from "./delivery-outcome.js";
import { firstCycleAfter, staggerOf } from "./stagger.js";
import { HeldWork } from "./held-work.js";
import { TaskConsumer } from "./task-consumer.js";
import { TaskDedup } from "./task-dedup.js";
import { TaskLifecycle } from "./task-lifecycle.js";
import { TaskStore } from "./task-store.js";
import { TaskEstimator } from "./task-estimates.js";
import type { TaskTokens } from "./task-tokens.js";

export interface ActorHostOptions {
  /** writes, requests and the task consumer */
  nc: NatsConnection;
  /** where the agent serves its A2A operations, controls, inbox and wake-ups (may publish replies only); default `nc` */
  serveNc?: NatsConnection | undefined;
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
  /** the fleet's quiet window: no cycles inside it (tasks' model work waits through the runtime's ModelWorkGate) */
  quietHours: QuietHoursRunner;
  /** the runtime's one timer for every host's deadlines: the next cycle, the breaker's cooldown, the end of quiet hours */
  scheduler: CycleScheduler;
  /** `fleet restart <agent>`: how this process restarts (exit and let its supervisor start it); absent = unsupported */
  onRestartRequested?: (() => void) | undefined;
  /** the process's count of each task's tokens (the router client adds to it): settled tasks get their actual from it */
  tokens?: TaskTokens | undefined;
  /** each task becomes a GenAI `invoke_agent` span, parent of its model and tool calls (telemetry on); none without */
  tracer?: Tracer | undefined;
}

type AgentActor = Actor<typeof agentMachine>;

/**
 * Binds one agent chart to NATS: the A2A operations, the durable task consumer (`TaskConsumer`), the Task's way through
 * KV (`TaskLifecycle`), the record and heartbeat in KV `agents` (`AgentHeartbeat`), and the persisted snapshot that lets a
 * restarted agent resume where it was. This file is the wiring; each of those owns its own concern.
 */
export class ActorHost {
  readonly agentId: string;
  readonly store: TaskStore;
  readonly dedup: TaskDedup;
  private readonly options: ActorHostOptions;
  private readonly log: Logger;
  private actor!: AgentActor;
  private service!: FleetService;
  private control!: FleetService;
  private discipline!: AgentDiscipline;
  private heartbeat!: AgentHeartbeat;
  private consumer!: TaskConsumer;
  private readonly lifecycle: TaskLifecycle;
  private inbox: Subscription | undefined;
  /** a wake-up arrived (`fleet.wake.<id>`); the payload is only a hint, so there is nothing in it to validate */
  private wake: Subscription | undefined;
  /** when the next cycle runs: the host's entries in the runtime's scheduler */
  private readonly cycles: CycleGate;
  /** the chart's state at its last notification: reaching idle is when the next check is armed */
  private lastValue = "";
  private stopping = false;
  /** the task the consumer handed the chart, and what its report said became of it */
  private running: { taskId: string; log: Logger; outcome: DeliveryOutcome | undefined; span: Span | undefined } | undefined;
  private readonly inboxBatcher: InboxBatcher;
  /** this agent's held tasks (quiet hours, a spent cap): kept in KV `held`, released at their hold's end */
  readonly held: HeldWork;

  constructor(options: ActorHostOptions) {
    this.options = options;
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
      cycleMs: this.options.agent.cycleMinutes * 60_000,
    });
    this.store = new TaskStore(options.kv.tasks, options.names, options.codec);
    this.held = new HeldWork({
      kv: options.kv.held,
      js: options.js,
      names: options.names,
      codec: options.codec,
      agentId: this.agentId,
      scheduler: options.scheduler,
      clock: options.clock,
      log: this.log.child({ component: "held-work" }),
    });
    this.inboxBatcher = new InboxBatcher({
      codec: options.codec,
      maxPayloadBytes: options.maxPayloadBytes,
      deliver: (messages) => !this.stopping && this.actor.send({ type: "MESSAGES_RECEIVED", messages }),
      reject: (subject, data, error) => void this.deadLetter("inbox", subject, data, error),
    });
    this.dedup = new TaskDedup({ kv: options.kv.dedup, codec: options.codec, now: () => options.clock.now(), log: this.log });
    this.lifecycle = new TaskLifecycle({
      nc: options.nc,
      names: options.names,
      codec: options.codec,
      agentId: this.agentId,
      store: this.store,
      dedup: this.dedup,
      breaker: () => this.discipline,
      now: () => options.clock.now(),
      estimator: new TaskEstimator({ kv: options.kv.tasks, names: options.names, codec: options.codec, agent: options.agent, log: this.log.child({ component: "task-estimator" }) }),
      tokens: options.tokens,
    });
  }

  get card(): AgentCard {
    return agentCard(this.options.agent, this.options.names);
  }

  get submitDeps(): SubmitDeps {
    return { js: this.options.js, store: this.store, dedup: this.dedup, log: this.log, names: this.options.names, codec: this.options.codec, now: () => this.options.clock.now() };
  }

  async start(): Promise<void> {
    const { names } = this.options;
    const previous = await readAgentRecord(this.options.kv.agents, this.agentId, this.options.codec);
    this.heartbeat = new AgentHeartbeat({
      kv: this.options.kv.agents,
      codec: this.options.codec,
      agent: this.options.agent,
      card: this.card,
      runId: this.options.runId,
      heartbeatMs: this.options.heartbeatMs,
      now: () => this.options.clock.now(),
      dedup: this.dedup,
      previous,
      live: () => {
        const snap = this.actor.getSnapshot();
        const { item, completed, failed } = snap.context;
        return { state: String(snap.value), currentTaskId: item?.taskId, completed, failed, breaker: this.discipline.summary(), breakerSnapshot: this.discipline.persisted() };
      },
      persistedSnapshot: () => this.actor.getPersistedSnapshot(),
      log: this.log,
    });
    this.discipline = new AgentDiscipline({
      quietHours: this.options.quietHours,
      now: () => this.options.clock.now(),
      log: this.log,
      restored: previous?.breakerSnapshot,
      onChange: () => {
        // called from the constructor too (a trial that died with its process): arming waits for the assignment below
        if (!this.discipline) return;
        this.cycles.onBreakerChange();
        this.heartbeat.breakerChanged();
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
        this.heartbeat.stateChanged(value);
      },
      error: (err) => this.log.error({ err }, "agent chart failed"),
    });
    this.actor.start();

    await ensureTaskConsumer(this.options.jsm, names, this.agentId, {
      ackWaitMs: this.options.tasks.ackWaitMs,
      maxDeliver: this.options.tasks.maxDeliver,
      backoffMs: this.options.tasks.backoffMs,
    });
    const consumer = await this.options.js.consumers.get(names.stream("TASKS"), names.agentConsumer(this.agentId));

    const serveNc = this.options.serveNc ?? this.options.nc;
    this.service = a2aService({
      nc: serveNc,
      names,
      codec: this.options.codec,
      maxPayloadBytes: this.options.maxPayloadBytes,
      agentId: this.agentId,
      store: this.store,
      // an agent reporting a finding marks it `metadata.discovery`: it passes the discovery dedup layer
      submit: (message) => submitTask(this.submitDeps, this.agentId, message, "a2a", message.metadata?.discovery === true ? "discovery" : undefined),
      cancel: async (taskId) => {
        const canceled = await this.lifecycle.cancel(taskId);
        this.actor.send({ type: "CANCEL", taskId });
        return canceled;
      },
      deadLetter: (subject, data, error) => this.deadLetter("a2a", subject, data, error),
      log: this.log,
    });
    this.service.start();
    this.control = controlService({
      nc: serveNc,
      names,
      codec: this.options.codec,
      agentId: this.agentId,
      deadLetter: (subject, data, error) => this.deadLetter("control", subject, data, error),
      log: this.log,
      handlers: {
        BreakerReset: async () => this.discipline.reset(),
        Restart: async () => {
          const restart = this.options.onRestartRequested;
          if (!restart) throw new FleetError("UNSUPPORTED_OPERATION", "this process was started without a supervisor to restart it");
          // reply first, then go
          setTimeout(restart, 50);
          return { restarting: true };
        },
      },
    });
    this.control.start();
    this.inbox = serveNc.subscribe(names.agentInbox(this.agentId), {
      callback: (err, msg) => {
        if (!err) this.inboxBatcher.receive(msg);
      },
    });
    this.cycles.check();
    this.wake = serveNc.subscribe(names.wake(this.agentId), {
      callback: (err) => {
        if (err) return;
        this.cycles.wake();
      },
    });
    this.consumer = new TaskConsumer({
      agentId: this.agentId,
      codec: this.options.codec,
      maxPayloadBytes: this.options.maxPayloadBytes,
      workingAckMs: this.options.tasks.workingAckMs,
      work: { idle: () => this.whenIdle(), mayTakeTask: () => this.discipline.mayTakeTask(), run: (assignment, log, traceparent) => this.run(assignment, log, traceparent) },
      deadLetter: (original, error) => deadLetter(this.options.js, names, "tasks", original, error),
      held: this.held,
      log: this.options.log.child({ component: "task-consumer", agentId: this.agentId }),
    });
    // work held before a restart is released at its time (at once when that has passed)
    await this.held.start();
    this.consumer.start(consumer);
    // announce the agent only once its subscriptions are registered on the server: a client that sees the record
    // alive can reach it at once
    await serveNc.flush();
    await this.heartbeat.announce();
    this.log.info({ restarts: this.heartbeat.restarts, resumedIn: previous?.snapshot ? this.actor.getSnapshot().value : undefined }, "agent started");
  }

  /** Stop intake, let the task in hand finish (bounded), then stop the actor and record it as stopped. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.heartbeat?.stopBeating();
    this.cycles.stop();
    // intake stops at once (both unsubscribe before their first await); requests under way finish on their own
    void this.service?.stop();
    void this.control?.stop();
    this.inbox?.unsubscribe();
    this.wake?.unsubscribe();
    await this.consumer?.stop(graceMs);
    // unreleased holds stay in KV: the next start arms them again
    this.held.stop();
    // persist the running snapshot, not the stopped one: a stopped snapshot would restore as a dead actor
    const snapshot = this.actor?.getPersistedSnapshot();
    this.actor?.stop();
    this.discipline?.stop();
    await Promise.race([this.heartbeat?.stopped(snapshot).catch(() => undefined), sleep(2_000)]);
    this.log.info({}, "agent stopped");
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /**
   * The consumer's work for one assignment: claim the Task, hand it to the chart and wait until the chart is idle
   * again. The outcome is the one the chart's report effect returned for this task. Traced, it is one `invoke_agent`
   * span, continuing the trace the assignment came in.
   */
  private run(assignment: TaskAssignment, log: Logger, traceparent?: string): Promise<DeliveryOutcome> {
    const { agent } = this.options;
    const attributes = {
      [GEN_AI.agentId]: agent.id,
      [GEN_AI.agentName]: agent.name,
      [GEN_AI.agentDescription]: agent.role,
      [GEN_AI.provider]: "natsfleet",
      [GEN_AI.conversationId]: assignment.message.contextId ?? assignment.taskId,
      "natsfleet.task.id": assignment.taskId,
    };
    return inGenAiSpan(this.options.tracer, { operation: "invoke_agent", target: agent.name, attributes, parent: contextOfTraceparent(traceparent) }, (span) =>
      this.runTask(assignment, log, span),
    );
  }

  private async runTask(assignment: TaskAssignment, log: Logger, span: Span | undefined): Promise<DeliveryOutcome> {
    const claimed = await this.lifecycle.claim(assignment, log);
    if (claimed.kind !== "claimed") return claimed;
    const { task } = claimed;
    // the chart's effects log as the host, naming the task: one child logger per task, not one per effect
    const running: NonNullable<ActorHost["running"]> = { taskId: task.id, log: this.log.child({ taskId: task.id }), outcome: undefined, span };
    this.running = running;
    try {
      this.actor.send({ type: "TASK_ASSIGNED", item: { taskId: task.id, contextId: task.contextId, message: assignment.message } });
      await this.whenIdle();
    } finally {
      this.running = undefined;
    }
    // the chart stopped (the host is stopping) or never took the task: it comes back
    return running.outcome ?? { kind: "retry", delayMs: RETRY_DELAY_MS, reason: "the task was not reported" };
  }

  /** The chart's report effect; its outcome goes to the consumer when it is for the task the consumer handed over. */
  private async report(input: ReportInput): Promise<DeliveryOutcome> {
    const span = this.running?.taskId === input.item.taskId ? this.running.span : undefined;
    if (span) traceOutcome(span, input.outcome, this.options.tokens?.split(this.agentId, input.item.taskId));
    const outcome = await this.lifecycle.report(input, this.taskLog(input.item.taskId));
    // a snapshot restored mid-task reports a task no message is held for here: its redelivery finds the Task settled
    if (this.running?.taskId === input.item.taskId) this.running.outcome = outcome;
    return outcome;
  }

  /** The chart's effects for the task in hand run in its span: their model calls and tool calls are its children. */
  private inTaskSpan<T>(taskId: string | undefined, fn: () => T): T {
    const span = taskId !== undefined && this.running?.taskId === taskId ? this.running.span : undefined;
    return span ? context.with(trace.setSpan(context.active(), span), fn) : fn();
  }

  /** Every line logged while a task is handled names it (made once per task in `run`). */
  private taskLog(taskId: string | undefined): Logger {
    if (!taskId) return this.log;
    return this.running?.taskId === taskId ? this.running.log : this.log.child({ taskId });
  }

  private createAgentActor(snapshot: unknown): AgentActor {
    const machine = agentMachine.provide({
      actors: {
        plan: fromPromise<Awaited<ReturnType<AgentBehaviour["plan"]>>, PlanInput>(({ input, signal }) =>
          this.inTaskSpan(input.item?.taskId, () => this.options.behaviour.plan(input, { signal, log: this.taskLog(input.item?.taskId) })),
        ),
        act: fromPromise<Outcome, ActInput>(({ input, signal }) =>
          this.inTaskSpan(input.plan.item?.taskId, () => this.options.behaviour.act(input, { signal, log: this.taskLog(input.plan.item?.taskId) })),
        ),
        report: fromPromise<DeliveryOutcome, ReportInput>(({ input }) => this.report(input)),
      },
    });
    const cycleMs = this.options.agent.cycleMinutes * 60_000;
    const now = this.options.clock.now();
    // on the agent's own phase of the epoch's grid (its stagger), as duties run on theirs: the order of a cycle and a
    // duty's run is the same from one start to the next, not an accident of when the process came up
    const input = { agentId: this.agentId, cycleMs, now, firstCycleAt: firstCycleAfter(now, cycleMs, staggerOf(this.agentId, cycleMs)) };
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

  /** Resolves once the chart is idle, or has stopped (nothing would ever make it idle then). */
  private whenIdle(): Promise<void> {
    const now = this.actor.getSnapshot();
    if (now.value === "idle" || now.status !== "active") return Promise.resolve();
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
        complete: done,
      });
    });
  }

  private async deadLetter(source: string, subject: string, data: Uint8Array, error: FleetError): Promise<void> {
    try {
      await deadLetter(this.options.js, this.options.names, source, { subject, data }, error);
    } catch (err) {
      this.log.error({ err, subject, code: error.code }, "dead letter could not be stored");
    }
  }
}

/** What became of the task, on its span: the tokens its model calls used, and a failure as `error.type`. */
function traceOutcome(span: Span, outcome: ReportInput["outcome"], tokens: { input: number; output: number } | undefined): void {
  if (tokens) span.setAttributes({ [GEN_AI.inputTokens]: tokens.input, [GEN_AI.outputTokens]: tokens.output });
  if (outcome.ok) return;
  if ("held" in outcome) span.setAttribute("natsfleet.held", outcome.held.reason);
  else if ("retry" in outcome) span.setAttribute("natsfleet.retry", outcome.reason.slice(0, 200));
  else failSpan(span, "canceled" in outcome ? "TASK_CANCELED" : "TASK_FAILED", outcome.reason.slice(0, 200));
}
