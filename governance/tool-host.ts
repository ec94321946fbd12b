import { SpanKind, type Span, type Tracer } from "@opentelemetry/api";
import type { JetStreamClient } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import type { FleetConfig } from "../config/index.js";
import {
  CALLERS,
  deadLetter,
  endpoint,
  FleetError,
  FleetService,
  GEN_AI,
  inGenAiSpan,
  issuesOf,
  needsProposal,
  secrets,
  ToolCallRequest,
  type CodecName,
  type FleetNames,
  type ToolCallResult,
} from "../protocol/index.js";
import { AuditChain } from "./audit-chain.js";
import type { AuditSigner } from "./audit-signing.js";
import { checkAllowed, checkCallTargets, checkProposal } from "./call-checks.js";
import { delegationEndpoints } from "./delegation-intake.js";
import { refusalEndpoints } from "./refusal-intake.js";
import { ToolCatalogue } from "./tool-catalogue.js";
import { ToolListings } from "./tool-listings.js";
import { ToolRuns, type ToolRunClaim, type ToolRunMode, type ToolRunOutcome, type ToolRunScope } from "./tool-runs.js";
import type { ToolContext, ToolDefinition } from "./tool.js";

/** The queue group of every tool host: a call goes to one host that serves the tool. */
export const TOOLS_QUEUE = "tools";

const DEFAULT_TIMEOUT_MS = 30_000;
/** how long after its signal fired a handler may take to stop before the host answers without it */
const ABORT_GRACE_MS = 2_000;

export interface ToolHostOptions {
  /** where calls are served: on a secured fleet the serving twin's connection, which may publish replies only */
  nc: NatsConnection;
  /** the audit chain, tool runs and dead letters: a connection that serves nothing */
  js: JetStreamClient;
  names: FleetNames;
  codec: CodecName;
  config: FleetConfig;
  tools: readonly ToolDefinition[];
  /** `tools`: where this host lists what it serves (optional: a host without it serves but does not list) */
  kv: { proposals: KV; toolruns: KV; tools?: KV | undefined };
  /** this host's name: it serves the tools whose `hosts` include it, or name no hosts */
  host: string;
  log: Logger;
  clock?: { now(): number };
  /** a handler's AbortSignal fires after this long (default 30 s), unless its tool says its own (a peer's skill) */
  timeoutMs?: number;
  /** this host's nkey (the `tools` identity's seed): it signs every audit record; none (an open dev server): unsigned */
  signer?: AuditSigner | undefined;
  /** each call an `execute_tool` span, the child of the caller's when its request carried a `traceparent` (telemetry on) */
  tracer?: Tracer | undefined;
}

type Decoded = ReturnType<typeof ToolCallRequest.parse>;
/** A call with its agent settled: the caller itself, or (from governance) the agent of the proposal it executes. */
type Call = Decoded & { agentId: string; origin: "agent" | "governance" };
type Outcome = { ok: true; output: unknown; replayed: boolean } | { ok: false; error: FleetError };

/**
 * Serves `<prefix>.tool.<name>.<caller>` for each tool it hosts, in queue group "tools". The caller is the broker's word:
 * an agent calls as itself, governance as `_governance` for the agent of the proposal it executes (and only with that
 * proposal). Every call is checked here whatever the caller checked before (BLOCK, the agent's allow list, the proposal
 * behind a PROPOSE or CONFIRM call or any call from governance, the input's schema), runs at most once per idempotency
 * key, and lands in the audit chain — refused calls too — before the reply.
 */
export class ToolHost {
  private readonly catalogue: ToolCatalogue;
  private readonly audit: AuditChain;
  private readonly runs: ToolRuns;
  private readonly listings: ToolListings | undefined;
  /** sources whose tools answer TOOL_SOURCE_UNAVAILABLE right now (an MCP server restarting) */
  private readonly down = new Set<string>();
  private readonly service: FleetService;
  /** runs already answered (TOOL_OUTCOME_UNKNOWN) whose end is still to be recorded */
  private readonly late = new Set<Promise<unknown>>();
  private readonly now: () => number;
  private readonly timeoutMs: number;

