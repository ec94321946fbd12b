import type { Tracer } from "@opentelemetry/api";
import { failSpan, GEN_AI, inGenAiSpan, type ModelToolCall } from "../protocol/index.js";

/**
 * The tools a model step may offer its model, and how a call the model makes is carried out. The step only talks to the
 * model and keeps the conversation; whether a call runs, becomes a proposal or is refused is governance's business, so
 * the implementation lives in behaviours/governed-step-tools.ts, over governance's AgentTools.
 */
export interface StepTools {
  /** OpenAI function tools for this agent (`{ type: "function", function: { name, description, parameters } }`) */
  definitions(): unknown[];
  /**
   * Carries out one call. Never throws for what the model got wrong or was not allowed: a refusal, bad arguments or a
   * failed tool come back as the tool message's content, for the model to read and answer anyway.
   */
  run(call: ModelToolCall, taskId?: string): Promise<StepToolResult>;
}

/** How a call went: `proposed` means it was submitted for a decision, not that it ran. */
export type StepToolOutcome = "ok" | "refused" | "proposed" | "failed";

export interface StepToolResult {
  /** the tool message the model reads: the output as JSON, the proposal id and state, or the refusal `CODE: message` */
  content: string;
  outcome: StepToolOutcome;
  /** the tool the call named, when the function name the model used differs from it (an MCP tool's `server.tool`) */
  tool?: string;
}

/**
 * Each call an `execute_tool` span (GenAI semantic conventions) under the task's `invoke_agent` span; a call refused or
 * failed is marked with `error.type` (the outcome), a proposal says so in `natsfleet.tool.outcome`. No tracer: `tools`.
 */
export function tracedStepTools(tools: StepTools, tracer: Tracer | undefined, agentId: string): StepTools {
  if (!tracer) return tools;
  return {
    definitions: () => tools.definitions(),
    run: (call, taskId) =>
      inGenAiSpan(
        tracer,
        { operation: "execute_tool", target: call.name, attributes: { [GEN_AI.toolName]: call.name, [GEN_AI.toolType]: "function", [GEN_AI.toolCallId]: call.id, [GEN_AI.agentId]: agentId } },
        async (span) => {
          const result = await tools.run(call, taskId);
          span?.setAttribute("natsfleet.tool.outcome", result.outcome);
          if (result.tool) span?.setAttribute(GEN_AI.toolName, result.tool);
          if (span && (result.outcome === "refused" || result.outcome === "failed")) failSpan(span, `tool_${result.outcome}`);
          return result;
        },
      ),
  };
}
