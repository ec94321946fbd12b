import type { JetStreamClient } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { Msg, NatsConnection, Subscription } from "@nats-io/nats-core";
import type { Logger } from "pino";
import type { FleetConfig } from "../config/index.js";
import {
  deadLetter,
  decode,
  FleetError,
  issuesOf,
  needsProposal,
  negotiate,
  replyError,
  replyResult,
  ToolCallRequest,
  type CodecName,
  type FleetNames,
  type ToolCallResult,
} from "../protocol/index.js";
import { AuditChain } from "./audit-chain.js";
import { checkAllowed, checkCallTargets, checkProposal } from "./call-checks.js";
import { ToolCatalogue } from "./tool-catalogue.js";
import { ToolRuns, type ToolRunClaim, type ToolRunMode, type ToolRunOutcome } from "./tool-runs.js";
import type { ToolContext, ToolDefinition } from "./tool.js";

/** The queue group of every tool host: a call goes to one host that serves the tool. */
export const TOOLS_QUEUE = "tools";

const DEFAULT_TIMEOUT_MS = 30_000;
/** how long after its signal fired a handler may take to stop before the host answers without it */
const ABORT_GRACE_MS = 2_000;

export interface ToolHostOptions {
  nc: NatsConnection;
  js: JetStreamClient;
  names: FleetNames;
  codec: CodecName;
  config: FleetConfig;
  tools: readonly ToolDefinition[];
  kv: { proposals: KV; toolruns: KV };
  /** this host's name: it serves the tools whose `hosts` include it, or name no hosts */
  host: string;
  log: Logger;
  clock?: { now(): number };
  /** a handler's AbortSignal fires after this long (default 30 s) */
  timeoutMs?: number;
}

type Decoded = ReturnType<typeof ToolCallRequest.parse>;
type Outcome = { ok: true; output: unknown; replayed: boolean } | { ok: false; error: FleetError };

/**
 * Serves `<prefix>.tool.<name>` for each tool it hosts, in queue group "tools". Every call is checked here whatever the
 * caller checked before (BLOCK, the agent's allow list, the proposal behind a PROPOSE or CONFIRM call, the input's
 * schema), runs at most once per idempotency key, and lands in the audit chain — refused calls too — before the reply.
 */
export class ToolHost {
  private readonly catalogue: ToolCatalogue;
  private readonly audit: AuditChain;
  private readonly runs: ToolRuns;
  private readonly subs: Subscription[] = [];
  private readonly inFlight = new Set<Promise<unknown>>();
  /** runs already answered (TOOL_OUTCOME_UNKNOWN) whose end is still to be recorded */
  private readonly late = new Set<Promise<unknown>>();
  private readonly now: () => number;
  private readonly timeoutMs: number;

