import { placeholdersOf, type ModelStep } from "../config/index.js";
import type { HostedAgent } from "../actors/index.js";
import { FleetError, type ChatMessage, type Trigger, type PipelineStepRecord } from "../protocol/index.js";
import { routeIntent, type RouterClient } from "../router/index.js";
import { renderText, type PipelineScope } from "./pipeline-templates.js";

export interface ModelStepContext {
  agent: HostedAgent;
  router: RouterClient;
  pipelineId: string;
  taskId: string;
  /** the tier or alias for a step that names none (the task's, the duty's) */
  tier: string | undefined;
  /** who named `tier`: a duty, a cron job or the task */
  tierFrom?: "task" | "duty" | "cron" | undefined;
  /** what started the task (its USAGE records say so) */
  trigger?: Trigger | undefined;
  now: () => number;
}

/**
 * The messages of a model step, and nothing else: a fixed system line, then the step's prompt rendered with the run's
 * input, the findings and the outputs of the steps it uses. A used step the prompt does not quote is appended as JSON,
 * so `uses` alone is enough to show a step's output. No conversation history, no memory.
 */
export function modelStepMessages(step: ModelStep, scope: PipelineScope, c: Pick<ModelStepContext, "agent" | "pipelineId">): ChatMessage[] {
  const used = Object.fromEntries(step.model.uses.map((id) => [id, scope.steps[id] ?? { skipped: true }]));
  const visible: PipelineScope = { input: scope.input, steps: used, findings: scope.findings };
  const quoted = new Set(placeholdersOf(step.model.prompt).map((p) => p.split(".")).filter(([root]) => root === "steps").map(([, id]) => id));
  const appended = step.model.uses
    .filter((id) => !quoted.has(id))
    .map((id) => `Output of step "${id}":\n${JSON.stringify(used[id]?.output ?? null)}`);
  return [
    {
      role: "system",
      content: `You are ${c.agent.name}, running step "${step.id}" of the pipeline "${c.pipelineId}". Answer with one JSON object that matches the response schema, and nothing else.`,
    },
    { role: "user", content: [renderText(step.model.prompt, visible), ...appended].join("\n\n") },
  ];
}

/**
 * A model step: one router call at the step's tier or alias with the step's output schema as the response format
 * (validated by the router; a failure, or a failed named check, escalates this step alone one tier up). The call names
 * the step, so a redelivered task whose step already has an answer gets it from the router's KV instead of paying again.
 */
export async function runModelStep(step: ModelStep, scope: PipelineScope, c: ModelStepContext, signal: AbortSignal): Promise<PipelineStepRecord> {
  signal.throwIfAborted();
  // the step's own tier or alias first, else the one its duty or task named; the decision records who asked
  const intent = step.model.tier !== undefined ? routeIntent(step.model.tier, "step") : routeIntent(c.tier, c.tierFrom ?? "task");
  const reply = await c.router.complete({
    agentId: c.agent.id,
    taskId: c.taskId,
    step: step.id,
    kind: c.pipelineId.slice(0, 64),
    title: `${c.pipelineId} ${step.id}`,
    ...(c.trigger ? { trigger: c.trigger } : {}),
    messages: modelStepMessages(step, scope, c),
    responseSchema: { name: step.id.replaceAll("-", "_"), schema: step.model.output },
    ...(step.model.check ? { checks: [step.model.check] } : {}),
    ...intent,
  });
  const output = reply.parsed ?? parseAnswer(reply.text, step.id);
  return {
    id: step.id,
    kind: "model",
    status: "done",
    output,
    model: {
      requestedTier: reply.decision.requestedTier,
      servedTier: reply.servedTier,
      reason: reply.decision.reason,
      detail: reply.decision.detail,
      escalations: reply.escalations,
      fallbacks: reply.fallbacks,
      model: reply.model,
      costUsd: reply.costUsd,
      replayed: reply.replayed ?? false,
      simulated: reply.simulated,
    },
    findings: [],
    at: c.now(),
  };
}

/** A kept answer comes back as text only: it passed the schema when it was first given, so it parses. */
function parseAnswer(text: string, stepId: string): unknown {
  const body = text.trim().replace(/^```(?:json)?\s*([\s\S]*?)\s*```$/, "$1");
  try {
    return JSON.parse(body);
  } catch (err) {
    throw new FleetError("CHECK_FAILED", `step "${stepId}": the answer is not JSON`, { cause: err });
  }
}
