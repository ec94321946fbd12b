import { createHash, randomUUID } from "node:crypto";
import type { JetStreamClient } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { decode, encode, FleetError, needsProposal, ProposalSubmission, RefusalRecorded, requestTyped, wireHeaders, type CodecName, type DelegationReport, type RefusalReport, type FleetNames, type RiskLevel, type ToolCallResult, nowOf, type Clock } from "../protocol/index.js";
import { canonicalJson } from "./canonical-json.js";
import { callTool, toolCallWaitMs } from "./tool-caller.js";
import { toolAllowed } from "./tool-globs.js";

/** how long a report to the audit trail (a refusal, a delegation) may hold up the step that made it */
const REPORT_TIMEOUT_MS = 5_000;
/** a refused call's input larger than this is recorded cut, so the report always fits a NATS payload */
const MAX_REFUSED_INPUT_CHARS = 8_000;

function boundedInput(input: unknown): unknown {
  const text = canonicalJson(input);
  return text.length <= MAX_REFUSED_INPUT_CHARS ? input : { cut: `${text.slice(0, MAX_REFUSED_INPUT_CHARS)}… (${text.length - MAX_REFUSED_INPUT_CHARS} more characters)` };
}

/**
 * A proposal made inside a task is named by the task and the action (tool + canonical input): the same task redelivered
 * after a crash proposes the same action under the same id, which governance takes as the proposal it already has —
 * no second proposal, no second effect. Outside a task every proposal is new.
 */
export function proposalIdFor(agentId: string, tool: string, input: unknown, taskId: string | undefined): string {
  if (!taskId) return randomUUID();
  return `t-${createHash("sha256").update(`${agentId}\u0000${taskId}\u0000${tool}\u0000${canonicalJson(input)}`).digest("hex").slice(0, 40)}`;
}

export interface AgentToolsOptions {
  nc: NatsConnection;
  js: JetStreamClient;
  names: FleetNames;
  codec: CodecName;
  agentId: string;
  /** the agent's allow list from its config ("*": every tool) */
  allowed: readonly string[];
  /**
   * every tool's risk level: the built-ins' from the catalogue, MCP tools' as the tool hosts listed them (KV `tools`,
   * read live: they appear and go at runtime)
   */
  risks: { get(tool: string): RiskLevel | undefined };
  clock?: Clock;
  timeoutMs?: number;
  /** resolves once `risks` knows the tools listed at runtime (MCP servers'); calls and proposals wait for it */
  ready?: Promise<unknown>;
  /** a tool's own run time when it has one (a peer's skill: peerToolTimeoutMs), so a call waits that long for it */
  timeoutOf?: ((tool: string) => number | undefined) | undefined;
  /** why a tool no source provides is refused, when there is more to say than TOOL_NOT_FOUND (a peer's ungranted skill) */
  unknownTool?: ((tool: string) => FleetError | undefined) | undefined;
}

/**
 * An agent's hands: AUTO and AUTO+ tools it is allowed are called directly; PROPOSE and CONFIRM tools only through a
 * proposal; BLOCK never. This is the first of three checks (then Sentinel and the tool host, then the broker, which
 * refuses the publish outright), so a prompt-injected step is stopped here before it costs a round trip.
 */
export class AgentTools {
  constructor(private readonly options: AgentToolsOptions) {}

  riskOf(tool: string): RiskLevel {
    const risk = this.options.risks.get(tool);
    if (!risk) throw this.options.unknownTool?.(tool) ?? new FleetError("TOOL_NOT_FOUND", `no tool "${tool}" in the catalogue`);
    return risk;
  }

  isAllowed(tool: string): boolean {
    return toolAllowed(this.options.allowed, tool);
  }

