import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import { encode, FleetError, isTerminal, wireHeaders, type CodecName, type FleetNames, type Hold, type Task, type TaskAssignment, type TaskEvent, type TaskState } from "../protocol/index.js";
import type { ReportInput } from "./agent-machine.js";
import type { TaskDedup } from "./task-dedup.js";
import { RETRY_DELAY_MS, type DeliveryOutcome } from "./delivery-outcome.js";
import type { TaskStore } from "./task-store.js";
import { taskFromAssignment } from "./submit-task.js";
import { pointsOf } from "../router/index.js";
import { estimateOfTask, type TaskActual, type TaskEstimate, type TaskEstimator } from "./task-estimates.js";
import type { TaskTokens } from "./task-tokens.js";

/** The breaker's view of tasks: started, then succeeded or failed. */
export interface TaskBreaker {
  taskStarted(): void;
  taskSucceeded(): void;
  taskFailed(): void;
  /** the task waits (quiet hours, a spent cap): no failure */
  taskHeld(): void;
}

export interface TaskLifecycleOptions {
  nc: NatsConnection;
  names: FleetNames;
  codec: CodecName;
  agentId: string;
  store: TaskStore;
  dedup: TaskDedup;
  breaker: () => TaskBreaker;
  now: () => number;
  /** the estimate written when a task is claimed (`metadata.estimate`); none when absent */
  estimator?: TaskEstimator | undefined;
  /** the tokens of each task's model calls, written as its actual when it is settled (`metadata.actual`) */
  tokens?: TaskTokens | undefined;
}

/**
 * An assigned Task's way through KV and the agent's events subject: claimed (WORKING), settled once (completed, failed,
 * canceled: CAS, skipped when already terminal), or canceled by a client. Each step says what became of the task as a
 * `DeliveryOutcome` instead of throwing, so the consumer settles the message from a value.
 */
export class TaskLifecycle {
  constructor(private readonly options: TaskLifecycleOptions) {}

  /** Moves the assigned Task to WORKING; anything else it finds is an outcome for the message. */
  async claim(assignment: TaskAssignment, log: Logger): Promise<{ kind: "claimed"; task: Task } | DeliveryOutcome> {
    let task: Task;
    try {
      task = await this.working(assignment);
    } catch (err) {
      const error = FleetError.from(err);
      // an unreadable Task (or one that cannot be made) will not get better by waiting
      if (!error.retryable) return { kind: "dead-letter", error };
      log.warn({ err }, "task not claimed; it will be retried");
      return { kind: "retry", delayMs: RETRY_DELAY_MS, reason: error.message };
    }
    // a redelivery of finished work (the process died between completing and acking) completes nothing twice
    if (isTerminal(task.status.state)) {
      log.info({ state: task.status.state }, "redelivered task already finished");
      return { kind: "done", already: true };
    }
    this.options.breaker().taskStarted();
    this.publishStatus(task.id, task.contextId, "TASK_STATE_WORKING", false);
    return { kind: "claimed", task };
  }

  /**
   * One CAS on the revision this process already knows (it usually created the Task): no read on the common path. The
   * Task and its assignment are written together, so the assignment may come first: then the Task is made from it.
   */
  private async working(assignment: TaskAssignment): Promise<Task> {
    // made before any work on the task, from the history of its kind; a task claimed again keeps its first estimate
    const estimate = await this.options.estimator?.estimate(assignment.message);
    // a task that was held is taken again: its hold is over
    const toWorking = (t: Task): Partial<Task> => {
      const metadata = withEstimate(t.metadata && "held" in t.metadata ? withoutHeld(t.metadata) : t.metadata, estimate);
      return { status: { state: "TASK_STATE_WORKING" as const, timestamp: this.isoNow() }, ...(metadata !== t.metadata ? { metadata } : {}) };
    };
    try {
      return await this.options.store.transition(this.options.agentId, assignment.taskId, toWorking);
    } catch (err) {
      if (!(err instanceof FleetError && err.code === "TASK_NOT_FOUND")) throw err;
      await this.options.store.create(this.options.agentId, taskFromAssignment(assignment));
      return this.options.store.transition(this.options.agentId, assignment.taskId, toWorking);
    }
  }

