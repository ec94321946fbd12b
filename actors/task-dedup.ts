import type { KV, KvEntry } from "@nats-io/kv";
import type { Logger } from "pino";
import { z } from "zod";
import { decode, encode, FleetError, type CodecName } from "../protocol/index.js";
import { bigramDice, normalizeTitle, titleBigrams } from "./similarity.js";

/**
 * Two of the four dedup layers (DESIGN.md, Governance):
 * - task: a task whose title is more than `threshold` similar to one created within `createdWindowMs` is not created;
 * - discovery: a finding does not become a task when a similar task was completed within `completedWindowMs` (and the
 *   task rule applies to it as well).
 *
 * Per agent, one KV key holds the recent tasks' normalised titles. The check and the recording of the new task are one
 * compare-and-set on that key's revision, so of two concurrent admits of the same title (in any processes) exactly one
 * passes: the loser's write fails on the revision, it re-reads, and now sees the winner's entry.
 */

const HOUR = 3600_000;
const DAY = 24 * HOUR;

export const DedupEntry = z.object({
  taskId: z.string(),
  /** normalised (normalizeTitle), so the record stays bounded and comparing needs no second pass */
  title: z.string(),
  createdAt: z.number(),
  completedAt: z.number().optional(),
});
export type DedupEntry = z.infer<typeof DedupEntry>;

/** The KV value under `<agentId>`: recent entries oldest first, plus a running count of refused admits. */
export const DedupRecord = z.object({
  entries: z.array(DedupEntry),
  suppressed: z.number().int().nonnegative(),
});
export type DedupRecord = z.infer<typeof DedupRecord>;

export type DedupKind = "task" | "discovery";

export type AdmitResult =
  | { admitted: true }
  | { admitted: false; layer: DedupKind; duplicateOf: string; similarity: number; reason: string };

export interface TaskDedupOptions {
  kv: KV;
  codec: CodecName;
  now: () => number;
  /** refused when the similarity is strictly above this; default 0.7 */
  threshold?: number;
  /** task layer: how long a created task blocks similar ones; default 48 h */
  createdWindowMs?: number;
  /** discovery layer: how long a completed task blocks similar findings; default 7 days */
  completedWindowMs?: number;
  /** per agent; the oldest entries go first; default 500 (about 130 KB per record at the longest titles) */
  maxEntries?: number;
  /** put before the agent id, for a bucket shared with other keys (for example "dedup.") */
  keyPrefix?: string;
  log?: Logger;
}

interface Rules {
  threshold: number;
  createdWindowMs: number;
  completedWindowMs: number;
  maxEntries: number;
}

/** What one CAS attempt decided: the record to write (undefined: write nothing) and what to answer. */
interface Decision<R> {
  next: DedupRecord | undefined;
  result: R;
}

const MAX_ATTEMPTS = 20;

export class TaskDedup {
  private readonly rules: Rules;
  /** The last record and revision this process read or wrote per key, tried first (CAS tells when it is stale). */
  private readonly known = new Map<string, { record: DedupRecord; revision: number }>();

  constructor(private readonly options: TaskDedupOptions) {
    this.rules = {
      threshold: options.threshold ?? 0.7,
      createdWindowMs: options.createdWindowMs ?? 48 * HOUR,
      completedWindowMs: options.completedWindowMs ?? 7 * DAY,
      maxEntries: options.maxEntries ?? 500,
    };
    const r = this.rules;
    if (!(r.threshold >= 0 && r.threshold <= 1)) throw new RangeError(`dedup threshold ${r.threshold} is not in [0, 1]`);
    if (!(r.createdWindowMs > 0 && r.completedWindowMs > 0)) throw new RangeError("dedup windows must be positive");
    if (!(Number.isInteger(r.maxEntries) && r.maxEntries > 0)) throw new RangeError(`dedup maxEntries ${r.maxEntries} is not a positive integer`);
  }

