import { estimateTextTokens, FleetError, type ChatMessage, type SessionLogEntry } from "../protocol/index.js";
import { pruneHistory } from "../router/index.js";
import type { MemorySources, ReferenceItem } from "./memory-sources.js";
import type { SkillFiles, SkillText } from "./skill-files.js";
import type { SearchHit } from "./vector-store.js";

/*
 * What one model call is given: the agent's role, the skills the task calls for, what the agent remembers (four tiers,
 * each within its own token budget), the recent conversation pruned to a summary plus the last two turns, and the task,
 * in SECTION_NAMES order: stable first, volatile last, for providers' prompt caches.
 * Budgets are per tier so that one noisy tier (a busy day's log) cannot crowd out another (the agent's standing memory).
 *
 * `assembleContext` does the reading (all of it at once) and `composeContext` the rest, which is pure and deterministic:
 * the same memories give the same prompt, byte for byte, so prompt caches and tests can rely on it.
 */

export type SectionName = "role" | "skills" | "agent" | "session" | "semantic" | "reference" | "history" | "task";
/**
 * The prompt's order: stable first, volatile last, so that consecutive calls share the longest possible prefix and a
 * provider's prompt cache can serve it (cached input is billed at a fraction). The role and the skills change with the
 * agent and the kind of work, reference knowledge and MEMORY.md with the day at most; related memories follow the
 * task, today's log grows with every step, and the history and the task itself change every call.
 */
export const SECTION_NAMES: readonly SectionName[] = ["role", "skills", "reference", "agent", "semantic", "session", "history", "task"];

export interface ContextSection {
  name: SectionName;
  /** estimated tokens of the section's text (message framing is not counted here) */
  tokens: number;
  /** skills, lines or messages included */
  items: number;
  /** something was left out or cut to stay within the budget (for history: older turns were folded into a summary) */
  truncated: boolean;
  /** the source failed (or did not answer in time), so the tier is left out; for skills: a file was unreadable */
  error?: string;
}

export interface AssembledContext {
  messages: ChatMessage[];
  /** every section, in SECTION_NAMES order, present or not */
  sections: ContextSection[];
  /** the sum of the sections' tokens */
  totalTokens: number;
}

/** The most tokens each tier may add (MemoryConfig's `budgets`). */
export interface ContextBudgets {
  agent: number;
  session: number;
  semantic: number;
  reference: number;
  skills: number;
}

/** The part of an agent's config the prompt is built from (AgentConfig satisfies it). */
export interface ContextAgent {
  id: string;
  name: string;
  role: string;
  skills: ReadonlyArray<{ id: string; name: string; description: string; tags: ReadonlyArray<string>; examples?: ReadonlyArray<string> | undefined }>;
}

export interface AssembleInput {
  agent: ContextAgent;
  task: string;
  /** the conversation before this task, without a system prompt (this builds that); may start with an earlier summary */
  history?: readonly ChatMessage[] | undefined;
  budgets: ContextBudgets;
  /** semantic memories asked for; also the number of reference items */
  semanticTopK: number;
  /** semantic hits scoring below this are noise, not memories of this task */
  semanticFloor?: number | undefined;
  /** a source slower than this is left out like a failed one: a prompt without a tier beats a stalled agent */
  sourceTimeoutMs?: number | undefined;
}

export const HEADINGS = {
  skills: "## Skills for this task",
  agent: "## What you remember",
  session: "## Today and yesterday",
  semantic: "## Related memories",
  reference: "## Reference",
} as const;

export const DEFAULT_SEMANTIC_FLOOR = 0.3;
export const DEFAULT_SOURCE_TIMEOUT_MS = 5_000;
// the memory search request's own limit (protocol/records.ts); the opening of a long task says what it is about
const MAX_QUERY_CHARS = 8_000;

type Tier<T> = { ok: true; value: T } | { ok: false; error: string };

/** What the sources returned for one call; the input of the pure half. */
export interface GatheredMemory {
  skills: SkillText[];
  agent: Tier<string[]>;
  session: Tier<SessionLogEntry[]>;
  semantic: Tier<SearchHit[]>;
  reference: Tier<ReferenceItem[]>;
}

