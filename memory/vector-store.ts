import { z } from "zod";

/*
 * Semantic memory's storage. Two implementations pass one contract suite (test/memory/vector-store-contract.ts): the
 * embedded store (files in the fleet's directory, no server) and Qdrant (when its URL is configured). Vectors are
 * compared by cosine similarity; every point belongs to one agent and one kind, and searches filter on both.
 */

export const MemoryKind = z.enum(["insight", "fact", "finding", "decision", "lesson", "log"]);
export type MemoryKind = z.infer<typeof MemoryKind>;

export const MemoryPayload = z.object({
  agentId: z.string().min(1),
  kind: MemoryKind,
  text: z.string().min(1).max(8000),
  /** epoch ms the memory was written or last refreshed (distillation prunes stale ones by it) */
  updatedAt: z.number(),
  /** where it came from: a task id, a day's log ("2026-11-23"), a knowledge file */
  source: z.string().optional(),
});
export type MemoryPayload = z.infer<typeof MemoryPayload>;

export interface MemoryPoint {
  /** stable id: the same memory upserted twice replaces itself (distillation re-runs change nothing) */
  id: string;
  vector: readonly number[];
  payload: MemoryPayload;
}

export interface SearchFilter {
  agentId?: string;
  kind?: MemoryKind;
  /** only memories updated before this instant (for pruning) */
  updatedBefore?: number;
}

export interface SearchHit {
  id: string;
  score: number;
  payload: MemoryPayload;
}

export interface VectorStore {
  /** the dimension every vector must have; fixed by the first upsert (or the store's creation) */
  readonly dimensions: number | undefined;
  /** inserts or replaces points; a vector of the wrong dimension is refused (VECTOR_DIMENSION) before anything is written */
  upsert(points: readonly MemoryPoint[]): Promise<void>;
  /** the `limit` most similar points passing the filter, best first */
  search(vector: readonly number[], options: { limit: number; filter?: SearchFilter }): Promise<SearchHit[]>;
  /** the points passing the filter, without ranking (for pruning and export) */
  list(filter: SearchFilter, limit?: number): Promise<SearchHit[]>;
  delete(ids: readonly string[]): Promise<void>;
  count(filter?: SearchFilter): Promise<number>;
  close(): Promise<void>;
}
