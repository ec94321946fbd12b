import { createHash } from "node:crypto";
import type { KV } from "@nats-io/kv";
import { z } from "zod";
import { TierName, TokenUsage, assertToken, decode, encode, type ChatMessage, nowOf, type Clock } from "../protocol/index.js";
import { cosineSimilarity } from "./local-embedding.js";

/*
 * The router's semantic cache. Agents repeat themselves (the same health check every cycle, the same question reworded),
 * and a repeated request should not be billed twice. Entries live in the fleet's "cache" KV bucket, so every router
 * process shares them; each process keeps an in-memory index of the embeddings per scope for the similarity search.
 *
 * Scope: an answer is only reused for the same agent and task kind, because a cached answer is only as good as the
 * context it was produced in. Key: the whole request (messages and every parameter that shapes the answer), so a
 * different responseSchema, temperature or output limit is a different question even when the words are the same.
 * Tool-calling turns are never cached: their answer depends on the state of the world the tools read. The router asks
 * it only for pure steps (a responseSchema and no tools: JSON in, JSON out), and a near match must have the same words
 * as the stored question (factsHash), so a changed number or name is a miss.
 *
 * Similarity compares the question only (the last user message), and only between requests whose everything else (the
 * parameters and every other message) is identical. Embedding the whole request does not work: a shared system prompt
 * dominates the vector, so with the local trigram embedding "capital of France?" and "capital of Spain?" behind a 250
 * character system prompt score 0.98, and a changed number in a tool result would be invisible. A changed context is a
 * different question; a reworded question in the same context is the near-duplicate the cache is for.
 */

export type CacheScope = { agentId: string; kind: string };

export type CacheableRequest = {
  messages: readonly ChatMessage[];
  responseSchema?: unknown;
  maxOutputTokens?: number;
  temperature?: number;
  /** the checks a stored answer passed; a request naming other checks must not get it */
  checks?: readonly string[];
  tools?: readonly unknown[];
};

export const CachedAnswer = z.object({
  text: z.string(),
  usage: TokenUsage,
  model: z.string(),
  servedTier: TierName,
  /** epoch ms, on the clock of the router that stored it */
  storedAt: z.number(),
});
export type CachedAnswer = z.infer<typeof CachedAnswer>;

/** What a KV entry holds: the embedding travels with the answer so a router loading the index never re-embeds. */
const CacheEntry = z.object({
  /** hash of everything but the question: similarity only ever compares requests with equal contexts */
  context: z.string(),
  embedding: z.array(z.number()),
  /** hash of the question's words as a bag: a near match must have the same words, so a changed number or name misses */
  facts: z.string().optional(),
  answer: CachedAnswer,
});
type CacheEntry = z.infer<typeof CacheEntry>;

export type CacheHit = { answer: CachedAnswer; similarity: number; exact: boolean };
export type CacheStats = { lookups: number; hits: number; exactHits: number; hitRate: number };

export interface SemanticCacheOptions {
  kv: KV;
  /** cosine similarity at or above which a cached answer is reused (config `routing.cache.similarity`) */
  similarity: number;
  /** entries older than this are ignored (config `routing.cache.ttlHours`; the bucket itself keeps them 7 days) */
  ttlMs: number;
  /** embeds a request's question (its last user message) */
  embed: (text: string) => Promise<number[]>;
  clock?: Clock;
  maxEntriesPerScope?: number;
  /**
   * How stale a scope's in-memory index may get before it is topped up from KV. Another router's store is found at once
   * by an exact lookup (a KV get); for the similarity search it is found after at most this long.
   */
  reloadMs?: number;
}

type IndexEntry = { context: string; facts: string | undefined; embedding: number[]; storedAt: number };
type ScopeIndex = { entries: Map<string, IndexEntry>; loadedAt: number };

const EMBEDDING_MEMO = 64;
const LOAD_CONCURRENCY = 16;
const KIND_TOKEN = /^[A-Za-z0-9_-]{1,64}$/;

export class SemanticCache {
  private readonly clock: () => number;
  private readonly maxEntries: number;
  private readonly reloadMs: number;
  private readonly indexes = new Map<string, Promise<ScopeIndex>>();
  // a miss is followed by a store of the same request: the memo spares the second embedding call
  private readonly embeddings = new Map<string, Promise<number[]>>();
  private counts = { lookups: 0, hits: 0, exactHits: 0 };

  constructor(private readonly options: SemanticCacheOptions) {
    this.clock = nowOf(options.clock);
    this.maxEntries = options.maxEntriesPerScope ?? 500;
    this.reloadMs = options.reloadMs ?? 60_000;
  }

