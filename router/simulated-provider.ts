import { estimateInputTokens } from "../protocol/index.js";
import { localEmbedding } from "./local-embedding.js";
import type { ModelProvider, ProviderAnswer, ProviderCall } from "./provider.js";
import { afterToolsText, promptedValue, requestText, simulatedToolCalls, snippet } from "./simulated-answers.js";

/*
 * The provider of a fleet with no model configured: it calls nothing, so the fleet runs end to end on a laptop with no
 * key, and it says so (`simulated: true`, answers starting "[simulated]") so nobody mistakes its output for a model's.
 * Its answers are made from the call's own input (simulated-answers.ts): a structured answer conforms to its schema and
 * quotes the request, a tool the request names is called. Tokens are estimated the same way a budget reservation is, so
 * the cost report of a simulated day is a fair preview of a real one. Everything is a pure function of the call: the
 * same call always gets the same answer.
 */

/** What a simulated answer is billed as: a typical short completion, so the simulated bill is not absurdly low. */
const SIMULATED_OUTPUT_TOKENS = 120;
const SNIPPET_CHARS = 80;

export function simulatedProvider(deploymentId = "simulated"): ModelProvider {
  return {
    deploymentId,
    simulated: true,
    async complete(call: ProviderCall): Promise<ProviderAnswer> {
      call.signal?.throwIfAborted();
      const usage = {
        inputTokens: estimateInputTokens(call.messages, call.tools),
        outputTokens: Math.min(call.maxOutputTokens, SIMULATED_OUTPUT_TOKENS),
        cachedTokens: 0,
      };
      const toolCalls = simulatedToolCalls(call.messages, call.tools);
      if (toolCalls) return { text: "", toolCalls, model: call.model, usage };
      const request = requestText(call.messages);
      const text = call.responseSchema
        ? JSON.stringify(promptedValue(call.responseSchema.schema, call.responseSchema.schema, request))
        : (afterToolsText(call.messages, call.model) ?? `[simulated] no model was called (${call.model}); a real answer to "${snippet(request, SNIPPET_CHARS)}" would be here.`);
      return { text, model: call.model, usage };
    },
    async embed(texts: string[]): Promise<number[][]> {
      return texts.map((text) => localEmbedding(text));
    },
  };
}
