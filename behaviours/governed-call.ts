import type { Tracer } from "@opentelemetry/api";
import type { AgentTools } from "../governance/index.js";
import { FleetError, GEN_AI, inGenAiSpan, needsProposal, type RiskLevel } from "../protocol/index.js";

/** What came of a tool named by a task or a pipeline step: it ran (AUTO, AUTO+), or it became a proposal (PROPOSE, CONFIRM). */
export type GovernedCallResult =
  | { kind: "ran"; tool: string; risk: RiskLevel; output: unknown; durationMs: number; replayed: boolean }
  | { kind: "proposed"; tool: string; risk: RiskLevel; proposalId: string };

export interface GovernedCallRequest {
  tool: string;
  input: unknown;
  /** why, for the proposal's reader */
  reason: string;
  taskId?: string | undefined;
  /** the call runs at most once under this key (a proposal's id is already derived from the task and the action) */
  idempotencyKey?: string | undefined;
}

/** The same, as an `execute_tool` span (GenAI semantic conventions) under the task's span when telemetry is on. */
export function tracedGovernedCall(tools: AgentTools, request: GovernedCallRequest, tracer: Tracer | undefined): Promise<GovernedCallResult> {
  const attributes = { [GEN_AI.toolName]: request.tool, [GEN_AI.toolType]: "function", ...(request.taskId ? { "natsfleet.task.id": request.taskId } : {}) };
  return inGenAiSpan(tracer, { operation: "execute_tool", target: request.tool, attributes }, async (span) => {
    const done = await governedCall(tools, request);
    span?.setAttributes({ "natsfleet.tool.outcome": done.kind === "ran" ? "ok" : "proposed", "natsfleet.tool.risk": done.risk });
    return done;
  });
}

/**
 * The one way work that names a tool (a task's data part, a pipeline's tool step) uses it: within the agent's allow list,
 * directly when it is AUTO or AUTO+, as a proposal when it is PROPOSE or CONFIRM (governance decides and runs it later),
 * never when it is BLOCK. Refusals throw the typed error, reported to the audit trail by AgentTools.
 */
export async function governedCall(tools: AgentTools, request: GovernedCallRequest): Promise<GovernedCallResult> {
  const risk = tools.riskOf(request.tool);
  if (needsProposal(risk)) {
    if (!tools.isAllowed(request.tool)) throw await tools.refuse(new FleetError("TOOL_NOT_ALLOWED", `agent is not allowed "${request.tool}"`), request.tool, request.input, request.taskId);
    const proposalId = await tools.propose({ tool: request.tool, input: request.input, reason: request.reason, taskId: request.taskId });
    return { kind: "proposed", tool: request.tool, risk, proposalId };
  }
  const result = await tools.call(request.tool, request.input, request.taskId, request.idempotencyKey ? { idempotencyKey: request.idempotencyKey } : {});
  return { kind: "ran", tool: request.tool, risk, output: result.output, durationMs: result.durationMs, replayed: result.replayed };
}
