import { z } from "zod";
import { FleetError, issuesOf } from "../protocol/index.js";

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

/**
 * The checks every store makes before it writes anything, so both refuse the same points the same way: a vector of the
 * wrong dimension (VECTOR_DIMENSION), a zero or non-finite vector (cosine is undefined for it), an empty id or a payload
 * that fails `MemoryPayload` (MESSAGE_INVALID). Returns the parsed payloads and the batch's dimension.
 */
export function checkPoints(points: readonly MemoryPoint[], dimensions: number | undefined): { payloads: MemoryPayload[]; dimensions: number | undefined } {
  const payloads: MemoryPayload[] = [];
  let dims = dimensions;
  points.forEach((point, i) => {
    dims ??= point.vector.length;
    checkVector(point.vector, dims, `points[${i}].vector`);
    if (typeof point.id !== "string" || point.id.length === 0 || point.id.length > 512) {
      throw new FleetError("MESSAGE_INVALID", `points[${i}].id must be a string of 1 to 512 characters`);
    }
    const parsed = MemoryPayload.safeParse(point.payload);
    if (!parsed.success) {
      const details = issuesOf(parsed.error).map((d) => ({ ...d, path: `points[${i}].payload.${d.path}` }));
      throw new FleetError("MESSAGE_INVALID", `points[${i}].payload is not a MemoryPayload`, { details });
    }
    payloads.push(parsed.data);
  });
  return { payloads, dimensions: dims };
}

/** A query or point vector: the collection's dimension, finite, not all zeros. */
export function checkVector(vector: readonly number[], dimensions: number, where = "vector"): void {
  if (vector.length !== dimensions) {
    throw new FleetError("VECTOR_DIMENSION", `${where} has ${vector.length} dimensions; the collection has ${dimensions}`);
  }
  let norm = 0;
  for (const x of vector) norm += x * x;
  if (!Number.isFinite(norm) || norm === 0) throw new FleetError("MESSAGE_INVALID", `${where} must be finite and not all zeros`);
}
