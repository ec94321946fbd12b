import type { ConsumerMessages, JetStreamClient, JetStreamManager, JsMsg } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Span, Tracer } from "@opentelemetry/api";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import type { FleetConfig } from "../config/index.js";
import {
  ApprovalDecision,
  CALLERS,
  deadLetter,
  decode,
  encode,
  endpoint,
  FleetError,
  FleetService,
  failSpan,
  GEN_AI,
  HEADERS,
  inGenAiSpan,
  isFinalProposalState,
  ProposalActionRequest,
  ProposalSubmission,
  type CodecName,
  type ErrorPayload,
  type FleetNames,
  type ProposalRecord,
  nowOf,
  withTraceparent,
  type Clock,
} from "../protocol/index.js";
import { ApprovalNotices } from "./approval-notices.js";
import { decisionRefusal } from "./decision-check.js";
import { ensureGovernanceConsumers } from "./governance-consumers.js";
import { ProposalIndex } from "./proposal-index.js";
import { nextDeadline, type ProposalEvent, type ProposalPolicy, rollbackRefusal } from "./proposal-machine.js";
import { judgeSubmission } from "./proposal-judge.js";
import { stepProposal } from "./proposal-step.js";
import { ProposalStore, type StoredProposal } from "./proposal-store.js";
import type { ToolDefinition } from "./tool.js";
import { peerToolTimeoutMs } from "./peers/index.js";
import { callTool, toolCallWaitMs } from "./tool-caller.js";

/** Errors that say nothing about the tool's outcome: the call is asked again, it is not a failed execution. */
// TOOL_SOURCE_UNAVAILABLE: the tool's MCP server is restarting, and the call never reached it (or the tool is safe to repeat)
const NOT_A_FAILURE: ReadonlySet<string> = new Set(["TOOL_IN_PROGRESS", "TOOL_UNAVAILABLE", "TIMEOUT", "TOOL_SOURCE_UNAVAILABLE"]);
const WAIT_FIRST_MS = 500;
const WAIT_MAX_MS = 30_000;

export interface GovernanceServiceOptions {
  /** its tool calls and every write */
  nc: NatsConnection;
  /** where `fleet rollback` is served (replies only); default `nc` */
  serveNc?: NatsConnection | undefined;
  js: JetStreamClient;
  jsm: JetStreamManager;
  names: FleetNames;
  codec: CodecName;
  config: FleetConfig;
  proposalsKv: KV;
  tools: readonly ToolDefinition[];
  /** tools that appear at runtime (MCP servers'), as the tool hosts list them; consulted after `tools` */
  liveTools?: { get(name: string): ToolDefinition | undefined; stop?(): Promise<void> } | undefined;
  policy: ProposalPolicy;
  /** the agent's spend so far today (reserved included) and its cap; undefined when the ledger cannot be read */
  budgetOf: (agentId: string) => Promise<{ spentUsd: number; capUsd: number } | undefined>;
  clock?: Clock;
  log: Logger;
  /** how often deadlines and due retries are checked; 0: never on its own (tests call tick()) */
  tickMs?: number;
  toolTimeoutMs?: number;
  /** submissions handled at once */
  concurrency?: number;
  /** each execution of a proposal an `execute_tool` span, parent of the tool host's (telemetry on); none without */
  tracer?: Tracer | undefined;
}

/**
 * The governance process: takes proposals from PROPOSALS, has Sentinel judge them, runs approved ones through the tool
 * hosts, waits for humans on CONFIRM (with reminder, escalation and expiry at absolute deadlines), takes decisions from
 * APPROVALS, and rolls PROPOSE effects back inside their window. It is a singleton (a lease in `fleet run governance`);
 * every write is by revision, and everything it needs to go on after a crash is in KV, so a restart resumes where the
 * last process stopped: a proposal found executing is re-run under the same idempotency key, never a second time.
 */