  /** An exact match first (one KV get), then the fresh entry in the scope with the same context and the most similar question. */
  async lookup(scope: CacheScope, request: CacheableRequest): Promise<CacheHit | undefined> {
    if (!isCacheable(request)) return undefined;
    this.counts.lookups++;
    const prefix = scopePrefix(scope);
    const key = `${prefix}.${requestHash(request)}`;
    const exact = await this.read(key);
    if (exact && this.isFresh(exact.answer.storedAt)) {
      this.counts.hits++;
      this.counts.exactHits++;
      return { answer: exact.answer, similarity: 1, exact: true };
    }

    if (questionText(request).trim() === "") return undefined;
    const index = await this.index(prefix);
    const embedding = await this.embedding(request);
    const context = contextHash(request);
    const facts = factsHash(request);
    const candidates: { key: string; similarity: number }[] = [];
    for (const [candidate, entry] of index.entries) {
      if (!this.isFresh(entry.storedAt)) {
        index.entries.delete(candidate);
        continue;
      }
      if (candidate === key || entry.context !== context || entry.facts !== facts || entry.embedding.length !== embedding.length) continue;
      const similarity = cosineSimilarity(embedding, entry.embedding);
      if (similarity >= this.options.similarity) candidates.push({ key: candidate, similarity });
    }
    candidates.sort((a, b) => b.similarity - a.similarity);
    for (const candidate of candidates) {
      // the index may be behind KV (another router overwrote or evicted the key): the stored value is what counts
      const entry = await this.read(candidate.key);
      if (entry && entry.context === context && this.isFresh(entry.answer.storedAt)) {
        this.counts.hits++;
        return { answer: entry.answer, similarity: candidate.similarity, exact: false };
      }
      index.entries.delete(candidate.key);
    }
    return undefined;
  }

  /** Stores an answer (stamped now unless it says when it was made); returns false for a request that is never cached. */
  async store(scope: CacheScope, request: CacheableRequest, answer: Omit<CachedAnswer, "storedAt"> & { storedAt?: number }): Promise<boolean> {
    if (!isCacheable(request)) return false;
    const prefix = scopePrefix(scope);
    const key = `${prefix}.${requestHash(request)}`;
    const index = await this.index(prefix);
    const entry: CacheEntry = {
      context: contextHash(request),
      facts: factsHash(request),
      embedding: await this.embedding(request),
      answer: { ...answer, storedAt: answer.storedAt ?? this.clock() },
    };
    await this.options.kv.put(key, encode(entry));
    index.entries.set(key, { context: entry.context, facts: entry.facts, embedding: entry.embedding, storedAt: entry.answer.storedAt });
    await this.bound(index);
    return true;
  }

  /** Counted over cacheable lookups only: a tool-calling turn is not a miss, it was never a candidate. */
  stats(): CacheStats {
    const { lookups, hits, exactHits } = this.counts;
    return { lookups, hits, exactHits, hitRate: lookups === 0 ? 0 : hits / lookups };
  }

  private isFresh(storedAt: number): boolean {
    return this.clock() - storedAt <= this.options.ttlMs;
  }

  /** A missing, deleted or unreadable entry is a miss: a corrupt value must not fail the call it would have answered. */
  private async read(key: string): Promise<CacheEntry | undefined> {
    const kvEntry = await this.options.kv.get(key);
    if (!kvEntry || kvEntry.operation !== "PUT") return undefined;
    const decoded = decode(CacheEntry, kvEntry.value);
    return decoded.ok ? decoded.value : undefined;
  }

  /** The scope's index, loaded from KV on first use and topped up once it is older than `reloadMs`. */
  private async index(prefix: string): Promise<ScopeIndex> {
    const current = this.indexes.get(prefix);
    if (!current) return this.startLoad(prefix, undefined);
    const index = await current;
    if (this.clock() - index.loadedAt < this.reloadMs) return index;
    if (this.indexes.get(prefix) !== current) return this.index(prefix); // another call is already reloading
    return this.startLoad(prefix, index);
  }

  private startLoad(prefix: string, previous: ScopeIndex | undefined): Promise<ScopeIndex> {
    const loading = this.load(prefix, previous);
    this.indexes.set(prefix, loading);
    // a failed load is forgotten, so the next lookup tries again instead of failing forever
    loading.catch(() => {
      if (this.indexes.get(prefix) === loading) this.indexes.delete(prefix);
    });
    return loading;
  }