  /** The chart's report effect: settle the Task, tell watchers, and say whether the message is done or comes back. */
  async report({ item, outcome }: ReportInput, log: Logger): Promise<DeliveryOutcome> {
    // unsettled on purpose: the Task stays WORKING and the message comes back (up to max_deliver)
    if (!outcome.ok && "retry" in outcome) {
      log.warn({ reason: outcome.reason }, "task will be retried");
      return { kind: "retry", delayMs: RETRY_DELAY_MS, reason: outcome.reason };
    }
    if (!outcome.ok && "held" in outcome) {
      // neither a success nor a failure: the breaker counts nothing (a half-open trial is free again)
      this.options.breaker().taskHeld();
      try {
        // canceled meanwhile: nothing to keep
        if (!(await this.markHeld(item.taskId, outcome.held))) return { kind: "done", already: true };
        log.info({ reason: outcome.held.reason, until: new Date(outcome.held.until).toISOString() }, "task held");
        return { kind: "held", hold: outcome.held };
      } catch (err) {
        log.warn({ err }, "task hold not recorded; it will be retried");
        return { kind: "retry", delayMs: RETRY_DELAY_MS, reason: FleetError.from(err).message };
      }
    }
    try {
      await this.settle(item.taskId, outcome, log);
      return { kind: "done" };
    } catch (err) {
      // NATS away: the task comes back shortly instead of waiting out the ack wait
      log.warn({ err }, "task not reported; it will be retried");
      return { kind: "retry", delayMs: RETRY_DELAY_MS, reason: FleetError.from(err).message };
    }
  }

  /**
   * A held Task is open and says so: SUBMITTED again (no one works on it), a status message with the reason, and
   * `metadata.held` {reason, until, detail, since} for clients and `fleet status`.
   */
  private async markHeld(taskId: string, hold: Hold): Promise<boolean> {
    const since = this.options.now();
    let marked = false;
    const task = await this.options.store.transition(this.options.agentId, taskId, (t) => {
      marked = true;
      return {
        status: { state: "TASK_STATE_SUBMITTED", timestamp: this.isoNow(), message: { messageId: `${t.id}-held`, role: "ROLE_AGENT", parts: [{ text: `held: ${hold.detail}` }] } },
        metadata: { ...t.metadata, held: { ...hold, since } },
      };
    });
    if (marked) this.publishStatus(task.id, task.contextId, "TASK_STATE_SUBMITTED", false);
    return marked;
  }

  private async settle(taskId: string, outcome: Exclude<ReportInput["outcome"], { retry: true } | { held: Hold }>, log: Logger): Promise<void> {
    const state: TaskState = outcome.ok ? "TASK_STATE_COMPLETED" : "canceled" in outcome ? "TASK_STATE_CANCELED" : "TASK_STATE_FAILED";
    let settled = false;
    // the sum over the task's model calls in this process; read before the CAS so a lost race re-reads the same count
    const tokens = this.options.tokens?.peek(this.options.agentId, taskId);
    const actual: TaskActual | undefined = tokens === undefined ? undefined : { tokens, points: pointsOf(tokens) };
    const task = await this.options.store.transition(this.options.agentId, taskId, (t) => {
      settled = true;
      return {
        ...(actual ? { metadata: { ...t.metadata, actual } } : {}),
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
    this.options.tokens?.take(this.options.agentId, taskId);
    const estimate = estimateOfTask(task);
    if (settled && actual && estimate && state === "TASK_STATE_COMPLETED") await this.options.estimator?.completed(estimate.kind, task.status.timestamp, actual.tokens);
    if (state === "TASK_STATE_COMPLETED") {
      this.options.breaker().taskSucceeded();
      // completed work blocks similar findings for the discovery window
      await this.options.dedup.completed(this.options.agentId, taskId).catch((err) => log.warn({ err }, "dedup completion not recorded"));
    } else if (state === "TASK_STATE_FAILED") this.options.breaker().taskFailed();
  }

  /** A client's CancelTask: the Task is canceled in KV at once; the chart is told by the caller. */
  async cancel(taskId: string): Promise<Task> {
    const task = await this.options.store.get(this.options.agentId, taskId);
    if (!task) throw new FleetError("TASK_NOT_FOUND", `task ${taskId} not found`);
    if (isTerminal(task.status.state)) throw new FleetError("TASK_NOT_CANCELABLE", `task ${taskId} is already ${task.status.state}`);
    const canceled = await this.options.store.transition(this.options.agentId, taskId, () => ({ status: { state: "TASK_STATE_CANCELED", timestamp: this.isoNow() } }));
    if (canceled.status.state === "TASK_STATE_CANCELED") this.publishStatus(taskId, canceled.contextId, "TASK_STATE_CANCELED", true);
    return canceled;
  }

  private publishStatus(taskId: string, contextId: string, state: TaskState, final: boolean): void {
    this.publish({ kind: "status-update", taskId, contextId, status: { state, timestamp: this.isoNow() }, final });
  }

  private publish(event: TaskEvent): void {
    this.options.nc.publish(this.options.names.agentEvents(this.options.agentId), encode(event, this.options.codec), { headers: wireHeaders(this.options.codec) });
  }

  private isoNow(): string {
    return new Date(this.options.now()).toISOString();
  }
}

/** The metadata with the estimate, unless it has one already (the same object back when nothing changes). */
function withEstimate(metadata: Record<string, unknown> | undefined, estimate: TaskEstimate | undefined): Record<string, unknown> | undefined {
  if (!estimate || (metadata && "estimate" in metadata)) return metadata;
  return { ...metadata, estimate };
}

function withoutHeld(metadata: Record<string, unknown>): Record<string, unknown> {
  const { held: _held, ...rest } = metadata;
  return rest;
}