  constructor(private readonly options: ToolHostOptions) {
    this.catalogue = new ToolCatalogue(options.tools);
    this.audit = new AuditChain({ js: options.js, names: options.names, codec: options.codec, log: options.log.child({ component: "audit-chain" }), signer: options.signer });
    const clock = options.clock ?? { now: () => Date.now() };
    this.now = () => clock.now();
    this.runs = new ToolRuns(options.kv.toolruns, options.codec, options.host, this.now);
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.listings = options.kv.tools ? new ToolListings(options.kv.tools, options.codec, options.host, this.now, options.log.child({ component: "tool-listings" })) : undefined;
    this.service = new FleetService({
      nc: options.nc,
      name: "fleet-tools",
      version: "1.0.0",
      description: `tool host ${options.host}: governed tool calls, audited`,
      metadata: { host: options.host },
      queue: TOOLS_QUEUE,
      endpoints: [
        ...refusalEndpoints({ names: options.names, config: options.config, catalogue: this.catalogue, now: this.now, record: (entry) => this.audit.append(entry) }),
        ...delegationEndpoints({ names: options.names, config: options.config, runs: this.runs, record: (entry) => this.audit.append(entry) }),
        ...this.served.map((tool) => this.endpointOf(tool.name)),
      ],
      codec: options.codec,
      maxPayloadBytes: options.config.fleet.maxPayloadBytes,
      deadLetter: (subject, data, error) =>
        deadLetter(options.js, options.names, "tool", { subject, data }, error).catch((err: unknown) => options.log.error({ err }, "could not dead-letter a tool call")),
      log: options.log.child({ component: "tool-host" }),
    });
  }

  /** The tools this host serves. */
  get served(): ToolDefinition[] {
    return this.catalogue.list({ host: this.options.host });
  }

  /**
   * `<prefix>.tool.<name>.*` for one tool. The definition is looked up at each call, so a tool its source re-lists with
   * a new schema or risk is served with the new one, and a removed one answers TOOL_NOT_FOUND until unsubscribed.
   */
  private endpointOf(name: string) {
    return endpoint({
      // micro endpoint names allow letters, digits, - and _ only
      name: name.replace(/[^a-zA-Z0-9_-]/g, "_"),
      // the caller is the subject's last token: an agent (its own id, the broker allows no other) or governance
      subject: this.options.names.tool(name, "*"),
      request: ToolCallRequest,
      claims: (r) => r.agentId,
      delegates: [CALLERS.governance],
      // a one-way call still runs (its effect is the point); a failure of it is dead-lettered
      oneWay: "run",
      handle: (request, call) => this.handle(this.catalogue.require(name), settleCall(request, call.caller)),
    });
  }

  /**
   * Serves the tools a source lists now (an MCP server, at connect, after a restart, on its list-changed notification),
   * in place of what this host served from that source before: new tools get their subject, removed ones lose it,
   * changed ones are served with their new definition. Returns the names added and removed.
   */
  serveSource(source: string, tools: readonly ToolDefinition[]): { added: string[]; removed: string[] } {
    const before = new Set(this.catalogue.list().filter((t) => (t.source ?? "built-in") === source).map((t) => t.name));
    const now = new Set(tools.map((t) => t.name));
    const removed = [...before].filter((name) => !now.has(name));
    for (const name of removed) {
      this.service.remove(this.options.names.tool(name, "*"));
      this.catalogue.remove(name);
    }
    const added: string[] = [];
    for (const tool of tools) {
      const existing = this.catalogue.get(tool.name);
      if (existing && (existing.source ?? "built-in") !== source) {
        this.options.log.warn({ tool: tool.name, source, servedBy: existing.source ?? "built-in" }, "a source lists a tool another source already serves; not served");
        continue;
      }
      if (existing) this.catalogue.remove(tool.name);
      this.catalogue.add({ ...tool, source });
      if (!existing) {
        this.service.add(this.endpointOf(tool.name));
        added.push(tool.name);
      }
    }
    return { added, removed };
  }

  /** Lists a source's tools in KV `tools` as this host serves them now. */
  async publishSource(source: string): Promise<void> {
    const tools = this.served.filter((t) => (t.source ?? "built-in") === source).map((t) => this.catalogue.describe(t.name));
    await this.listings?.publish(source, tools, !this.down.has(source));
  }

  /** Marks a source down (its server died) or up again, and says so in its listing. */
  async sourceAvailable(source: string, available: boolean): Promise<void> {
    if (available) this.down.delete(source);
    else this.down.add(source);
    await this.publishSource(source);
  }

  async start(): Promise<void> {
    await this.audit.start();
    for (const source of new Set(this.served.map((t) => t.source ?? "built-in"))) await this.publishSource(source);
    this.service.start();
    this.options.log.info({ host: this.options.host, tools: this.served.map((t) => t.name) }, "tool host started");
  }

