import { nanos } from "@nats-io/nats-core";
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiError,
  type ConsumerConfig,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import {
  ApprovalDecision,
  ApprovalRequest,
  codecForContentType,
  deadLetter,
  decode,
  encode,
  FleetError,
  HEADERS,
  wireHeaders,
  type CodecName,
  type FleetNames,
  type Clock,
} from "../protocol/index.js";

/**
 * The channel-independent half of approvals from chat: requests come out of the APPROVALS stream and are shown through
 * an {@link ApprovalChannel}; a button press comes back through {@link ApprovalDecisions.decide}, which checks the allow
 * list and records the decision where the governance process reads it.
 */

/** One chat's way of showing an approval request; Telegram and Discord implement it. */
export interface ApprovalChannel {
  /** the subject token requests for this channel are published under (`<prefix>.approval.request.<channel>`) */
  readonly channel: string;
  /**
   * Shows the request to the channel's approvers. Resolves once the chat API accepted the message; throws when it did
   * not, with a FleetError carrying `retryAfterMs` when the API said when to try again (a rate limit).
   */
  post(request: ApprovalRequest, signal: AbortSignal): Promise<void>;
}

/** What a person not on the channel's approver list is told when they press a button. */
export const NOT_ALLOWED_TEXT = "You are not allowed to decide approvals.";

/** The proposal id's shape (ProposalSubmission.id): also a subject token, so a decision can be published under it. */
export const PROPOSAL_ID = /^[A-Za-z0-9_-]{1,64}$/;

// ---------------------------------------------------------------------------------------------------------------------
// decisions

export interface ApprovalDecisionsOptions {
  js: JetStreamClient;
  names: FleetNames;
  codec: CodecName;
  /** the channel's approvers, as the channel identifies them (Telegram and Discord user ids) */
  approvers: readonly string[];
  /** the channel the decisions come through ("telegram", "discord"): the subject's channel token, which the broker holds this bridge to */
  via: string;
  clock: Clock;
  log: Logger;
}

export interface DecideInput {
  proposalId: string;
  decision: ApprovalDecision["decision"];
  by: string;
  reason?: string | undefined;
}

export interface DecideOutcome {
  decision: ApprovalDecision;
  /** true when the same person had already made the same decision (a double click): nothing new was recorded */
  duplicate: boolean;
}

/** Records one channel's approvers' decisions in the APPROVALS stream. */
export class ApprovalDecisions {
  private readonly approvers: ReadonlySet<string>;

  constructor(private readonly options: ApprovalDecisionsOptions) {
    this.approvers = new Set(options.approvers);
  }

  isAllowed(by: string): boolean {
    return this.approvers.has(by);
  }

