import { setTimeout as sleep } from "node:timers/promises";
import type { Consumer, ConsumerMessages, JsMsg } from "@nats-io/jetstream";
import type { Logger } from "pino";
import { decode, FleetError, HEADERS, negotiate, TaskAssignment, type CodecName, type Hold } from "../protocol/index.js";
import { decide, RETRY_DELAY_MS, type DeliveryOutcome } from "./delivery-outcome.js";

/** The parts of a JetStream message the consumer reads and settles (tests use their own). */
export type TaskMessage = Pick<JsMsg, "data" | "subject" | "seq" | "headers" | "info" | "ack" | "nak" | "term" | "working">;

/** What the consumer needs from the agent it feeds. */
export interface TaskWork {
  /** resolves once the agent's chart is free to take a task (or has stopped) */
  idle(): Promise<void>;
  /** false while the breaker holds tasks back */
  mayTakeTask(): boolean;
  /**
   * claims the Task, runs it through the chart and says what became of it; failures come back as outcomes.
   * `traceparent`: the trace the assignment was sent in, when its sender was traced
   */
  run(assignment: TaskAssignment, log: Logger, traceparent?: string): Promise<DeliveryOutcome>;
}

/** Stores a message's original bytes in the DLQ with the reason; rejects when it could not. */
export type StoreDeadLetter = (original: { subject: string; data: Uint8Array; msgId: string }, error: FleetError) => Promise<void>;

export interface TaskConsumerOptions {
  agentId: string;
  codec: CodecName;
  maxPayloadBytes: number;
  workingAckMs: number;
  work: TaskWork;
  deadLetter: StoreDeadLetter;
  /** keeps a held task's assignment until its hold ends (KV `held`), so its message can be acked */
  held: { hold(assignment: TaskAssignment, hold: Hold): Promise<void> };
  log: Logger;
}

const WORKING: DeliveryOutcome = { kind: "working" };
/** the host is stopping: hand the message back at once, another process (or this one restarted) takes it */
const HANDED_BACK: DeliveryOutcome = { kind: "retry", delayMs: 0, reason: "the agent is stopping" };

/**
 * The one owner of an agent's task messages: it takes each assignment from the durable consumer, keeps its claim while
 * the task waits or runs, and settles the message once, from the outcome the work returns (`settleMessage`).
 */
export class TaskConsumer {
  private stopping = false;
  private messages: ConsumerMessages | undefined;
  private loop: Promise<void> | undefined;

  constructor(private readonly options: TaskConsumerOptions) {}

  start(consumer: Consumer): void {
    this.loop = this.consume(consumer);
  }

  /** Stops intake; the task in hand, if any, may finish within `graceMs`. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    // ends the iterator once the task in hand (if any) is done
    void this.messages?.close().catch(() => undefined);
    const grace = new AbortController();
    await Promise.race([this.loop, sleep(graceMs, undefined, { signal: grace.signal }).catch(() => undefined)]);
    grace.abort();
  }

  /**
   * One long-lived pull subscription (cheaper per task than a pull request each time); the consumer's max_ack_pending of
   * 1 means the next task is not even sent before this one is settled, so a pull for ten is still one task at a time, and
   * it saves a pull request (a socket write) per task. The iterator re-pulls by itself after a reconnect.
   */
  private async consume(consumer: Consumer): Promise<void> {
    while (!this.stopping) {
      try {
        this.messages = await consumer.consume({ max_messages: 10, expires: 5_000 });
        // stop() may have come while the subscription was being made, with nothing yet to close
        if (this.stopping) await this.messages.close();
        for await (const msg of this.messages) {
          await this.receive(msg).catch((err) => this.options.log.error({ err, seq: msg.seq }, "task handling failed; it will be redelivered"));
          if (this.stopping) break;
        }
      } catch (err) {
        // the server is away (restart, partition) or the consumer was recreated: start over shortly
        this.options.log.debug({ err }, "task subscription ended");
        await sleep(500);
      }
    }
  }