export class GovernanceService {
  private readonly store: ProposalStore;
  private readonly notices: ApprovalNotices;
  private readonly index = new ProposalIndex();
  private readonly tools: Map<string, ToolDefinition>;
  private readonly clock: () => number;
  private readonly log: Logger;
  private readonly serials = new Map<string, Promise<unknown>>();
  private readonly executing = new Set<string>();
  private readonly work = new Set<Promise<unknown>>();
  private streams: ConsumerMessages[] = [];
  private loops: Promise<void>[] = [];
  /** `fleet rollback`: the one request/reply endpoint of governance, on the fleet's service skeleton */
  private readonly requests: FleetService;
  private ticker: NodeJS.Timeout | undefined;
  private stopping = false;
  private readonly stopped = new AbortController();

  constructor(private readonly options: GovernanceServiceOptions) {
    this.store = new ProposalStore(options.proposalsKv, options.js, options.names, options.codec);
    this.notices = new ApprovalNotices(options.js, options.names, options.codec, options.config.governance.approvals);
    this.tools = new Map(options.tools.map((t) => [t.name, t]));
    this.clock = nowOf(options.clock);
    this.log = options.log.child({ component: "governance" });
    this.requests = new FleetService({
      nc: options.serveNc ?? options.nc,
      name: "fleet-governance",
      version: "1.0.0",
      description: "proposals: rollback of a PROPOSE effect inside its window",
      queue: "governance",
      endpoints: [endpoint({ name: "rollback", subject: options.names.governance("rollback"), request: ProposalActionRequest, handle: (request) => this.rollback(request) })],
      codec: options.codec,
      maxPayloadBytes: options.config.fleet.maxPayloadBytes,
      deadLetter: (subject, data, error) =>
        deadLetter(options.js, options.names, "governance", { subject, data }, error).catch((err: unknown) => this.log.error({ err }, "could not dead-letter a governance request")),
      log: this.log,
    });
  }