  /**
   * Publishes the decision unless `by` is not on the allow list (APPROVER_NOT_ALLOWED, nothing published). The message id
   * names proposal, person and decision, so the stream keeps one copy of a double click and the governance process
   * sees it once.
   */
  async decide(input: DecideInput): Promise<DecideOutcome> {
    if (!this.isAllowed(input.by)) {
      this.options.log.warn({ proposalId: input.proposalId, by: input.by, via: this.options.via }, "decision refused: not an approver");
      throw new FleetError("APPROVER_NOT_ALLOWED", `${this.options.via} user ${input.by} is not on the approver list`);
    }
    if (!PROPOSAL_ID.test(input.proposalId)) {
      throw new FleetError("MESSAGE_INVALID", `"${input.proposalId.slice(0, 80)}" is not a proposal id`);
    }
    const decision: ApprovalDecision = {
      proposalId: input.proposalId,
      decision: input.decision,
      by: input.by,
      via: this.options.via,
      ...(input.reason ? { reason: input.reason.slice(0, 2000) } : {}),
      at: this.options.clock.now(),
    };
    const msgId = `decision-${input.proposalId}-${input.by}-${input.decision}`;
    const ack = await this.options.js.publish(this.options.names.approvalDecision(this.options.via, input.proposalId), encode(decision, this.options.codec), {
      headers: wireHeaders(this.options.codec, msgId),
    });
    this.options.log.info({ proposalId: input.proposalId, decision: input.decision, by: input.by, duplicate: ack.duplicate }, "decision recorded");
    return { decision, duplicate: ack.duplicate };
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// the text an approver reads

const MAX_FIELD = 600;

function clip(text: string, max = MAX_FIELD): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** "4 h", "35 min", from the request's own times, so the text does not depend on when it is delivered. */
export function formatDuration(ms: number): string {
  const minutes = Math.max(0, Math.round(ms / 60_000));
  if (minutes < 60) return `${minutes} min`;
  return `${Math.round(minutes / 60)} h`;
}

/**
 * The plain text of an approval message, the same on every channel (no markup, so an agent's summary cannot inject
 * formatting or mentions). Field lengths are capped so the message, plus the line naming who decided, stays under
 * Discord's 2000 and Telegram's 4096 characters.
 */
export function approvalText(request: ApprovalRequest): string {
  const who = `${request.agentId} proposes ${request.tool} (${request.risk})`;
  const expires = new Date(request.expiresAt).toISOString();
  if (request.kind === "expired") {
    return [`Expired: ${request.agentId}'s proposal ${request.tool} (${request.risk}) was not decided in time and will not run.`, clip(request.summary), `Proposal: ${request.proposalId}`].join("\n");
  }
  const headline =
    request.kind === "reminder"
      ? `Reminder: ${who}, still waiting for a decision`
      : request.kind === "escalation"
        ? `ESCALATION: ${who}, expires in ${formatDuration(request.expiresAt - request.at)}`
        : `Approval needed: ${who}`;
  return [headline, clip(request.summary), `Reason: ${clip(request.reason)}`, `Proposal: ${request.proposalId}`, `Expires: ${expires}`].join("\n");
}

/** Whether the message gets Approve / Reject buttons: every kind but the expiry notice. */
export function isDecidable(request: ApprovalRequest): boolean {
  return request.kind !== "expired";
}

// ---------------------------------------------------------------------------------------------------------------------
// delivery

/**
 * The durable consumer a channel's bridge reads its approval requests through. No server-side delivery limit: the
 * bridge counts failed deliveries itself and dead-letters the request with its reason, so nothing vanishes unseen.
 */
export async function ensureApprovalConsumer(jsm: JetStreamManager, names: FleetNames, channel: string): Promise<string> {
  const durable = `approvals-${channel}`;
  const stream = names.stream("APPROVALS");
  const config: Partial<ConsumerConfig> = {
    durable_name: durable,
    filter_subject: names.approvalRequest(channel),
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(60_000),
    max_deliver: -1,
  };
  try {
    await jsm.consumers.info(stream, durable);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.status === 404) {
      await jsm.consumers.add(stream, config);
      return durable;
    }
    throw err;
  }
  await jsm.consumers.update(stream, durable, config);
  return durable;
}

export interface ApprovalBridgeOptions {
  js: JetStreamClient;
  jsm: JetStreamManager;
  names: FleetNames;
  channel: ApprovalChannel;
  /** the fleet's codec, for requests published without a Content-Type header */
  codec: CodecName;
  clock: Clock;
  log: Logger;
  /** failed deliveries after which a request is dead-lettered (default 5); a non-retryable FleetError dead-letters at once */
  maxAttempts?: number;
  /** the wait before delivery n+1 after n failures, unless the chat API named one (default 5 s × 4ⁿ⁻¹, at most 10 min) */
  retryDelayMs?: (failures: number) => number;
  /** how long one post may take (default 30 s; below the consumer's 60 s ack wait) */
  postTimeoutMs?: number;
}

const defaultRetryDelay = (failures: number) => Math.min(600_000, 5_000 * 4 ** (failures - 1));

/**
 * Shows one channel's approval requests, acking each only after the chat API accepted it. A failed post is retried
 * after a delay (the API's own retry-after when it gave one); the request that still fails after `maxAttempts`
 * deliveries, or cannot be read at all, goes to the DLQ with its reason.
 */
export class ApprovalBridge {
  private messages: ConsumerMessages | undefined;
  private loop: Promise<void> | undefined;
  private stopping = false;
  private readonly inFlight = new AbortController();
  private readonly log: Logger;