  /**
   * Stops taking calls, waits for those under way, then for the audit records. A run that already outlived its answer gets
   * one more grace period to be recorded; after that its record stays "started", which is the truth: outcome unknown.
   */
  async stop(): Promise<void> {
    await this.service.stop();
    if (this.late.size > 0) {
      await withDeadline(Promise.allSettled([...this.late]), ABORT_GRACE_MS);
      if (this.late.size > 0) this.options.log.warn({ runs: this.late.size }, "stopping with tool runs that never finished; their outcome stays unknown");
    }
    await this.listings?.withdraw();
    await this.audit.stop();
    this.options.log.info({ host: this.options.host }, "tool host stopped");
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  get busy(): number {
    return this.service.busy;
  }

  /**
   * One call whose envelope passed the skeleton's checks, as a SERVER `execute_tool` span: the skeleton has already made
   * the caller's `traceparent` the active context, so an agent's (or governance's) span of the call is this one's parent.
   */
  private handle(tool: ToolDefinition, request: Call): Promise<ToolCallResult> {
    const attributes = {
      [GEN_AI.toolName]: tool.name,
      [GEN_AI.toolType]: "function",
      [GEN_AI.agentId]: request.agentId,
      "natsfleet.tool.risk": tool.risk,
      "natsfleet.tool.mode": request.mode,
      "natsfleet.tool.host": this.options.host,
      ...(request.proposalId ? { "natsfleet.proposal.id": request.proposalId } : {}),
    };
    return inGenAiSpan(this.options.tracer, { operation: "execute_tool", target: tool.name, kind: SpanKind.SERVER, attributes }, (span) => this.handleCall(tool, request, span));
  }

  /** The governance checks, the run, the audit record, the answer. */
  private async handleCall(tool: ToolDefinition, request: Call, span: Span | undefined): Promise<ToolCallResult> {
    const startedAt = this.now();
    const log = this.options.log.child({ component: "tool-host", tool: tool.name, agentId: request.agentId, proposalId: request.proposalId });

    let outcome: Outcome;
    // whether the call got past the checks: a failure before that is a refusal, after it the tool's own failure
    const reached = { run: false };
    try {
      outcome = await this.call(tool, request, log, reached);
    } catch (err) {
      outcome = { ok: false, error: FleetError.from(err) };
    }
    const durationMs = Math.max(0, this.now() - startedAt);
    if (outcome.ok) log.info({ mode: request.mode, durationMs, replayed: outcome.replayed }, "tool call done");
    else log.info({ mode: request.mode, durationMs, code: outcome.error.code, reason: outcome.error.message }, "tool call refused or failed");
    span?.setAttributes({
      "natsfleet.tool.outcome": outcome.ok ? (outcome.replayed ? "replayed" : "ok") : reached.run ? "failed" : "refused",
      "natsfleet.tool.duration_ms": durationMs,
    });

    await this.audit
      .append({
        agentId: request.agentId,
        tool: tool.name,
        risk: tool.risk,
        input: request.input,
        ...(outcome.ok ? { output: outcome.output } : { error: outcome.error.toPayload() }),
        ok: outcome.ok,
        durationMs,
        costUsd: outcome.ok && !outcome.replayed ? (tool.costOf?.(outcome.output) ?? tool.costUsd ?? 0) : 0,
        ...(request.proposalId ? { proposalId: request.proposalId } : {}),
        mode: request.mode,
        at: startedAt,
      })
      // the effect (if any) has happened: its caller still gets the answer, and the operator a loud log line
      .catch((err: unknown) => log.error({ err, ok: outcome.ok }, "tool call not recorded in the audit trail"));

    // the refusal or failure is recorded; the skeleton answers it as the typed error it is
    if (!outcome.ok) throw outcome.error;
    // the output goes on to the model, the task's artifacts and the operator's terminal: a secret a tool echoed or read
    // stops here (the run record keeps the original, for a rollback)
    return { output: secrets.scrubDeep(outcome.output), durationMs, replayed: outcome.replayed };
  }

  /** The checks, in order, then the run (or the recorded result of an earlier run with the same key). */
  private async call(tool: ToolDefinition, request: Call, log: Logger, reached: { run: boolean }): Promise<Outcome> {
    if (tool.risk === "BLOCK") throw new FleetError("TOOL_BLOCKED", `${tool.name} is BLOCK: it never runs`);
    checkAllowed(this.options.config, request.agentId, tool.name);
    // governance acts for an agent only as that agent's executing proposal; an agent never runs what needs one itself
    if (request.origin === "governance") await checkProposal(this.options.kv.proposals, this.options.codec, tool, request);
    else if (needsProposal(tool.risk)) throw new FleetError("PROPOSAL_REQUIRED", `${tool.name} is ${tool.risk}: it runs only when governance executes an approved proposal`);
    const parsed = tool.input.safeParse(request.input);
    if (!parsed.success) {
      const details = issuesOf(parsed.error);
      throw new FleetError("MESSAGE_INVALID", `input of ${tool.name} is invalid: ${details.map((d) => `${d.path}: ${d.message}`).join("; ")}`, { details });
    }
    checkCallTargets(this.options.config, tool, parsed.data);
    // a source that is down (an MCP server restarting) is not asked: nothing is claimed, asking again later is safe
    const source = tool.source ?? "built-in";
    if (this.down.has(source)) throw new FleetError("TOOL_SOURCE_UNAVAILABLE", `${tool.name}: its source ${source} is down and being restarted; the call was not sent`, { retryAfterMs: 1_000 });
    if (request.mode === "run") {
      reached.run = true;
      return this.execute(tool, request, "run", log, (ctx) => tool.handler(parsed.data, ctx));
    }

    const rollback = tool.rollback;
    if (!rollback) throw new FleetError("PROPOSAL_STATE", `${tool.name} has no rollback`);
    if (!request.idempotencyKey) throw new FleetError("PROPOSAL_STATE", "a rollback names the call it undoes by that call's idempotency key");
    const original = await this.runs.recorded(tool.name, "run", request.idempotencyKey, runScope(request));
    if (original?.state !== "done") {
      throw new FleetError("PROPOSAL_STATE", `no finished call of ${tool.name} is recorded under this idempotency key${original ? ` (it is ${original.state})` : ""}`);
    }
    reached.run = true;
    return this.execute(tool, request, "rollback", log, (ctx) => rollback(parsed.data, original.output, ctx));
  }

  private async execute(tool: ToolDefinition, request: Call, mode: ToolRunMode, log: Logger, run: (ctx: ToolContext) => Promise<unknown>): Promise<Outcome> {
    const key = request.idempotencyKey;
    const timeoutMs = tool.timeoutMs ?? this.timeoutMs;
    let claim: ToolRunClaim | undefined;
    if (key) {
      const claimed = await this.runs.claim(tool.name, mode, key, runScope(request), timeoutMs + ABORT_GRACE_MS);
      if (claimed.kind === "done") return { ok: true, output: claimed.output, replayed: true };
      claim = claimed;
    }
    const ctx: ToolContext = {
      signal: AbortSignal.timeout(timeoutMs),
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
        (err: unknown) => ({ ok: false as const, error: failure(err, tool.name, ctx.signal, timeoutMs) }),
      );
    const settled = await withDeadline(running, timeoutMs + ABORT_GRACE_MS);
    if (settled === undefined) {
      // the handler ignored its signal: answer now, and record how it ends whenever it does
      if (claim) {
        const owned = claim;
        const recorded = running
          .then((outcome) => this.runs.finish(owned, outcome))
          .catch((err: unknown) => log.error({ err }, "could not record the end of a late tool run"))
          .finally(() => this.late.delete(recorded));
        this.late.add(recorded);
        throw new FleetError("TOOL_OUTCOME_UNKNOWN", `${tool.name} did not finish within ${timeoutMs} ms; its outcome will be recorded when it does`);
      }
      throw new FleetError("TOOL_FAILED", `${tool.name} did not finish within ${timeoutMs} ms`);
    }
    if (claim && !settled.ok && settled.error.code === "TOOL_OUTCOME_UNKNOWN") {
      // the handler cannot tell whether the effect happened (an MCP server died mid-call): the run stays "started", so
      // the same key is never run again (TOOL_IN_PROGRESS until its deadline, then TOOL_OUTCOME_UNKNOWN)
      log.warn({ reason: settled.error.message }, "tool run ended with its outcome unknown; it will not be run again under this key");
    } else if (claim) {
      await this.runs.finish(claim, settled).catch((err: unknown) => log.error({ err }, "could not record the end of a tool run"));
    }
    if (!settled.ok) throw settled.error;
    return { ok: true, output: settled.output, replayed: false };
  }

}

/**
 * Whom a call is for. An agent's call is its own (the skeleton already refused a payload naming anyone else); a call from
 * governance names the proposal's agent, which checkProposal holds against the proposal. Anyone else calls as no agent.
 */
function settleCall(request: Decoded, caller: string | undefined): Call {
  if (caller === CALLERS.governance) {
    if (!request.agentId) throw new FleetError("MESSAGE_INVALID", "a call from governance names the agent whose proposal it executes");
    return { ...request, agentId: request.agentId, origin: "governance" };
  }
  if (caller === undefined) throw new FleetError("INTERNAL", "a tool call without its caller");
  return { ...request, agentId: caller, origin: "agent" };
}

/** Whose idempotency key the call carries: governance's (a proposal id) or the calling agent's own. */
function runScope(request: Call): ToolRunScope {
  return request.origin === "governance" ? "governance" : { agent: request.agentId };
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