  async start(): Promise<void> {
    for (const record of await this.store.list()) this.index.put(record);
    const { intake, decisions } = await ensureGovernanceConsumers(this.options.js, this.options.jsm, this.options.names);
    this.loops.push(this.consume(intake, "PROPOSALS", (msg) => this.onSubmission(msg)));
    this.loops.push(this.consume(decisions, "APPROVALS", (msg) => this.onDecision(msg)));
    this.requests.start();
    // a proposal left executing by a crashed process is finished first, under the same idempotency key
    for (const record of this.index.open()) if (record.state === "executing") this.track(this.runTool(record.id));
    await this.tick();
    if ((this.options.tickMs ?? 1000) > 0) this.ticker = setInterval(() => void this.tick(), this.options.tickMs ?? 1000).unref();
    this.log.info({ open: this.index.open().length, tools: this.tools.size }, "governance started");
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.stopped.abort();
    clearInterval(this.ticker);
    await this.requests.stop();
    await Promise.all(this.streams.map((s) => s.close().catch(() => undefined)));
    await Promise.all(this.loops);
    await Promise.allSettled([...this.work]);
    await this.options.liveTools?.stop?.();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** Fires what is due: approval notices and expiry on CONFIRM proposals, re-tries of failed executions. */
  async tick(): Promise<void> {
    const now = this.clock();
    const due: Promise<unknown>[] = [];
    for (const record of this.index.open()) {
      // the chart would find nothing to do before the next deadline: skip the step
      if (record.state === "awaiting_human" && now >= nextDeadline(record)) due.push(this.apply(record.id, { type: "TICK", now }));
      else if (record.state === "sentinel_approved" && (record.retryAt ?? 0) <= now) due.push(this.execute(record.id));
    }
    this.index.prune(now);
    await Promise.allSettled(due);
  }

  /** Resolves once every proposal step started so far has finished (tests and the benchmark wait on it). */
  async settled(): Promise<void> {
    while (this.work.size > 0) await Promise.allSettled([...this.work]);
  }

  private consume(messages: Promise<ConsumerMessages>, stream: string, handle: (msg: JsMsg) => Promise<void>): Promise<void> {
    const limit = this.options.concurrency ?? 256;
    return (async () => {
      const iterator = await messages;
      this.streams.push(iterator);
      const inFlight = new Set<Promise<void>>();
      for await (const msg of iterator) {
        // a submission or decision sent inside a span (an agent's task, a traced bridge): an execution it starts at once
        // continues that trace; one started later by the ticker is a trace of its own
        const p = withTraceparent(msg.headers?.get(HEADERS.traceparent) || undefined, () => handle(msg)).catch((err: unknown) => {
          this.log.error({ err, stream }, "handling a message failed; it will be redelivered");
          msg.nak(1_000);
        });
        inFlight.add(p);
        void p.finally(() => inFlight.delete(p));
        if (inFlight.size >= limit) await Promise.race(inFlight);
      }
      await Promise.allSettled([...inFlight]);
    })().catch((err: unknown) => {
      if (!this.stopping) this.log.error({ err, stream }, "consumer stopped");
    });
  }

  private async onSubmission(msg: JsMsg): Promise<void> {
    const decoded = decode(ProposalSubmission, msg.data, { codec: this.options.codec });
    if (!decoded.ok) return this.reject(msg, decoded.error);
    const submission = decoded.value;
    const subjectAgent = msg.subject.split(".").at(-2);
    if (subjectAgent !== submission.agentId) {
      return this.reject(msg, new FleetError("MESSAGE_INVALID", `proposal ${submission.id} names agent "${submission.agentId}" but came on ${msg.subject}`));
    }
    // a resubmission arriving while the first copy is being judged is the same proposal
    if (this.index.get(submission.id)) {
      msg.ack();
      return;
    }
    const budget = await this.options.budgetOf(submission.agentId).catch(() => undefined);
    // judged and entered into the index in one synchronous step (see judgeSubmission)
    const tools = { get: (name: string) => this.tools.get(name) ?? this.options.liveTools?.get(name) };
    const { verdict, record, emitted } = judgeSubmission(submission, budget, this.clock(), { config: this.options.config, tools, index: this.index, policy: this.options.policy });
    this.index.put(record);
    const created = await this.store.create(record).catch((err: unknown) => {
      this.index.delete(record.id);
      throw err;
    });
    if (!created) {
      // a redelivery after a crash, or a resubmission: carry on from where the stored proposal is
      const stored = await this.store.get(submission.id);
      this.index.delete(record.id);
      if (stored) this.index.put(stored.record, stored.revision);
      msg.ack();
      if (stored?.record.state === "sentinel_approved") this.track(this.execute(stored.record.id));
      if (stored?.record.state === "executing") this.track(this.runTool(stored.record.id));
      return;
    }
    this.index.put(record, created.revision);
    await this.store.publishHistory(record, 0);
    await this.effects(record, emitted);
    msg.ack();
    if (verdict.outcome === "rejected") this.log.info({ proposalId: record.id, agentId: record.agentId, tool: record.tool, rule: verdict.rejectedBy?.rule, why: verdict.rejectedBy?.reason }, "proposal rejected by Sentinel");
    if (record.state === "executing") this.track(this.runTool(record.id));
  }

  private async onDecision(msg: JsMsg): Promise<void> {
    const decoded = decode(ApprovalDecision, msg.data, { codec: this.options.codec });
    if (!decoded.ok) return this.reject(msg, decoded.error);
    const decision = decoded.value;
    // the channel is the subject's, which the broker proves; the payload's `via` and `by` are held to it
    const subject = this.options.names.approvalDecisionOf(msg.subject);
    if (!subject) return this.reject(msg, new FleetError("MESSAGE_INVALID", `decision for ${decision.proposalId} came on ${msg.subject}`));
    const refusal = decisionRefusal(this.options.config, subject, decision);
    if (refusal) return this.reject(msg, refusal);
    const stored = await this.store.get(decision.proposalId);
    if (!stored) return this.reject(msg, new FleetError("PROPOSAL_NOT_FOUND", `no proposal ${decision.proposalId}`));
    const after = await this.apply(decision.proposalId, { type: "DECISION", decision, now: this.clock() }, `${decision.decision} by ${decision.by} via ${decision.via}`);
    if (after?.state === stored.record.state) this.log.info({ proposalId: decision.proposalId, state: stored.record.state, by: decision.by }, "decision ignored: the proposal no longer waits for one");
    msg.ack();
    if (after?.state === "sentinel_approved") this.track(this.execute(decision.proposalId));
  }

  private async rollback({ proposalId, by, reason }: ProposalActionRequest): Promise<ProposalRecord | undefined> {
    return this.serial(proposalId, async () => {
      const stored = await this.store.get(proposalId);
      if (!stored) throw new FleetError("PROPOSAL_NOT_FOUND", `no proposal ${proposalId}`);
      const refusal = rollbackRefusal(stored.record, this.clock());
      if (refusal) throw new FleetError("PROPOSAL_STATE", `proposal ${proposalId} cannot be rolled back: ${refusal}`);
      await callTool(this.options.nc, this.options.names, stored.record.tool, {
        agentId: stored.record.agentId, input: stored.record.input, proposalId, idempotencyKey: proposalId, mode: "rollback",
      }, { codec: this.options.codec, timeoutMs: this.callTimeoutMs(stored.record.tool), as: CALLERS.governance });
      return this.applyUnlocked(proposalId, { type: "ROLLED_BACK", by, now: this.clock() }, `rolled back by ${by}${reason ? `: ${reason}` : ""}`);
    });
  }

  /** How long a call of the tool is waited for: the configured wait, or longer for a tool that runs longer (a peer's skill). */
  private callTimeoutMs(tool: string): number {
    return toolCallWaitMs(this.options.toolTimeoutMs ?? 60_000, peerToolTimeoutMs(this.options.config, tool));
  }

  /** Moves a sentinel-approved proposal to executing (counting the attempt) and runs its tool. */
  private async execute(id: string): Promise<void> {
    if (this.executing.has(id) || this.stopping) return;
    this.executing.add(id);
    try {
      const after = await this.apply(id, { type: "EXECUTION_STARTED", now: this.clock() });
      if (after?.state === "executing") await this.runToolUnguarded(id, after);
    } finally {
      this.executing.delete(id);
    }
  }

  private async runTool(id: string): Promise<void> {
    if (this.executing.has(id)) return;
    this.executing.add(id);
    try {
      const stored = this.index.stored(id) ?? (await this.store.get(id));
      if (stored?.record.state === "executing") await this.runToolUnguarded(id, stored.record);
    } finally {
      this.executing.delete(id);
    }
  }

  /** One execution of an executing proposal: its tool called until it answers, then the outcome applied. */
  private runToolUnguarded(id: string, record: ProposalRecord): Promise<void> {
    const attributes = {
      [GEN_AI.toolName]: record.tool,
      [GEN_AI.toolType]: "function",
      [GEN_AI.agentId]: record.agentId,
      "natsfleet.proposal.id": id,
      "natsfleet.proposal.attempt": record.attempts,
      ...(record.taskId ? { "natsfleet.task.id": record.taskId } : {}),
    };
    return inGenAiSpan(this.options.tracer, { operation: "execute_tool", target: record.tool, attributes }, (span) => this.executeProposal(id, record, span));
  }

  private async executeProposal(id: string, record: ProposalRecord, span: Span | undefined): Promise<void> {
    const request = { agentId: record.agentId, input: record.input, proposalId: id, idempotencyKey: id, mode: "run" as const, ...(record.taskId ? { taskId: record.taskId } : {}) };
    let event: ProposalEvent;
    let waitMs = WAIT_FIRST_MS;
    for (;;) {
      try {
        // as governance, for the proposal's agent: the tool host runs it only as the proposal executing this very call
        const result = await callTool(this.options.nc, this.options.names, record.tool, request, { codec: this.options.codec, timeoutMs: this.callTimeoutMs(record.tool), as: CALLERS.governance });
        event = { type: "EXECUTION_SUCCEEDED", output: result.output, now: this.clock() };
        break;
      } catch (err) {
        const error = FleetError.from(err);
        if (!NOT_A_FAILURE.has(error.code)) {
          event = { type: "EXECUTION_FAILED", error: error.toPayload(), now: this.clock() };
          break;
        }
        // the tool did not fail: it is still running, no host serves it right now, or the answer was lost. Asking again
        // under the same idempotency key is safe, so the proposal waits executing instead of spending an attempt; on
        // shutdown it is left executing in KV and the next governance process picks it up
        if (this.stopping) {
          span?.setAttribute("natsfleet.proposal.outcome", "left_executing");
          return;
        }
        if (waitMs === WAIT_FIRST_MS) this.log.warn({ proposalId: id, tool: record.tool, code: error.code }, "tool not answering; the proposal waits executing and asks again");
        // a host's retry-after is the latest the call could still finish; a finished call answers sooner than that
        await sleep(Math.min(error.retryAfterMs ?? waitMs, waitMs), undefined, { signal: this.stopped.signal }).catch(() => undefined);
        waitMs = Math.min(waitMs * 2, WAIT_MAX_MS);
      }
    }
    const after = await this.apply(id, event);
    // the proposal's state after the execution: completed, sentinel_approved (a retry is due), dead_letter, …
    span?.setAttribute("natsfleet.proposal.outcome", after?.state ?? "unknown");
    if (span && event.type === "EXECUTION_FAILED") failSpan(span, event.error.code, event.error.message.slice(0, 200));
  }

  /** Applies one event to a proposal by revision, then publishes the transition and runs what the chart emitted. */
  private apply(id: string, event: ProposalEvent, note?: string): Promise<ProposalRecord | undefined> {
    return this.serial(id, () => this.applyUnlocked(id, event, note));
  }

  private async applyUnlocked(id: string, event: ProposalEvent, note?: string): Promise<ProposalRecord | undefined> {
    for (let attempt = 0; attempt < 5; attempt++) {
      // what this process wrote last is usually still current: try it first, and read only after losing a race
      const stored: StoredProposal | undefined = (attempt === 0 ? this.index.stored(id) : undefined) ?? (await this.store.get(id));
      if (!stored) return undefined;
      const step = stepProposal(stored.record, this.options.policy, event, note);
      if (!step.changed) return stored.record;
      let written: StoredProposal;
      try {
        written = await this.store.update(step.record, stored.revision);
      } catch (err) {
        if (err instanceof FleetError && err.code === "CONFLICT") continue;
        throw err;
      }
      this.index.put(step.record, written.revision);
      if (step.record.state !== stored.record.state) await this.store.publishHistory(step.record, stored.record.history.length);
      await this.effects(step.record, step.emitted);
      return step.record;
    }
    throw new FleetError("CONFLICT", `proposal ${id} kept changing under ${event.type}`);
  }

  private async effects(record: ProposalRecord, emitted: ReturnType<typeof stepProposal>["emitted"]): Promise<void> {
    for (const effect of emitted) {
      if (effect.type === "proposal.notify") {
        await this.notices.publish(record, effect.kind, this.clock());
        this.log.info({ proposalId: record.id, kind: effect.kind, channels: this.notices.channelsFor(effect.kind) }, "approval notice sent");
      } else {
        const reason = effect.error ? FleetError.fromPayload(effect.error as ErrorPayload) : new FleetError("INTERNAL", "execution failed");
        await deadLetter(this.options.js, this.options.names, "proposal", { subject: this.options.names.proposal(record.agentId, "dead_letter"), data: encode(record, this.options.codec), msgId: `proposal-${record.id}` }, reason);
        this.log.warn({ proposalId: record.id, attempts: record.attempts, code: reason.code }, "proposal dead-lettered after failed executions");
      }
    }
  }

  private serial<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.serials.get(id) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(fn);
    this.serials.set(id, next);
    void next.finally(() => this.serials.get(id) === next && this.serials.delete(id)).catch(() => undefined);
    return next;
  }

  private track(p: Promise<unknown>): void {
    const tracked = p.catch((err: unknown) => this.log.error({ err }, "proposal step failed; the next tick retries it"));
    this.work.add(tracked);
    void tracked.finally(() => this.work.delete(tracked));
  }

  private async reject(msg: JsMsg, error: FleetError): Promise<void> {
    this.log.warn({ subject: msg.subject, code: error.code, why: error.message }, "governance input refused and dead-lettered");
    await deadLetter(this.options.js, this.options.names, "governance", { subject: msg.subject, data: msg.data }, error);
    msg.ack();
  }

  /** For tests and `fleet proposals`: what governance holds in memory for an open proposal. */
  openProposals(): ProposalRecord[] {
    return this.index.open().filter((r) => !isFinalProposalState(r.state));
  }
}