  constructor(private readonly o: ToolHostOptions) {
    this.catalogue = new ToolCatalogue(o.tools);
    this.audit = new AuditChain({ js: o.js, names: o.names, codec: o.codec, log: o.log.child({ component: "audit-chain" }) });
    const clock = o.clock ?? { now: () => Date.now() };
    this.now = () => clock.now();
    this.runs = new ToolRuns(o.kv.toolruns, o.codec, o.host, this.now);
    this.timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** The tools this host serves. */
  get served(): ToolDefinition[] {
    return this.catalogue.list({ host: this.o.host });
  }

  async start(): Promise<void> {
    await this.audit.start();
    for (const tool of this.served) {
      this.subs.push(
        this.o.nc.subscribe(this.o.names.tool(tool.name), {
          queue: TOOLS_QUEUE,
          callback: (err, msg) => {
            if (!err) this.track(this.handle(tool, msg));
          },
        }),
      );
    }
    this.o.log.info({ host: this.o.host, tools: this.served.map((t) => t.name) }, "tool host started");
  }

  /**
   * Stops taking calls, waits for those under way, then for the audit records. A run that already outlived its answer gets
   * one more grace period to be recorded; after that its record stays "started", which is the truth: outcome unknown.
   */
  async stop(): Promise<void> {
    for (const sub of this.subs.splice(0)) sub.unsubscribe();
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
    if (this.late.size > 0) {
      await withDeadline(Promise.allSettled([...this.late]), ABORT_GRACE_MS);
      if (this.late.size > 0) this.o.log.warn({ runs: this.late.size }, "stopping with tool runs that never finished; their outcome stays unknown");
    }
    await this.audit.stop();
    this.o.log.info({ host: this.o.host }, "tool host stopped");
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  get busy(): number {
    return this.inFlight.size;
  }

  private track(work: Promise<unknown>): void {
    const tracked = work.catch((err: unknown) => this.o.log.error({ err: String(err) }, "tool call handling failed")).finally(() => this.inFlight.delete(tracked));
    this.inFlight.add(tracked);
  }

  private async handle(tool: ToolDefinition, msg: Msg): Promise<void> {
    const startedAt = this.now();
    const negotiated = negotiate(msg, this.o.codec);
    const codec = negotiated.ok ? negotiated.codec : this.o.codec;
    const decoded = negotiated.ok ? decode(ToolCallRequest, msg.data, { codec, maxBytes: this.o.config.fleet.maxPayloadBytes }) : negotiated;
    if (!decoded.ok) return this.refuseEnvelope(tool, msg, decoded.error, codec);
    const request = decoded.value;
    const log = this.o.log.child({ component: "tool-host", tool: tool.name, agentId: request.agentId, proposalId: request.proposalId });

    let outcome: Outcome;
    try {
      outcome = await this.call(tool, request, log);
    } catch (err) {
      outcome = { ok: false, error: FleetError.from(err) };
    }
    const durationMs = Math.max(0, this.now() - startedAt);
    if (outcome.ok) log.info({ mode: request.mode, durationMs, replayed: outcome.replayed }, "tool call done");
    else log.info({ mode: request.mode, durationMs, code: outcome.error.code, reason: outcome.error.message }, "tool call refused or failed");

    await this.audit
      .append({
        agentId: request.agentId,
        tool: tool.name,
        risk: tool.risk,
        input: request.input,
        ...(outcome.ok ? { output: outcome.output } : { error: outcome.error.toPayload() }),
        ok: outcome.ok,
        durationMs,
        costUsd: outcome.ok && !outcome.replayed ? (tool.costUsd ?? 0) : 0,
        ...(request.proposalId ? { proposalId: request.proposalId } : {}),
        mode: request.mode,
        at: startedAt,
      })
      // the effect (if any) has happened: its caller still gets the answer, and the operator a loud log line
      .catch((err: unknown) => log.error({ err: String(err), ok: outcome.ok }, "tool call not recorded in the audit trail"));

    if (msg.reply) {
      if (outcome.ok) replyResult(msg, { output: outcome.output, durationMs, replayed: outcome.replayed } satisfies ToolCallResult, codec);
      else replyError(msg, outcome.error, codec);
    } else if (!outcome.ok) {
      await this.deadLetter(msg, outcome.error);
    }
  }

  /** The checks, in order, then the run (or the recorded result of an earlier run with the same key). */
  private async call(tool: ToolDefinition, request: Decoded, log: Logger): Promise<Outcome> {
    if (tool.risk === "BLOCK") throw new FleetError("TOOL_BLOCKED", `${tool.name} is BLOCK: it never runs`);
    checkAllowed(this.o.config, request.agentId, tool.name);
    if (needsProposal(tool.risk)) await checkProposal(this.o.kv.proposals, this.o.codec, tool, request);
    const parsed = tool.input.safeParse(request.input);
    if (!parsed.success) {
      const details = issuesOf(parsed.error);
      throw new FleetError("MESSAGE_INVALID", `input of ${tool.name} is invalid: ${details.map((d) => `${d.path}: ${d.message}`).join("; ")}`, { details });
    }
    checkCallTargets(this.o.config, tool, parsed.data);
    if (request.mode === "run") return this.execute(tool, request, "run", log, (ctx) => tool.handler(parsed.data, ctx));

    const rollback = tool.rollback;
    if (!rollback) throw new FleetError("PROPOSAL_STATE", `${tool.name} has no rollback`);
    if (!request.idempotencyKey) throw new FleetError("PROPOSAL_STATE", "a rollback names the call it undoes by that call's idempotency key");
    const original = await this.runs.recorded(tool.name, "run", request.idempotencyKey);
    if (original?.state !== "done") {
      throw new FleetError("PROPOSAL_STATE", `no finished call of ${tool.name} is recorded under this idempotency key${original ? ` (it is ${original.state})` : ""}`);
    }
    return this.execute(tool, request, "rollback", log, (ctx) => rollback(parsed.data, original.output, ctx));
  }

  private async execute(tool: ToolDefinition, request: Decoded, mode: ToolRunMode, log: Logger, run: (ctx: ToolContext) => Promise<unknown>): Promise<Outcome> {
    const key = request.idempotencyKey;
    let claim: ToolRunClaim | undefined;
    if (key) {
      const claimed = await this.runs.claim(tool.name, mode, key, this.timeoutMs + ABORT_GRACE_MS);
      if (claimed.kind === "done") return { ok: true, output: claimed.output, replayed: true };
      claim = claimed;
    }
    const ctx: ToolContext = {
      signal: AbortSignal.timeout(this.timeoutMs),
      log,
      agentId: request.agentId,
      proposalId: request.proposalId,
      idempotencyKey: key,
      now: this.now,
    };
    const startedAt = this.now();
    const running: Promise<ToolRunOutcome> = Promise.resolve()
      .then(() => run(ctx))
      .then(
        (output) => ({ ok: true as const, output, durationMs: Math.max(0, this.now() - startedAt) }),
        (err: unknown) => ({ ok: false as const, error: failure(err, tool.name, ctx.signal, this.timeoutMs) }),
      );
    const settled = await withDeadline(running, this.timeoutMs + ABORT_GRACE_MS);
    if (settled === undefined) {
      // the handler ignored its signal: answer now, and record how it ends whenever it does
      if (claim) {
        const owned = claim;
        const recorded = running
          .then((outcome) => this.runs.finish(owned, outcome))
          .catch((err: unknown) => log.error({ err: String(err) }, "could not record the end of a late tool run"))
          .finally(() => this.late.delete(recorded));
        this.late.add(recorded);
        throw new FleetError("TOOL_OUTCOME_UNKNOWN", `${tool.name} did not finish within ${this.timeoutMs} ms; its outcome will be recorded when it does`);
      }
      throw new FleetError("TOOL_FAILED", `${tool.name} did not finish within ${this.timeoutMs} ms`);
    }
    if (claim) {
      await this.runs.finish(claim, settled).catch((err: unknown) => log.error({ err: String(err) }, "could not record the end of a tool run"));
    }
    if (!settled.ok) throw settled.error;
    return { ok: true, output: settled.output, replayed: false };
  }

  private async refuseEnvelope(tool: ToolDefinition, msg: Msg, error: FleetError, codec: CodecName): Promise<void> {
    this.o.log.warn({ tool: tool.name, code: error.code, reason: error.message }, "tool call refused");
    if (msg.reply) replyError(msg, error, codec);
    await this.deadLetter(msg, error);
  }

  private async deadLetter(msg: Msg, error: FleetError): Promise<void> {
    await deadLetter(this.o.js, this.o.names, "tool", { subject: msg.subject, data: msg.data }, error).catch((err: unknown) =>
      this.o.log.error({ err: String(err) }, "could not dead-letter a tool call"),
    );
  }
}

/** A handler's failure as the caller sees it: its own FleetError kept, anything else TOOL_FAILED (retryable). */
function failure(err: unknown, tool: string, signal: AbortSignal, timeoutMs: number): FleetError {
  if (err instanceof FleetError) return err;
  if (signal.aborted) return new FleetError("TOOL_FAILED", `${tool} did not finish within ${timeoutMs} ms`, { cause: err });
  return new FleetError("TOOL_FAILED", `${tool} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}

/** The promise's value, or undefined once `ms` have passed. */
async function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<undefined>((resolve) => (timer = setTimeout(resolve, ms, undefined)));
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
