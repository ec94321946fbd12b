import { randomUUID } from "node:crypto";
import { z } from "zod";
import type { AgentTools } from "../governance/index.js";
import { FleetError, type Message } from "../protocol/index.js";
import type { Tracer } from "@opentelemetry/api";
import { tracedGovernedCall } from "./governed-call.js";
import type { BehaviourStage } from "./stage.js";

/** A task that names a tool in a data part: `{ tool, input, reason? }` (what `fleet send <agent> --tool ...` sends). */
export const ToolTaskRequest = z.object({
  tool: z.string().min(1),
  input: z.unknown(),
  reason: z.string().min(1).optional(),
});
export type ToolTaskRequest = z.infer<typeof ToolTaskRequest>;

/** The first data part of the message that names a tool, if any. */
export function toolTaskOf(message: Message | undefined): ToolTaskRequest | undefined {
  for (const part of message?.parts ?? []) {
    if ("data" in part) {
      const parsed = ToolTaskRequest.safeParse(part.data);
      if (parsed.success) return parsed.data;
    }
  }
  return undefined;
}

/**
 * Tier 0 (DESIGN.md): a task a tool can answer never reaches a model. A task naming a tool runs it directly when it is
 * AUTO or AUTO+ and the agent may use it, or becomes a proposal when it is PROPOSE or CONFIRM (the artifact names the
 * proposal; governance takes it from there). Refusals are the task's failure with the typed reason. Every other task
 * goes on down the chain. The plan is left to the role (Atlas or the skill match), as it always was.
 */
export function toolTaskStage(tools: AgentTools, tracer?: Tracer): BehaviourStage {
  return {
    name: "tool-task",
    async act(input, ctx, next) {
      const item = input.plan.item;
      const request = toolTaskOf(item?.message);
      if (!request) return next(input, ctx);
      try {
        const done = await tracedGovernedCall(tools, { tool: request.tool, input: request.input, reason: request.reason ?? `task ${item?.taskId ?? ""}`.trim(), taskId: item?.taskId }, tracer);
        if (done.kind === "proposed") {
          ctx.log.info({ tool: done.tool, risk: done.risk, proposalId: done.proposalId }, "proposal submitted");
          return {
            ok: true,
            artifacts: [{ artifactId: randomUUID(), name: "proposal", parts: [{ text: `proposal ${done.proposalId} submitted: ${done.tool} (${done.risk}); follow it with: fleet proposals ${done.proposalId}` }, { data: { proposalId: done.proposalId, tool: done.tool, risk: done.risk } }] }],
          };
        }
        ctx.log.info({ tool: done.tool, risk: done.risk, durationMs: done.durationMs }, "tool step answered");
        return {
          ok: true,
          artifacts: [{ artifactId: randomUUID(), name: "tool-result", parts: [{ text: `${request.tool}: ${JSON.stringify(done.output)}` }, { data: { tool: request.tool, output: done.output, durationMs: done.durationMs } }] }],
        };
      } catch (err) {
        const error = FleetError.from(err);
        // a tool host that is briefly away or busy: the task is redelivered instead of failed
        if (error.retryable && error.code !== "TOOL_FAILED") return { ok: false, retry: true, reason: `${error.code}: ${error.message}` };
        return { ok: false, reason: `${error.code}: ${error.message}` };
      }
    },
  };
}
