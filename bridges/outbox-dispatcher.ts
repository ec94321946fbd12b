import type { ConsumerMessages, JetStreamClient, JetStreamManager, JsMsg } from "@nats-io/jetstream";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
// pure functions, not the fleet's running chart: each recipient has their own window, judged per message
import { deferUntil, isQuiet, type DailyWindow, type PrincipalConfig } from "../config/index.js";
import { deadLetter, decode, ensureOutboxConsumer, FleetError, OutboxRecord, type Clock, type FleetNames } from "../protocol/index.js";

/** One chat or notification channel's way of sending; Telegram, Discord, Slack and webhooks implement it. */
export interface ChannelSender {
  readonly channel: string;
  send(record: OutboxRecord, signal: AbortSignal): Promise<void>;
}

export interface OutboxDispatcherOptions {
  js: JetStreamClient;
  jsm: JetStreamManager;
  names: FleetNames;
  sender: ChannelSender;
  principals: readonly PrincipalConfig[];
  /** the fleet's zone, for principals who do not name their own */
  timeZone: string;
  clock: Clock;
  log: Logger;
  /** failed sends before a message is dead-lettered (default 10); a non-retryable FleetError dead-letters at once */
  maxAttempts?: number;
  /** the wait before delivery n+1 after n failures, unless the sender named one (default 2ⁿ s, at most 5 min) */
  retryDelayMs?: (failures: number) => number;
}

const defaultRetryDelay = (failures: number) => Math.min(300_000, 1_000 * 2 ** failures);
/** below the consumer's 60 s ack wait: a send that takes long is not redelivered meanwhile */
const WORKING_ACK_MS = 20_000;

/**
 * Delivers one channel's OUTBOX messages through its sender, acking only after the send succeeded. A message for a
 * principal inside their own quiet hours is deferred to the window's end (a delayed redelivery), never dropped; a send
 * that keeps failing is dead-lettered with its reason.
 */
export class OutboxDispatcher {
  private messages: ConsumerMessages | undefined;
  private loop: Promise<void> | undefined;
  private stopping = false;
  private readonly log: Logger;

  constructor(private readonly options: OutboxDispatcherOptions) {
    this.log = options.log.child({ component: "outbox", channel: options.sender.channel });
  }

  async start(): Promise<void> {
    const durable = await ensureOutboxConsumer(this.options.jsm, this.options.names, this.options.sender.channel);
    const consumer = await this.options.js.consumers.get(this.options.names.stream("OUTBOX"), durable);
    this.loop = (async () => {
      while (!this.stopping) {
        try {
          this.messages = await consumer.consume({ max_messages: 16 });
          for await (const msg of this.messages) await this.handle(msg);
        } catch (err) {
          this.log.debug({ err }, "outbox subscription ended");
          await sleep(500);
        }
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.messages?.close().catch(() => undefined);
    await this.loop;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  private quietWindowOf(record: OutboxRecord): DailyWindow | undefined {
    const principal = this.options.principals.find((p) => p.channel === record.channel && p.to === record.to);
    if (!principal?.quietHours) return undefined;
    return { ...principal.quietHours, timeZone: principal.timeZone ?? this.options.timeZone };
  }

  private async handle(msg: JsMsg): Promise<void> {
    const decoded = decode(OutboxRecord, msg.data);
    if (!decoded.ok) return this.reject(msg, decoded.error);
    const record = decoded.value;
    const now = this.options.clock.now();
    const window = this.quietWindowOf(record);
    if (window && isQuiet(window, now)) {
      const delayMs = Math.max(1_000, deferUntil(window, now) - now);
      this.log.info({ to: record.to, deliverAt: new Date(now + delayMs).toISOString() }, "deferred to the end of the recipient's quiet hours");
      msg.nak(delayMs);
      return;
    }
    // a slow server (an SMTP conversation) must not outlast the ack wait and have the message handed out again
    const working = setInterval(() => msg.working(), WORKING_ACK_MS);
    try {
      await this.options.sender.send(record, AbortSignal.timeout(30_000));
      msg.ack();
      this.log.info({ to: record.to, source: record.source }, "delivered");
    } catch (err) {
      const attempts = msg.info.deliveryCount;
      const reason = err instanceof Error ? err.message : String(err);
      // a refusal no retry can mend (an SMTP 5xx, a send whose outcome is unknown) goes to the DLQ at once
      if (err instanceof FleetError && !err.retryable) {
        return this.reject(msg, new FleetError(err.code, `delivery to ${record.channel}/${record.to}: ${reason}`, { cause: err }));
      }
      if (attempts >= (this.options.maxAttempts ?? 10)) {
        const code = err instanceof FleetError ? err.code : "INTERNAL";
        return this.reject(msg, new FleetError(code, `delivery to ${record.channel}/${record.to} failed ${attempts} times: ${reason}`, { cause: err }));
      }
      const named = err instanceof FleetError ? err.retryAfterMs : undefined;
      const delayMs = named ?? (this.options.retryDelayMs ?? defaultRetryDelay)(attempts);
      msg.nak(delayMs);
      this.log.warn({ err, attempts, delayMs }, "delivery failed; will retry");
    } finally {
      clearInterval(working);
    }
  }

  private async reject(msg: JsMsg, error: FleetError): Promise<void> {
    try {
      await deadLetter(this.options.js, this.options.names, `outbox`, { subject: msg.subject, data: msg.data, msgId: `${msg.info.stream}-${msg.seq}` }, error);
      this.log.error({ code: error.code, reason: error.message }, "outbox message dead-lettered");
      msg.ack();
    } catch (err) {
      // not on the DLQ, so not acked either: the message comes back and is dead-lettered on a later delivery
      this.log.error({ err }, "dead letter could not be stored");
      msg.nak(5_000);
    }
  }
}

/** The channel for a laptop fleet with no chat configured: each message is a line on this process's output. */
export function consoleSender(write: (line: string) => void, channel = "console"): ChannelSender {
  return {
    channel,
    async send(record) {
      write(`[${record.channel} → ${record.to}] ${record.text}`);
    },
  };
}
