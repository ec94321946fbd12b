import { createHash, randomUUID } from "node:crypto";
import type { JetStreamClient } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import {
  decode,
  encode,
  FleetError,
  needsProposal,
  ProposalSubmission,
  type CodecName,
  type FleetNames,
  type RiskLevel,
  type ToolCallResult,
} from "../protocol/index.js";
import { canonicalJson } from "./canonical-json.js";
import { callTool } from "./tool-caller.js";

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
  /** every tool's risk level, from the catalogue */
  risks: ReadonlyMap<string, RiskLevel>;
  clock?: () => number;
  timeoutMs?: number;
}

/**
 * An agent's hands: AUTO and AUTO+ tools it is allowed are called directly; PROPOSE and CONFIRM tools only through a
 * proposal; BLOCK never. This is the first of three checks (then Sentinel and the tool host, then the broker, which
 * refuses the publish outright), so a prompt-injected step is stopped here before it costs a round trip.
 */
export class AgentTools {
  constructor(private readonly o: AgentToolsOptions) {}

  riskOf(tool: string): RiskLevel {
    const risk = this.o.risks.get(tool);
    if (!risk) throw new FleetError("TOOL_NOT_FOUND", `no tool "${tool}" in the catalogue`);
    return risk;
  }

  isAllowed(tool: string): boolean {
    return this.o.allowed.includes("*") || this.o.allowed.includes(tool);
  }

  async call(tool: string, input: unknown, taskId?: string): Promise<ToolCallResult> {
    const risk = this.riskOf(tool);
    if (risk === "BLOCK") throw new FleetError("TOOL_BLOCKED", `"${tool}" is BLOCK: it never runs`);
    if (!this.isAllowed(tool)) throw new FleetError("TOOL_NOT_ALLOWED", `agent "${this.o.agentId}" is not allowed "${tool}"`);
    if (needsProposal(risk)) throw new FleetError("PROPOSAL_REQUIRED", `"${tool}" is ${risk}: propose it instead`);
    return callTool(this.o.nc, this.o.names, tool, { agentId: this.o.agentId, input, ...(taskId ? { taskId } : {}) }, {
      codec: this.o.codec,
      timeoutMs: this.o.timeoutMs ?? 60_000,
    });
  }

  /**
   * Submits a proposal and returns its id. The submission is checked here first, so a malformed one is a typed error
   * for the agent rather than only a dead letter; the same id submitted twice is one proposal (msgID).
   */
  async propose(proposal: { tool: string; input: unknown; reason: string; taskId?: string | undefined; id?: string }): Promise<string> {
    const submission = {
      id: proposal.id ?? proposalIdFor(this.o.agentId, proposal.tool, proposal.input, proposal.taskId),
      agentId: this.o.agentId,
      tool: proposal.tool,
      input: proposal.input,
      reason: proposal.reason,
      ...(proposal.taskId ? { taskId: proposal.taskId } : {}),
      submittedAt: (this.o.clock ?? Date.now)(),
    };
    const bytes = encode(submission, this.o.codec);
    const checked = decode(ProposalSubmission, bytes, { codec: this.o.codec });
    if (!checked.ok) throw checked.error;
    await this.o.js.publish(this.o.names.proposal(this.o.agentId, "submitted"), bytes, { msgID: `submit-${submission.id}` });
    return submission.id;
  }
}