  private async load(prefix: string, previous: ScopeIndex | undefined): Promise<ScopeIndex> {
    const loadedAt = this.clock();
    const keys: string[] = [];
    for await (const key of await this.options.kv.keys(`${prefix}.>`)) keys.push(key);
    const entries = new Map<string, IndexEntry>();
    const missing: string[] = [];
    for (const key of keys) {
      const known = previous?.entries.get(key);
      if (known) entries.set(key, known);
      else missing.push(key);
    }
    for (let i = 0; i < missing.length; i += LOAD_CONCURRENCY) {
      const batch = missing.slice(i, i + LOAD_CONCURRENCY);
      const read = await Promise.all(batch.map((key) => this.read(key)));
      read.forEach((entry, j) => {
        if (entry && this.isFresh(entry.answer.storedAt)) {
          entries.set(batch[j]!, { context: entry.context, facts: entry.facts, embedding: entry.embedding, storedAt: entry.answer.storedAt });
        }
      });
    }
    return { entries, loadedAt };
  }

  /** Expired entries go first, then the oldest, until the scope holds at most `maxEntriesPerScope`. */
  private async bound(index: ScopeIndex): Promise<void> {
    for (const [key, entry] of index.entries) if (!this.isFresh(entry.storedAt)) index.entries.delete(key);
    if (index.entries.size <= this.maxEntries) return;
    const oldest = [...index.entries].sort((a, b) => a[1].storedAt - b[1].storedAt).slice(0, index.entries.size - this.maxEntries);
    for (const [key] of oldest) {
      index.entries.delete(key);
      await this.options.kv.delete(key);
    }
  }

  private embedding(request: CacheableRequest): Promise<number[]> {
    const text = questionText(request);
    const memoKey = sha256(text);
    const memo = this.embeddings.get(memoKey);
    if (memo) return memo;
    const pending = this.options.embed(text);
    pending.catch(() => this.embeddings.delete(memoKey));
    this.embeddings.set(memoKey, pending);
    if (this.embeddings.size > EMBEDDING_MEMO) this.embeddings.delete(this.embeddings.keys().next().value!);
    return pending;
  }
}

export function isCacheable(request: CacheableRequest): boolean {
  return (request.tools?.length ?? 0) === 0;
}

/** `<agentId>.<kind>`: the kind is free text, so anything that is not a plain token is made one, with a hash against collisions. */
export function scopePrefix(scope: CacheScope): string {
  const agentId = assertToken("agentId", scope.agentId);
  const kind = scope.kind.length === 0 ? "general" : scope.kind;
  if (KIND_TOKEN.test(kind)) return `${agentId}.${kind}`;
  const readable = kind.replace(/[^A-Za-z0-9_-]+/g, "_").slice(0, 48);
  return `${agentId}.${readable}-${sha256(kind).slice(0, 8)}`;
}

/**
 * The whole request, canonically: only the fields that shape the answer, picked by name (a caller may pass a
 * CompleteRequest, whose callId and title must not split the cache) and serialised with sorted keys.
 */
export function requestHash(request: CacheableRequest): string {
  return sha256(canonicalJson({ messages: request.messages.map(({ role, content, name }) => ({ role, content, name })), params: parameters(request) })).slice(0, 32);
}

/** The request with its question blanked out: two requests with equal contexts differ at most in the question's wording. */
function contextHash(request: CacheableRequest): string {
  const question = questionIndex(request.messages);
  const messages = request.messages.map(({ role, content, name }, i) => ({ role, content: i === question ? "" : content, name }));
  return sha256(canonicalJson({ messages, params: parameters(request) })).slice(0, 32);
}

function parameters(request: CacheableRequest): Record<string, unknown> {
  return {
    responseSchema: request.responseSchema,
    maxOutputTokens: request.maxOutputTokens,
    temperature: request.temperature,
    checks: request.checks ? [...request.checks].sort() : undefined,
  };
}

/** The last user message; a request without one has no question and only ever hits exactly (an empty text embeds to zeros). */
function questionIndex(messages: readonly ChatMessage[]): number {
  for (let i = messages.length - 1; i >= 0; i--) if (messages[i]!.role === "user") return i;
  return -1;
}

/**
 * The question's words (letters and digits, lower-cased) as a sorted bag: what may differ between a near match and the
 * stored question is case, punctuation, spacing and order, never a number, a name or any other word. A pure step's input
 * that changed one value is a new question, however similar its embedding.
 */
function factsHash(request: CacheableRequest): string {
  const words = questionText(request).toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
  return sha256(words.sort().join(" ")).slice(0, 32);
}

function questionText(request: CacheableRequest): string {
  return request.messages[questionIndex(request.messages)]?.content ?? "";
}

function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== "object") return value;
  const sorted: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (item !== undefined) sorted[key] = sortKeys(item);
  }
  return sorted;
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}
