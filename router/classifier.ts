import { TIER_NAMES, type TierName } from "../protocol/index.js";
import type { ChatMessage } from "../protocol/index.js";

/**
 * The nano-tier classifier: for a step no pattern rule matched, a cheap model names the tier. Answers are cached per
 * normalised title (a fleet asks the same kinds of step again and again), and an answer that names no tier abstains,
 * so the agent's default applies. `ask` is a nano-tier completion billed to the agent like any other call.
 */
export class TierClassifier {
  private readonly cache = new Map<string, TierName | null>();
  hits = 0;
  misses = 0;

  constructor(
    private readonly ask: (messages: ChatMessage[], agentId: string) => Promise<string>,
    private readonly maxEntries = 1_000,
  ) {}

  /** `agentId` is whose step it is: the classifier's call is billed to that agent. */
  async classify(title: string, agentId: string): Promise<{ tier: TierName; cached: boolean } | undefined> {
    const key = title.trim().toLowerCase().replace(/\s+/g, " ");
    if (this.cache.has(key)) {
      this.hits++;
      const tier = this.cache.get(key);
      // refresh its place so the most used titles stay (Map keeps insertion order: a small LRU)
      this.cache.delete(key);
      this.cache.set(key, tier ?? null);
      return tier ? { tier, cached: true } : undefined;
    }
    this.misses++;
    const answer = await this.ask(classifierPrompt(title), agentId);
    const tier = tierNamedIn(answer);
    this.cache.set(key, tier ?? null);
    if (this.cache.size > this.maxEntries) this.cache.delete(this.cache.keys().next().value as string);
    return tier ? { tier, cached: false } : undefined;
  }
}

export function classifierPrompt(title: string): ChatMessage[] {
  return [
    {
      role: "system",
      content:
        "You route work to model tiers. Answer with exactly one word: nano (health checks, status queries, routing), " +
        "workhorse (security scans, deployments, monitoring), capable (content drafts, SEO, analytics), power " +
        "(orchestration, sales drafts, complex reasoning) or premium (strategic decisions, crisis response).",
    },
    { role: "user", content: title },
  ];
}

/** The first tier name that appears as a word in the answer, if any. */
export function tierNamedIn(answer: string): TierName | undefined {
  const words = answer.toLowerCase().match(/[a-z]+/g) ?? [];
  for (const word of words) {
    const tier = TIER_NAMES.find((name) => name === word);
    if (tier) return tier;
  }
  return undefined;
}
