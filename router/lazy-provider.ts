import type { ModelProvider } from "./provider.js";

/**
 * An OpenAI-compatible provider whose SDK is loaded on its first call. Every process that talks to the router (each
 * agent, the CLI) imports the router's folder for its client; loading the `openai` SDK there would cost each of them
 * ~20 MB of RSS for code only the router process runs.
 */
export function lazyOpenAIProvider(options: { deploymentId: string; baseUrl: string }): ModelProvider {
  let loaded: Promise<ModelProvider> | undefined;
  const provider = () => (loaded ??= import("./openai-provider.js").then((m) => m.openAIProvider(options)));
  return {
    deploymentId: options.deploymentId,
    simulated: false,
    complete: async (call) => (await provider()).complete(call),
    embed: async (texts, model, apiKey, timeoutMs) => (await provider()).embed(texts, model, apiKey, timeoutMs),
  };
}
