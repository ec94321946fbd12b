import { randomUUID } from "node:crypto";
import { z } from "zod";
import type { AgentBehaviour } from "../actors/index.js";
import type { AgentTools } from "../governance/index.js";
import { FleetError, needsProposal, type Message } from "../protocol/index.js";

/** A task that names a tool in a data part: `{ tool, input, reason? }` (what `fleet send <agent> --tool ...` sends). */
export const ToolStepRequest = z.object({
  tool: z.string().min(1),
  input: z.unknown(),
  reason: z.string().min(1).optional(),
});
export type ToolStepRequest = z.infer<typeof ToolStepRequest>;

export function toolStepOf(message: Message | undefined): ToolStepRequest | undefined {
  for (const part of message?.parts ?? []) {
    if ("data" in part) {
      const parsed = ToolStepRequest.safeParse(part.data);
      if (parsed.success) return parsed.data;
    }
  }
  return undefined;
}

/**
 * Tier 0 (DESIGN.md): a task a tool can answer never reaches a model. A task naming a tool runs it directly when it is
 * AUTO or AUTO+ and the agent may use it, or becomes a proposal when it is PROPOSE or CONFIRM (the artifact names the
 * proposal; governance takes it from there). Refusals are the task's failure with the typed reason. Every other task
 * goes to the wrapped behaviour.
 */
export function withToolSteps(inner: AgentBehaviour, tools: AgentTools): AgentBehaviour {
  return {
    plan: inner.plan,
    async act(input, ctx) {
      const item = input.plan.item;
      const step = toolStepOf(item?.message);
      if (!step) return inner.act(input, ctx);
      try {
        const risk = tools.riskOf(step.tool);
        if (needsProposal(risk)) {
          if (!tools.isAllowed(step.tool)) throw new FleetError("TOOL_NOT_ALLOWED", `agent is not allowed "${step.tool}"`);
          const proposalId = await tools.propose({ tool: step.tool, input: step.input, reason: step.reason ?? `task ${item?.taskId ?? ""}`.trim(), taskId: item?.taskId });
          ctx.log.info({ tool: step.tool, risk, proposalId }, "proposal submitted");
          return {
            ok: true,
            artifacts: [{ artifactId: randomUUID(), name: "proposal", parts: [{ text: `proposal ${proposalId} submitted: ${step.tool} (${risk}); follow it with: fleet proposals ${proposalId}` }, { data: { proposalId, tool: step.tool, risk } }] }],
          };
        }
        const result = await tools.call(step.tool, step.input, item?.taskId);
        ctx.log.info({ tool: step.tool, risk, durationMs: result.durationMs }, "tool step answered");
        return {
          ok: true,
          artifacts: [{ artifactId: randomUUID(), name: "tool-result", parts: [{ text: `${step.tool}: ${JSON.stringify(result.output)}` }, { data: { tool: step.tool, output: result.output, durationMs: result.durationMs } }] }],
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