/** Reads every tier at once (a failed or slow one is recorded, not thrown), then composes the messages. */
export async function assembleContext(input: AssembleInput, sources: MemorySources, skills: SkillFiles): Promise<AssembledContext> {
  const timeoutMs = input.sourceTimeoutMs ?? DEFAULT_SOURCE_TIMEOUT_MS;
  const agentId = input.agent.id;
  const query = input.task.slice(0, MAX_QUERY_CHARS);
  // only matched skills are read: an agent's other skills cost nothing on this call
  const loadSkills = matchSkills(input.agent, input.task).map((skill) =>
    skills.load(skill, input.budgets.skills - estimateTextTokens(`${HEADINGS.skills}\n${skillHeading(skill.name)}\n`)),
  );
  const [loaded, agent, session, semantic, reference] = await Promise.all([
    Promise.all(loadSkills),
    settle(() => sources.agentMemory(agentId), timeoutMs),
    settle(() => sources.sessionLog(agentId), timeoutMs),
    settle(() => sources.semantic(agentId, query, input.semanticTopK), timeoutMs),
    settle(() => sources.reference(query, input.semanticTopK), timeoutMs),
  ]);
  return composeContext(input, { skills: loaded, agent, session, semantic, reference });
}

/** The prompt from what was gathered: pure, and the same gathered memory always gives the same messages. */
export function composeContext(input: AssembleInput, gathered: GatheredMemory): AssembledContext {
  const { budgets } = input;
  const parts: string[] = [];
  const sections: ContextSection[] = [];
  const add = (name: SectionName, block: Block, error?: string) => {
    if (block.text !== undefined) parts.push(block.text);
    sections.push({ name, tokens: block.text === undefined ? 0 : estimateTextTokens(block.text), items: block.items, truncated: block.truncated, ...(error ? { error } : {}) });
  };

  const role = `You are ${input.agent.name}. ${input.agent.role}`;
  add("role", { text: role, items: 1, truncated: false });

  const skillBlocks = gathered.skills.filter((s) => s.text.length > 0).map((s) => `${skillHeading(nameOf(input.agent, s.skillId))}\n${s.text}`);
  const skills = fitItems(HEADINGS.skills, skillBlocks, budgets.skills);
  const skillErrors = gathered.skills.flatMap((s) => (s.error ? [`${s.error} (its description was used)`] : []));
  add("skills", { ...skills, truncated: skills.truncated || gathered.skills.some((s) => s.truncated) }, skillErrors.join("; ") || undefined);

  const shown = new Set<string>();
  const blocks = new Map<SectionName, { block: Block; error?: string }>();
  const tier = <T>(name: "agent" | "session" | "semantic" | "reference", result: Tier<T>, lines: (value: T) => string[], order?: (included: string[]) => string[]) => {
    if (!result.ok) return blocks.set(name, { block: { items: 0, truncated: false }, error: result.error });
    const block = fitItems(HEADINGS[name], lines(result.value), budgets[name]);
    block.included.forEach((line) => shown.add(line));
    const text = order && block.text !== undefined ? [HEADINGS[name], ...order(block.included)].join("\n") : block.text;
    blocks.set(name, { block: { ...block, ...(text !== undefined ? { text } : {}) } });
  };
  // MEMORY.md: the lines that matter to the task are chosen when not all fit, but shown in the file's order, so the
  // section reads the same for every task while it fits its budget (and a prompt cache keeps serving it)
  const memoryLines = gathered.agent.ok ? gathered.agent.value.map((l) => `- ${oneLine(l.replace(/^\s*[-*]\s+/, ""))}`) : [];
  tier("agent", gathered.agent, (lines) => rankMemoryLines(lines, input.task), (included) => memoryLines.filter((l) => included.includes(l)));
  tier("session", gathered.session, sessionLines);
  // the nightly distillation writes the same insight to MEMORY.md and the vector store: it is shown once
  tier("semantic", gathered.semantic, (hits) => semanticLines(hits, input.semanticFloor ?? DEFAULT_SEMANTIC_FLOOR).filter((l) => !shown.has(l)));
  tier("reference", gathered.reference, (items) => referenceLines(items).filter((l) => !shown.has(l)));
  for (const name of SECTION_NAMES) {
    const entry = blocks.get(name);
    if (entry) add(name, entry.block, entry.error);
  }

  const history = input.history ?? [];
  const pruned = history.length > 0 ? pruneHistory(history) : [];
  const folded = pruned.length !== history.length || pruned.some((m, i) => m !== history[i]);
  const historyTokens = pruned.reduce((sum, m) => sum + estimateTextTokens(m.content), 0);
  sections.push({ name: "history", tokens: historyTokens, items: pruned.length, truncated: folded });
  sections.push({ name: "task", tokens: estimateTextTokens(input.task), items: 1, truncated: false });

  const messages: ChatMessage[] = [{ role: "system", content: parts.join("\n\n") }, ...pruned, { role: "user", content: input.task }];
  return { messages, sections, totalTokens: sections.reduce((sum, s) => sum + s.tokens, 0) };
}