  /**
   * Admits the task and records it, or refuses it as a duplicate of an earlier one (and counts the refusal). Admitting a
   * task id that is already recorded succeeds without a write, so a retried submission is not refused as a copy of itself.
   */
  async admit(agentId: string, taskId: string, title: string, kind: DedupKind): Promise<AdmitResult> {
    const normalized = normalizeTitle(title);
    const grams = titleBigrams(normalized);
    return this.change(agentId, (record, now): Decision<AdmitResult> => {
      if (record.entries.some((e) => e.taskId === taskId)) return { next: undefined, result: { admitted: true } };
      const refusal = findDuplicate(record.entries, grams, kind, now, this.rules);
      if (refusal) {
        return { next: { entries: prune(record.entries, now, this.rules), suppressed: record.suppressed + 1 }, result: refusal };
      }
      const entries = prune([...record.entries, { taskId, title: normalized, createdAt: now }], now, this.rules);
      return { next: { entries, suppressed: record.suppressed }, result: { admitted: true } };
    });
  }

  /**
   * Marks the task completed, which starts its discovery window. Only COMPLETED counts: a failed or canceled task did
   * not do the work, so a finding that would redo it is still news. Returns false when the task is not (or no longer)
   * recorded; a second call keeps the first completion time.
   */
  async completed(agentId: string, taskId: string): Promise<boolean> {
    return this.change(agentId, (record, now): Decision<boolean> => {
      const entry = record.entries.find((e) => e.taskId === taskId);
      if (!entry) return { next: undefined, result: false };
      if (entry.completedAt !== undefined) return { next: undefined, result: true };
      const entries = record.entries.map((e) => (e === entry ? { ...e, completedAt: now } : e));
      return { next: { entries: prune(entries, now, this.rules), suppressed: record.suppressed }, result: true };
    });
  }

  /**
   * Whether a task of this title would be refused now, recording nothing: Atlas's plan check asks before it assigns
   * (the admit at submission still decides, atomically).
   */
  async peek(agentId: string, title: string, kind: DedupKind): Promise<AdmitResult> {
    const { record } = await this.read(this.keyFor(agentId), agentId);
    return findDuplicate(record.entries, titleBigrams(normalizeTitle(title)), kind, this.options.now(), this.rules) ?? { admitted: true };
  }

  /** For `fleet status`: entries still inside a window, and refused admits since the record began. */
  async counts(agentId: string): Promise<{ entries: number; suppressed: number }> {
    const { record } = await this.read(this.keyFor(agentId), agentId);
    return { entries: prune(record.entries, this.options.now(), this.rules).length, suppressed: record.suppressed };
  }

  private keyFor(agentId: string): string {
    return `${this.options.keyPrefix ?? ""}${agentId}`;
  }

  /** Reads, decides and writes by CAS until the write lands on the revision it read; like TaskStore.update. */
  private async change<R>(agentId: string, decide: (record: DedupRecord, now: number) => Decision<R>): Promise<R> {
    const key = this.keyFor(agentId);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      try {
        const cached = attempt === 0 ? this.known.get(key) : undefined;
        const current = cached ?? (await this.read(key, agentId));
        const { next, result } = decide(current.record, this.options.now());
        if (!next) {
          // no write, so no CAS to say the cached record was current: another process may have added the entry since
          if (!cached) return result;
          continue;
        }
        const bytes = encode(next, this.options.codec);
        // revision 0: nothing was ever written under the key, so a create, which fails if another process got there first
        const revision = current.revision === 0 ? await this.options.kv.create(key, bytes) : await this.options.kv.update(key, bytes, current.revision);
        this.remember(key, next, revision);
        return result;
      } catch (err) {
        this.known.delete(key);
        if (!isWrongRevision(err)) throw FleetError.from(err);
      }
    }
    throw new FleetError("CONFLICT", `dedup record of ${agentId}: too many concurrent updates`);
  }

  private async read(key: string, agentId: string): Promise<{ record: DedupRecord; revision: number }> {
    const entry: KvEntry | null = await this.options.kv.get(key);
    if (!entry) return { record: empty(), revision: 0 };
    if (entry.operation !== "PUT") return this.remember(key, empty(), entry.revision);
    const decoded = decode(DedupRecord, entry.value, { codec: this.options.codec });
    if (!decoded.ok) {
      // A value that does not decode is treated as an empty record, which the next write overwrites (the CAS is on its
      // revision). The record only holds recent titles: losing it lets at most a few duplicates through, while
      // throwing would stop every task for this agent until someone repaired the key by hand.
      this.options.log?.warn({ agentId, key, revision: entry.revision, err: decoded.error }, "dedup record unreadable; starting it afresh");
      return this.remember(key, empty(), entry.revision);
    }
    return this.remember(key, decoded.value, entry.revision);
  }

  private remember(key: string, record: DedupRecord, revision: number): { record: DedupRecord; revision: number } {
    const known = { record, revision };
    this.known.delete(key);
    this.known.set(key, known);
    // bounded: the oldest go first (a Map iterates in insertion order)
    if (this.known.size > 1000) this.known.delete(this.known.keys().next().value!);
    return known;
  }
}