  constructor(private readonly options: ApprovalBridgeOptions) {
    this.log = options.log.child({ component: "approvals", channel: options.channel.channel });
  }

  async start(): Promise<void> {
    const durable = await ensureApprovalConsumer(this.options.jsm, this.options.names, this.options.channel.channel);
    const consumer = await this.options.js.consumers.get(this.options.names.stream("APPROVALS"), durable);
    this.loop = (async () => {
      while (!this.stopping) {
        try {
          this.messages = await consumer.consume({ max_messages: 8 });
          for await (const msg of this.messages) await this.handle(msg);
        } catch (err) {
          this.log.debug({ err }, "approval subscription ended");
          if (!this.stopping) await sleep(500);
        }
      }
    })();
    this.log.info({ durable }, "approval bridge started");
  }

  /** Stops taking requests; a post still running is aborted and its request redelivered later. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.inFlight.abort();
    await this.messages?.close().catch(() => undefined);
    await this.loop;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  private async handle(msg: JsMsg): Promise<void> {
    const codec = codecForContentType(msg.headers?.get(HEADERS.contentType) || undefined, this.options.codec);
    if (!codec) return this.reject(msg, new FleetError("CONTENT_TYPE_NOT_SUPPORTED", `Content-Type ${msg.headers?.get(HEADERS.contentType) ?? ""} is neither msgpack nor JSON`));
    const decoded = decode(ApprovalRequest, msg.data, { codec });
    if (!decoded.ok) return this.reject(msg, decoded.error);
    const request = decoded.value;
    const fields = { proposalId: request.proposalId, kind: request.kind };
    // a bridge started for the first time reads the stream's history: a stale question with live buttons would only
    // mislead, and the governance process announces the expiry itself
    if (request.kind !== "expired" && request.expiresAt <= this.options.clock.now()) {
      this.log.info(fields, "request past its expiry; not shown");
      msg.ack();
      return;
    }
    try {
      await this.options.channel.post(request, AbortSignal.any([this.inFlight.signal, AbortSignal.timeout(this.options.postTimeoutMs ?? 30_000)]));
      msg.ack();
      this.log.info(fields, "approval request shown");
    } catch (err) {
      if (this.stopping) {
        msg.nak();
        return;
      }
      const failures = msg.info.deliveryCount;
      // a failure no retry can mend (a proposal id no button can carry) is dead-lettered at once
      const permanent = err instanceof FleetError && !err.retryable;
      if (permanent || failures >= (this.options.maxAttempts ?? 5)) {
        const reason = err instanceof Error ? err.message : String(err);
        const code = err instanceof FleetError ? err.code : "INTERNAL";
        return this.reject(msg, new FleetError(code, `approval request ${request.proposalId} (${request.kind}) could not be shown on ${this.options.channel.channel} after ${failures} attempt${failures === 1 ? "" : "s"}: ${reason}`, { cause: err }));
      }
      const named = err instanceof FleetError ? err.retryAfterMs : undefined;
      const delayMs = named ?? (this.options.retryDelayMs ?? defaultRetryDelay)(failures);
      msg.nak(delayMs);
      this.log.warn({ ...fields, err, failures, delayMs }, "approval request not shown; will retry");
    }
  }

  private async reject(msg: JsMsg, error: FleetError): Promise<void> {
    try {
      await deadLetter(this.options.js, this.options.names, `approval-${this.options.channel.channel}`, { subject: msg.subject, data: msg.data, msgId: `${msg.info.stream}-${msg.seq}` }, error);
      this.log.error({ code: error.code, reason: error.message }, "approval request dead-lettered");
      msg.ack();
    } catch (err) {
      // not on the DLQ, so not acked either: the request comes back and is dead-lettered on a later delivery
      this.log.error({ err }, "dead letter could not be stored");
      msg.nak(5_000);
    }
  }
}
