import type { KV } from "@nats-io/kv";
import { agentById, type FleetConfig } from "../config/index.js";
import { decode, FleetError, ProposalRecord, type CodecName } from "../protocol/index.js";
import { sameJson } from "./audit-hash.js";
import { checkTargets } from "./rules/target-allow-list.js";
import { toolAllowed } from "./tool-globs.js";
import type { ToolDefinition } from "./tool.js";

/*
 * The tool host's own checks before a tool runs. They repeat what the actor host and Sentinel decided, on purpose: the
 * tool host is the last process before the effect, and must not trust that every caller went through the others.
 */

/** The agent's allow list (`agents[].tools`, "*" = every tool, `server.*` and globs) must name the tool. */
export function checkAllowed(config: FleetConfig, agentId: string, tool: string): void {
  const agent = agentById(config, agentId);
  if (!agent) throw new FleetError("TOOL_NOT_ALLOWED", `no agent "${agentId}" in fleet ${config.fleet.name}`);
  if (!toolAllowed(agent.tools, tool)) {
    throw new FleetError("TOOL_NOT_ALLOWED", `agent "${agentId}" may not call ${tool} (its tools: ${agent.tools.join(", ") || "none"})`);
  }
}

/** Every target the input names (a URL, a host, a recipient) must be on `governance.sentinel.targetAllowList`. */
export function checkCallTargets(config: FleetConfig, tool: ToolDefinition, input: unknown): void {
  const checked = checkTargets(tool, input, config.governance.sentinel.targetAllowList);
  if (!checked.ok) throw new FleetError("TOOL_NOT_ALLOWED", `${tool.name}: ${checked.why} (governance.sentinel.targetAllowList)`);
}

export interface ProposedCall {
  agentId: string;
  proposalId?: string | undefined;
  input: unknown;
  mode: "run" | "rollback";
}

/**
 * A PROPOSE or CONFIRM tool runs only as the proposal that approved this very call: the proposal in KV `proposals` must be
 * executing (completed, for a rollback), for the same tool, agent and input. Anything else is PROPOSAL_REQUIRED.
 */
export async function checkProposal(kv: KV, codec: CodecName, tool: ToolDefinition, call: ProposedCall): Promise<ProposalRecord> {
  const refuse = (why: string) => new FleetError("PROPOSAL_REQUIRED", `${tool.name} is ${tool.risk}: ${why}`);
  if (!call.proposalId) throw refuse("it runs only through an approved proposal, and the call names none");
  const entry = await kv.get(call.proposalId);
  if (!entry || entry.operation !== "PUT") throw refuse(`no proposal "${call.proposalId}"`);
  const decoded = decode(ProposalRecord, entry.value, { codec });
  if (!decoded.ok) throw refuse(`proposal "${call.proposalId}" does not decode: ${decoded.error.message}`);
  const proposal = decoded.value;
  const wanted = call.mode === "rollback" ? "completed" : "executing";
  if (proposal.state !== wanted) throw refuse(`proposal "${proposal.id}" is ${proposal.state}, not ${wanted}`);
  if (proposal.tool !== tool.name) throw refuse(`proposal "${proposal.id}" is for ${proposal.tool}`);
  if (proposal.agentId !== call.agentId) throw refuse(`proposal "${proposal.id}" belongs to agent "${proposal.agentId}"`);
  if (!sameJson(proposal.input, call.input)) throw refuse(`the input differs from the one proposal "${proposal.id}" approved`);
  return proposal;
}