function empty(): DedupRecord {
  return { entries: [], suppressed: 0 };
}

/** The most similar entry above the threshold inside a window that applies to this kind, as a refusal; else undefined. */
function findDuplicate(entries: DedupEntry[], grams: Map<string, number>, kind: DedupKind, now: number, rules: Rules): AdmitResult | undefined {
  let best: { entry: DedupEntry; similarity: number; layer: DedupKind; why: string } | undefined;
  for (const entry of entries) {
    const sinceCreated = now - entry.createdAt;
    const sinceCompleted = entry.completedAt === undefined ? Infinity : now - entry.completedAt;
    const createdRecently = sinceCreated < rules.createdWindowMs;
    const completedRecently = kind === "discovery" && sinceCompleted < rules.completedWindowMs;
    if (!createdRecently && !completedRecently) continue;
    const similarity = bigramDice(grams, titleBigrams(entry.title));
    if (similarity <= rules.threshold || (best && similarity <= best.similarity)) continue;
    best = createdRecently
      ? { entry, similarity, layer: "task", why: `created ${age(sinceCreated)} ago (window ${age(rules.createdWindowMs)})` }
      : { entry, similarity, layer: "discovery", why: `completed ${age(sinceCompleted)} ago (window ${age(rules.completedWindowMs)})` };
  }
  if (!best) return undefined;
  const { entry, similarity, layer, why } = best;
  return {
    admitted: false,
    layer,
    duplicateOf: entry.taskId,
    similarity,
    reason: `${layer} dedup: title ${similarity.toFixed(2)} similar (threshold ${rules.threshold.toFixed(2)}) to task ${entry.taskId}, ${why}`,
  };
}

/**
 * Drops what no rule can match any more, then caps the list (oldest first). An entry lives until the longest window has
 * passed since it was created, or, once completed, until the completion window has passed since then; so a task that
 * takes longer than the longest window to complete is forgotten before it completes and its completion blocks nothing.
 */
function prune(entries: DedupEntry[], now: number, rules: Rules): DedupEntry[] {
  const longest = Math.max(rules.createdWindowMs, rules.completedWindowMs);
  const live = entries.filter(
    (e) => now - e.createdAt < longest || (e.completedAt !== undefined && now - e.completedAt < rules.completedWindowMs),
  );
  live.sort((a, b) => a.createdAt - b.createdAt);
  return live.length > rules.maxEntries ? live.slice(live.length - rules.maxEntries) : live;
}

/** "40 min", "3.5 h", "48 h", "7 d": hours up to three days, so the 48 h window reads as the design states it. */
function age(ms: number): string {
  const oneDecimal = (n: number) => String(Math.round(n * 10) / 10);
  if (ms < HOUR) return `${Math.max(0, Math.round(ms / 60_000))} min`;
  if (ms < 3 * DAY) return `${oneDecimal(ms / HOUR)} h`;
  return `${oneDecimal(ms / DAY)} d`;
}

function isWrongRevision(err: unknown): boolean {
  return err instanceof Error && /wrong last sequence/i.test(err.message);
}
