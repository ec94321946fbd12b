import type { ChatMessage } from "./router.js";

/*
 * Token estimates before a call: about four characters a token for English text and code, plus a few tokens of framing
 * per message (the chat template's role markers). Good enough to reserve a budget and to simulate a bill; the provider's
 * own count is what gets settled.
 *
 * Here in protocol/ rather than router/ because it is a property of the wire's ChatMessage and both the router (budget
 * reservations, the simulated provider) and memory (context budgets) need it; memory must not reach into router for it.
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
