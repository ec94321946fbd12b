import type { ChatMessage } from "../protocol/index.js";

/*
 * Token estimates before a call: about four characters a token for English text and code, plus a few tokens of framing
 * per message (the chat template's role markers). Good enough to reserve a budget and to simulate a bill; the provider's
 * own count is what gets settled.
 */
const CHARS_PER_TOKEN = 4;
const TOKENS_PER_MESSAGE = 4;

export function estimateTextTokens(text: string): number {
  return Math.ceil(text.length / CHARS_PER_TOKEN);
}

export function estimateInputTokens(messages: readonly ChatMessage[], tools?: readonly unknown[]): number {
  let total = 0;
  for (const message of messages) {
    total += TOKENS_PER_MESSAGE + estimateTextTokens(message.content);
    // a tool-calling turn's arguments are input too when the conversation goes back to the model
    for (const call of message.toolCalls ?? []) total += estimateTextTokens(call.name) + estimateTextTokens(call.arguments);
  }
  // the tool definitions travel with every turn that offers them
  if (tools && tools.length > 0) total += estimateTextTokens(JSON.stringify(tools));
  return total;
}

/** Dollars for a call at a tier's prices per million tokens; cached input tokens are billed at the cached price. */
export function costUsd(
  prices: { inputPerM: number; outputPerM: number; cachedPerM: number },
  usage: { inputTokens: number; outputTokens: number; cachedTokens: number },
): number {
  const uncached = Math.max(0, usage.inputTokens - usage.cachedTokens);
  return (uncached * prices.inputPerM + usage.cachedTokens * prices.cachedPerM + usage.outputTokens * prices.outputPerM) / 1_000_000;
}
