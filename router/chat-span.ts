import type { Span } from "@opentelemetry/api";
import type { TierName } from "../config/index.js";
import { GEN_AI, type CompleteRequest, type GenAiSpanSpec } from "../protocol/index.js";
import type { Deployment } from "./deployments.js";
import type { ProviderAnswer } from "./provider.js";

/** The `chat` span of one attempt at one deployment (GenAI semantic conventions), child of the caller's span. */
export function chatSpan(deployment: Deployment, tier: TierName, request: CompleteRequest, maxOutputTokens: number, attempt: number): GenAiSpanSpec {
  return {
    operation: "chat",
    target: deployment.model,
    attributes: {
      // every real deployment speaks the OpenAI API; the simulated one calls no model at all
      [GEN_AI.provider]: deployment.provider.simulated ? "natsfleet.simulated" : "openai",
      [GEN_AI.requestModel]: deployment.model,
      [GEN_AI.maxTokens]: maxOutputTokens,
      ...(request.temperature !== undefined ? { [GEN_AI.temperature]: request.temperature } : {}),
      [GEN_AI.agentId]: request.agentId,
      ...(request.taskId ? { "natsfleet.task.id": request.taskId } : {}),
      "natsfleet.tier": tier,
      "natsfleet.deployment": deployment.id,
      "natsfleet.attempt": attempt,
    },
  };
}

/** What the model answered: the model that served it, the tokens, the cost. */
export function recordChatAnswer(span: Span | undefined, answer: ProviderAnswer, costUsd: number): void {
  span?.setAttributes({
    [GEN_AI.responseModel]: answer.model,
    [GEN_AI.inputTokens]: answer.usage.inputTokens,
    [GEN_AI.outputTokens]: answer.usage.outputTokens,
    "natsfleet.usage.cached_tokens": answer.usage.cachedTokens,
    "natsfleet.cost_usd": costUsd,
  });
}