  /**
   * Calls an AUTO or AUTO+ tool. With `idempotencyKey` the tool host runs it at most once under that key (this agent's
   * keys only): a call repeated after a crash gets the recorded result back instead of a second effect.
   */
  async call(tool: string, input: unknown, taskId?: string, options: { idempotencyKey?: string } = {}): Promise<ToolCallResult> {
    await this.options.ready;
    const risk = this.riskOf(tool);
    if (risk === "BLOCK") throw await this.refuse(new FleetError("TOOL_BLOCKED", `"${tool}" is BLOCK: it never runs`), tool, input, taskId);
    if (!this.isAllowed(tool)) throw await this.refuse(new FleetError("TOOL_NOT_ALLOWED", `agent "${this.options.agentId}" is not allowed "${tool}"`), tool, input, taskId);
    if (needsProposal(risk)) throw new FleetError("PROPOSAL_REQUIRED", `"${tool}" is ${risk}: propose it instead`);
    return callTool(this.options.nc, this.options.names, tool, { agentId: this.options.agentId, input, ...(taskId ? { taskId } : {}), ...(options.idempotencyKey ? { idempotencyKey: options.idempotencyKey } : {}) }, {
      codec: this.options.codec,
      timeoutMs: toolCallWaitMs(this.options.timeoutMs ?? 60_000, this.options.timeoutOf?.(tool)),
    });
  }

  /**
   * Reports a refusal this host made (TOOL_BLOCKED, TOOL_NOT_ALLOWED) to the tool host, which records it in the audit
   * trail in this agent's name, and returns the error to throw. The step is refused whether or not the report lands: a
   * tool host that is away costs the record, never the refusal.
   */
  async refuse(error: FleetError, tool: string, input: unknown, taskId?: string): Promise<FleetError> {
    if (error.code !== "TOOL_BLOCKED" && error.code !== "TOOL_NOT_ALLOWED") return error;
    const report: RefusalReport = { tool, input: boundedInput(input), code: error.code, message: error.message.slice(0, 1_000), ...(taskId ? { taskId } : {}) };
    try {
      await requestTyped(this.options.nc, this.options.names.refusal(this.options.agentId), report, RefusalRecorded, { codec: this.options.codec, timeoutMs: REPORT_TIMEOUT_MS });
    } catch {
      // the record is lost, the refusal stands; the broker or the tool host logged why
    }
    return error;
  }

  /**
   * Reports a delegation this agent made to a peer's skill (Atlas's peer tasks) to the tool host, which records it in the
   * audit trail in this agent's name as a call of the tool `<peer>.<skill>`. Like a refusal's, a report that does not land
   * costs the record, never the delegation: its task keeps the spend and latency too (`metadata.peer`).
   */
  async reportDelegation(report: DelegationReport): Promise<boolean> {
    try {
      await requestTyped(this.options.nc, this.options.names.delegation(this.options.agentId), report, RefusalRecorded, { codec: this.options.codec, timeoutMs: REPORT_TIMEOUT_MS });
      return true;
    } catch {
      // the broker or the tool host logged why; the caller logs that the record is missing
      return false;
    }
  }

  /**
   * Submits a proposal and returns its id. The submission is checked here first, so a malformed one is a typed error
   * for the agent rather than only a dead letter; the same id submitted twice is one proposal (msgID).
   */
  async propose(proposal: { tool: string; input: unknown; reason: string; taskId?: string | undefined; id?: string }): Promise<string> {
    const submission = {
      id: proposal.id ?? proposalIdFor(this.options.agentId, proposal.tool, proposal.input, proposal.taskId),
      agentId: this.options.agentId,
      tool: proposal.tool,
      input: proposal.input,
      reason: proposal.reason,
      ...(proposal.taskId ? { taskId: proposal.taskId } : {}),
      submittedAt: nowOf(this.options.clock)(),
    };
    const bytes = encode(submission, this.options.codec);
    const checked = decode(ProposalSubmission, bytes, { codec: this.options.codec });
    if (!checked.ok) throw checked.error;
    // the fleet's headers: inside a traced task they carry its traceparent, so governance's execution joins the trace
    await this.options.js.publish(this.options.names.proposal(this.options.agentId, "submitted"), bytes, { headers: wireHeaders(this.options.codec, `submit-${submission.id}`) });
    return submission.id;
  }
}