/** The agent's skills whose tags occur in the task, most tags first (ties in config order), as Atlas matches them. */
export function matchSkills<S extends { tags: ReadonlyArray<string> }>(agent: { skills: ReadonlyArray<S> }, task: string): S[] {
  const haystack = task.toLowerCase();
  return agent.skills
    .map((skill, index) => ({ skill, index, score: skill.tags.filter((tag) => haystack.includes(tag.toLowerCase())).length }))
    .filter((m) => m.score > 0)
    .sort((a, b) => b.score - a.score || a.index - b.index)
    .map((m) => m.skill);
}

interface Block {
  text?: string;
  items: number;
  truncated: boolean;
}

/** The heading and as many whole items as fit in `budget` tokens, in the order given; no text when none fits. */
function fitItems(heading: string, items: readonly string[], budget: number): Block & { included: string[] } {
  const included: string[] = [];
  let text = heading;
  for (const item of items) {
    const candidate = `${text}\n${item}`;
    // an item too big for what is left is skipped, not cut, and a smaller one after it may still fit
    if (estimateTextTokens(candidate) > budget) continue;
    text = candidate;
    included.push(item);
  }
  const truncated = included.length < items.length;
  return included.length === 0 ? { items: 0, truncated, included } : { text, items: included.length, truncated, included };
}

/**
 * MEMORY.md lines that share words with the task come first (more shared words first), newest first among equals:
 * lines are appended, so a later line is a newer one, and a newer note usually supersedes an older one.
 */
function rankMemoryLines(lines: readonly string[], task: string): string[] {
  const words = keywords(task);
  return lines
    .map((line, index) => ({ line: oneLine(line.replace(/^\s*[-*]\s+/, "")), index }))
    .filter((l) => l.line.length > 0)
    .map((l) => ({ ...l, score: [...keywords(l.line)].filter((w) => words.has(w)).length }))
    .sort((a, b) => b.score - a.score || b.index - a.index)
    .map((l) => `- ${l.line}`);
}

function sessionLines(entries: readonly SessionLogEntry[]): string[] {
  return entries
    .map((entry, index) => ({ entry, index }))
    .sort((a, b) => b.entry.at - a.entry.at || b.index - a.index)
    .map(({ entry }) => `- ${entry.day} ${entry.kind}${entry.taskId ? ` (task ${entry.taskId})` : ""}: ${oneLine(entry.text)}`);
}

function semanticLines(hits: readonly SearchHit[], floor: number): string[] {
  return hits
    .filter((hit) => hit.score >= floor)
    .sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .map((hit) => `- ${oneLine(hit.payload.text)}`);
}

function referenceLines(items: readonly ReferenceItem[]): string[] {
  return items
    .map((item, index) => ({ item, index }))
    .sort((a, b) => b.item.score - a.item.score || a.index - b.index)
    .map(({ item }) => `- (${item.kind}) ${oneLine(item.text)}`);
}

// words too common to say what a task is about
const STOP_WORDS = new Set(["the", "and", "for", "with", "that", "this", "from", "are", "was", "were", "you", "your", "our", "its", "has", "have", "what", "when", "how", "all", "any", "not", "but", "into", "about", "please"]);

function keywords(text: string): Set<string> {
  const words = text.toLowerCase().match(/[\p{L}\p{N}][\p{L}\p{N}_-]*/gu) ?? [];
  return new Set(words.filter((w) => w.length >= 3 && !STOP_WORDS.has(w)));
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}

function skillHeading(name: string): string {
  return `### ${name}`;
}

function nameOf(agent: ContextAgent, skillId: string): string {
  return agent.skills.find((s) => s.id === skillId)?.name ?? skillId;
}

async function settle<T>(call: () => Promise<T>, timeoutMs: number): Promise<Tier<T>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new FleetError("TIMEOUT", `no answer in ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    // through then() so that a source throwing synchronously is caught like one that rejects
    return { ok: true, value: await Promise.race([Promise.resolve().then(call), timeout]) };
  } catch (err) {
    const error = FleetError.from(err);
    return { ok: false, error: `${error.code}: ${error.message}` };
  } finally {
    clearTimeout(timer);
  }
}