  private async receive(msg: TaskMessage): Promise<void> {
    this.options.log.debug({ seq: msg.seq, deliveryCount: msg.info.deliveryCount }, "task message received");
    const negotiated = negotiate(msg, this.options.codec);
    if (!negotiated.ok) return this.settle(msg, { kind: "dead-letter", error: negotiated.error }, this.options.log);
    const decoded = decode(TaskAssignment, msg.data, { codec: negotiated.codec, maxBytes: this.options.maxPayloadBytes });
    if (!decoded.ok) return this.settle(msg, { kind: "dead-letter", error: decoded.error }, this.options.log);
    const assignment = decoded.value;
    const log = this.options.log.child({ taskId: assignment.taskId });
    if (assignment.agentId !== this.options.agentId) {
      return this.settle(msg, { kind: "dead-letter", error: new FleetError("MESSAGE_INVALID", `assignment for ${assignment.agentId} arrived at ${this.options.agentId}`) }, log);
    }
    // the claim is kept from receipt to settlement (waiting for the chart, a breaker hold, long work): a process that
    // dies stops sending these and the task is redelivered after the ack wait
    const claim = setInterval(() => void this.settle(msg, WORKING, log).catch((err) => log.debug({ err }, "working-ack not sent")), this.options.workingAckMs);
    let outcome: DeliveryOutcome;
    try {
      outcome = (await this.ready(log)) ? await this.options.work.run(assignment, log, msg.headers?.get(HEADERS.traceparent) || undefined) : HANDED_BACK;
    } catch (err) {
      // run returns its failures as outcomes; anything else is a bug, and the task still comes back
      log.error({ err }, "task run failed unexpectedly");
      outcome = { kind: "retry", delayMs: RETRY_DELAY_MS, reason: "the task run failed unexpectedly" };
    } finally {
      clearInterval(claim);
    }
    await settleMessage(msg, outcome, { deadLetter: this.options.deadLetter, log, keep: (hold) => this.options.held.hold(assignment, hold) });
  }

  /**
   * Waits until the chart is free and the breaker lets a task through. An open breaker holds the task: it stays
   * SUBMITTED, its message keeps its claim (no redelivery, no delivery counted, not a failure). False when stopping.
   */
  private async ready(log: Logger): Promise<boolean> {
    if (this.stopping) return false;
    await this.options.work.idle();
    if (!this.options.work.mayTakeTask()) {
      log.info({}, "breaker open: task held");
      while (!this.options.work.mayTakeTask()) {
        if (this.stopping) return false;
        await sleep(Math.min(1_000, this.options.workingAckMs));
      }
    }
    return !this.stopping;
  }

  private settle(msg: TaskMessage, outcome: DeliveryOutcome, log: Logger): Promise<void> {
    return settleMessage(msg, outcome, { deadLetter: this.options.deadLetter, log });
  }
}

/** The one function that acks, naks, terms or working-acks a task message, as `decide` says for the outcome. */
export async function settleMessage(
  msg: TaskMessage,
  outcome: DeliveryOutcome,
  deps: { deadLetter: StoreDeadLetter; log: Logger; keep?: ((hold: Hold) => Promise<void>) | undefined },
): Promise<void> {
  const action = decide(outcome);
  switch (action.op) {
    case "ack":
      msg.ack();
      return;
    case "nak":
      msg.nak(action.delayMs);
      return;
    case "working":
      msg.working();
      return;
    case "hold": {
      // kept first, acked second: a crash in between redelivers the message, which is held again under the same key
      try {
        if (!deps.keep) throw new FleetError("INTERNAL", "a held task reached a consumer that cannot keep it");
        await deps.keep(action.hold);
      } catch (err) {
        deps.log.warn({ err }, "held task not kept; the message will be redelivered");
        return settleMessage(msg, { kind: "retry", delayMs: RETRY_DELAY_MS, reason: "held task not kept" }, deps);
      }
      msg.ack();
      return;
    }
    case "term": {
      const error = action.deadLetter;
      deps.log.warn({ code: error.code, subject: msg.subject, seq: msg.seq }, "task message dead-lettered");
      try {
        await deps.deadLetter({ subject: msg.subject, data: msg.data, msgId: `${msg.info.stream}-${msg.seq}` }, error);
      } catch (err) {
        // nothing is dropped silently: the message comes back and is dead-lettered again (or, past max_deliver, the
        // server's advisory lands in the DLQ)
        deps.log.error({ err, code: error.code }, "dead letter could not be stored; the message will be redelivered");
        return settleMessage(msg, { kind: "retry", delayMs: RETRY_DELAY_MS, reason: "dead letter not stored" }, deps);
      }
      msg.term();
      return;
    }
  }
}
