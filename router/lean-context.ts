import { estimateInputTokens, type ChatMessage } from "../protocol/index.js";

/*
 * Lean context: an agent's history grows every cycle, and most of it is paid for again on every call. We keep what the
 * model needs to act now (the instructions and the last few turns) and fold the rest into one short summary, so the
 * input tokens of a step stay roughly flat however long the agent has been running.
 */

export const SUMMARY_PREFIX = "Summary of earlier conversation: ";
export const DEFAULT_KEEP_TURNS = 2;
export const DEFAULT_SUMMARY_CHARS = 600;
const SENTENCE_CHARS = 160;

export interface PruneOptions {
  /** the trailing turns kept verbatim (a turn is a user message and what follows it up to the next user message) */
  keepTurns?: number;
  /** turns the pruned messages into the summary's body; the default is `summarizeMessages` */
  summarize?: (older: ChatMessage[]) => string;
}

/**
 * The leading system messages, one summary message standing for every older turn, and the last `keepTurns` turns.
 * A history with nothing older than that (or with no user message to anchor a turn on) comes back unchanged.
 */
export function pruneHistory(messages: readonly ChatMessage[], options: PruneOptions = {}): ChatMessage[] {
  const keepTurns = options.keepTurns ?? DEFAULT_KEEP_TURNS;
  return prune(messages, keepTurns, options.summarize ?? ((older) => summarizeMessages(older)));
}

/**
 * Prunes until the estimate fits `maxInputTokens`: first by shortening the summary, then by dropping it, then by keeping
 * one turn instead of two. The system messages and the last turn (which holds the last user message) are never removed,
 * so when those alone exceed the budget the smallest form is returned and the caller, who knows the tier's window,
 * decides whether to call anyway.
 */
export function fitToBudget(messages: readonly ChatMessage[], maxInputTokens: number, options: PruneOptions = {}): ChatMessage[] {
  if (estimateInputTokens(messages) <= maxInputTokens) return [...messages];
  const keepTurns = options.keepTurns ?? DEFAULT_KEEP_TURNS;
  const turnCounts = keepTurns > 1 ? [keepTurns, 1] : [1];
  let smallest: ChatMessage[] = [...messages];
  for (const turns of turnCounts) {
    // summary detail goes before whole turns do: a shorter summary, then none at all
    for (const maxChars of [DEFAULT_SUMMARY_CHARS, 300, 120, 0]) {
      const custom = options.summarize;
      const summarize = custom
        ? (older: ChatMessage[]) => truncate(custom(older), maxChars)
        : (older: ChatMessage[]) => summarizeMessages(older, maxChars);
      const candidate = prune(messages, turns, summarize);
      if (estimateInputTokens(candidate) <= maxInputTokens) return candidate;
      smallest = candidate;
    }
  }
  return smallest;
}

/**
 * The default summarizer, deterministic and free (no model call): the first sentence of each message with its role,
 * within `maxChars`. When everything does not fit, the most recent lines are kept, as they matter most to the next step.
 */
export function summarizeMessages(older: readonly ChatMessage[], maxChars = DEFAULT_SUMMARY_CHARS): string {
  const lines = older.map(summaryLine).filter((line) => line.length > 0);
  const kept: string[] = [];
  let length = 0;
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!;
    const omitted = i; // lines before this one that would be left out
    const note = omitted > 0 ? `(${omitted} earlier messages omitted)\n`.length : 0;
    if (length + line.length + 1 + note > maxChars) break;
    kept.unshift(line);
    length += line.length + 1;
  }
  const omitted = lines.length - kept.length;
  if (kept.length === 0) return truncate(lines.at(-1) ?? "", maxChars);
  return (omitted > 0 ? `(${omitted} earlier messages omitted)\n` : "") + kept.join("\n");
}

function prune(messages: readonly ChatMessage[], keepTurns: number, summarize: (older: ChatMessage[]) => string): ChatMessage[] {
  if (!Number.isInteger(keepTurns) || keepTurns < 1) throw new RangeError(`keepTurns must be a positive integer, not ${keepTurns}`);
  let head = 0;
  // a summary left by an earlier pruning is history, not instructions: it is folded into the new summary
  while (head < messages.length && messages[head]!.role === "system" && !isSummary(messages[head]!)) head++;
  const userStarts: number[] = [];
  for (let i = head; i < messages.length; i++) if (messages[i]!.role === "user") userStarts.push(i);
  if (userStarts.length === 0) return [...messages];
  const keepFrom = userStarts[Math.max(0, userStarts.length - keepTurns)]!;
  const older = messages.slice(head, keepFrom);
  if (older.length === 0) return [...messages];
  const body = summarize(older);
  const summary: ChatMessage[] = body.length > 0 ? [{ role: "system", content: SUMMARY_PREFIX + body }] : [];
  return [...messages.slice(0, head), ...summary, ...messages.slice(keepFrom)];
}

function isSummary(message: ChatMessage): boolean {
  return message.role === "system" && message.content.startsWith(SUMMARY_PREFIX);
}

function summaryLine(message: ChatMessage): string {
  if (isSummary(message)) return `earlier: ${truncate(oneLine(message.content.slice(SUMMARY_PREFIX.length)), SENTENCE_CHARS)}`;
  const text = firstSentence(oneLine(message.content));
  if (text.length === 0) return "";
  const label = message.name ? `${message.role} (${message.name})` : message.role;
  return `${label}: ${truncate(text, SENTENCE_CHARS)}`;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}

function firstSentence(text: string): string {
  const end = text.search(/[.!?](\s|$)/);
  return end === -1 ? text : text.slice(0, end + 1);
}

function truncate(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text;
  if (maxChars <= 1) return "";
  return `${text.slice(0, maxChars - 1).trimEnd()}…`;
}

/**
 * Within one step, a conversation of tool rounds (an assistant turn calling tools, then their results) can outgrow the
 * step's input budget: past `maxInputTokens`, the rounds before the last `keepRounds` are folded into one summary,
 * placed with the instructions before the task, so every kept tool result still follows the call it answers. An earlier
 * summary is folded into the new one.
 */
export function pruneToolRounds(messages: readonly ChatMessage[], maxInputTokens: number, keepRounds = DEFAULT_KEEP_TURNS): ChatMessage[] {
  if (estimateInputTokens(messages) <= maxInputTokens) return [...messages];
  let lastUser = -1;
  for (let i = messages.length - 1; i >= 0; i--) {
    if (messages[i]!.role === "user") {
      lastUser = i;
      break;
    }
  }
  if (lastUser < 0) return [...messages];
  const starts: number[] = [];
  for (let i = lastUser + 1; i < messages.length; i++) {
    const m = messages[i]!;
    if (m.role === "assistant" && (m.toolCalls?.length ?? 0) > 0) starts.push(i);
  }
  if (starts.length <= keepRounds) return [...messages];
  const keepFrom = starts[starts.length - keepRounds]!;
  const head = messages.slice(0, lastUser).filter((m) => !isSummary(m));
  const earlier = messages.slice(0, lastUser).filter(isSummary);
  const older = [...earlier, ...messages.slice(lastUser + 1, keepFrom)];
  const summary: ChatMessage = { role: "system", content: SUMMARY_PREFIX + summarizeMessages(older) };
  return [...head, summary, messages[lastUser]!, ...messages.slice(keepFrom)];
}
