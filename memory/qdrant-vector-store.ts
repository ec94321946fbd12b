import { createHash } from "node:crypto";
import { QdrantClient, QdrantClientResourceExhaustedError, QdrantClientTimeoutError, type Schemas } from "@qdrant/js-client-rest";
import { z } from "zod";
import { FleetError, issuesOf } from "../protocol/index.js";
import { checkPoints, checkVector, MemoryPayload, type MemoryPoint, type SearchFilter, type SearchHit, type VectorStore } from "./vector-store.js";

/*
 * Semantic memory in Qdrant (set QDRANT_URL). The collection is created on first use with cosine distance and keyword
 * indexes on agentId and kind (and a float index on updatedAt, for pruning), so every per-agent search is an indexed
 * filter. Qdrant ids must be unsigned integers or UUIDs: a memory id becomes a name-based UUID (SHA-1, version 5 layout),
 * the same on every host, and the memory id itself rides in the payload as `memoryId`. Everything Qdrant answers is parsed
 * with zod before use. A server that does not answer (refused, timed out, 5xx, 429) is VECTOR_STORE_UNAVAILABLE.
 */

export interface QdrantVectorStoreOptions {
  url: string;
  apiKey?: string;
  collection: string;
  /** when given, a collection of another dimension is refused (VECTOR_DIMENSION); otherwise the first upsert fixes it */
  dimensions?: number;
  /** per request; Qdrant's client waits 300 s by default, far too long for a prompt being assembled */
  timeoutMs?: number;
}

const StoredPayload = MemoryPayload.extend({ memoryId: z.string().min(1) });
const PointOut = z.object({ id: z.union([z.string(), z.number()]), score: z.number().optional(), payload: StoredPayload });
const VectorParams = z.object({ size: z.number().int().positive() });
const StatusOf = z.object({ status: z.number() });
const UPSERT_BATCH = 256;
const SCROLL_PAGE = 256;

export class QdrantVectorStore implements VectorStore {
  private dims: number | undefined;
  private exists = false;

  private constructor(private readonly client: QdrantClient, private readonly collection: string, dimensions: number | undefined) {
    this.dims = dimensions;
  }

  /** Connects and, if the collection exists, checks its dimension; it is not created before the first write. */
  static async open(options: QdrantVectorStoreOptions): Promise<QdrantVectorStore> {
    const client = new QdrantClient({
      url: options.url,
      ...(options.apiKey ? { apiKey: options.apiKey } : {}),
      timeout: options.timeoutMs ?? 10_000,
      // the version probe would print to the console on its own schedule; a bad server surfaces on first call anyway
      checkCompatibility: false,
    });
    const store = new QdrantVectorStore(client, options.collection, options.dimensions);
    await store.ready(undefined);
    return store;
  }

  get dimensions(): number | undefined {
    return this.dims;
  }

  async upsert(points: readonly MemoryPoint[]): Promise<void> {
    const { payloads, dimensions } = checkPoints(points, this.dims);
    if (points.length === 0 || dimensions === undefined) return;
    await this.ready(dimensions);
    // the collection may have been created meanwhile, by another process, with another dimension
    if (this.dims !== dimensions) throw new FleetError("VECTOR_DIMENSION", `Qdrant collection ${this.collection} holds vectors of ${this.dims} dimensions, not ${dimensions}`);
    for (let at = 0; at < points.length; at += UPSERT_BATCH) {
      const batch = points.slice(at, at + UPSERT_BATCH).map((point, i) => ({
        id: pointId(point.id),
        vector: [...point.vector],
        payload: { ...(payloads[at + i] as MemoryPayload), memoryId: point.id },
      }));
      await this.call(() => this.client.upsert(this.collection, { wait: true, points: batch }));
    }
  }

  async search(vector: readonly number[], options: { limit: number; filter?: SearchFilter }): Promise<SearchHit[]> {
    checkVector(vector, this.dims ?? vector.length);
    const limit = Math.floor(options.limit);
    if (!(limit > 0) || !(await this.ready(undefined))) return [];
    const filter = toFilter(options.filter);
    const res = await this.call(() =>
      this.client.query(this.collection, { query: [...vector], limit, with_payload: true, ...(filter ? { filter } : {}) }),
    );
    return res.points.map(toHit);
  }

  /** Unranked (in Qdrant's id order): every hit's score is 0. */
  async list(filter: SearchFilter, limit = Infinity): Promise<SearchHit[]> {
    if (!(await this.ready(undefined))) return [];
    const qfilter = toFilter(filter);
    const out: SearchHit[] = [];
    let offset: Schemas["ExtendedPointId"] | undefined;
    while (out.length < limit) {
      const page = await this.call(() =>
        this.client.scroll(this.collection, {
          limit: Math.min(SCROLL_PAGE, limit - out.length),
          with_payload: true,
          ...(qfilter ? { filter: qfilter } : {}),
          ...(offset !== undefined ? { offset } : {}),
        }),
      );
      out.push(...page.points.map((p) => ({ ...toHit(p), score: 0 })));
      const next = page.next_page_offset;
      if (next === undefined || next === null || typeof next === "object") break;
      offset = next;
    }
    return out;
  }

  async delete(ids: readonly string[]): Promise<void> {
    if (ids.length === 0 || !(await this.ready(undefined))) return;
    await this.call(() => this.client.delete(this.collection, { wait: true, points: ids.map(pointId) }));
  }

  async count(filter?: SearchFilter): Promise<number> {
    if (!(await this.ready(undefined))) return 0;
    const qfilter = toFilter(filter);
    const res = await this.call(() => this.client.count(this.collection, { exact: true, ...(qfilter ? { filter: qfilter } : {}) }));
    return res.count;
  }

  /** The REST client holds no connection worth closing. */
  async close(): Promise<void> {}

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /**
   * Whether the collection exists, creating it when `create` gives the dimension. An existing collection's dimension is
   * read once and must match ours. A concurrent creator (another process) is fine: the loser re-reads what the winner made.
   */
  private async ready(create: number | undefined): Promise<boolean> {
    if (this.exists) return true;
    const { exists } = await this.call(() => this.client.collectionExists(this.collection));
    if (!exists && create === undefined) return false;
    if (!exists && create !== undefined) {
      try {
        await this.call(() => this.client.createCollection(this.collection, { vectors: { size: create, distance: "Cosine" } }));
      } catch (err) {
        // another process may have created it since we looked (Qdrant answers 409, or 400 in older versions)
        if (!(err instanceof FleetError && err.code === "INTERNAL")) throw err;
        if (!(await this.call(() => this.client.collectionExists(this.collection))).exists) throw err;
      }
      for (const [field, schema] of [["agentId", "keyword"], ["kind", "keyword"], ["updatedAt", "float"]] as const) {
        await this.call(() => this.client.createPayloadIndex(this.collection, { field_name: field, field_schema: schema, wait: true }));
      }
    }
    const info = await this.call(() => this.client.getCollection(this.collection));
    const params = VectorParams.safeParse(info.config.params.vectors);
    if (!params.success) throw new FleetError("MESSAGE_INVALID", `Qdrant collection ${this.collection} does not have one unnamed vector`, { details: issuesOf(params.error) });
    if (this.dims !== undefined && params.data.size !== this.dims) {
      throw new FleetError("VECTOR_DIMENSION", `Qdrant collection ${this.collection} holds vectors of ${params.data.size} dimensions, not ${this.dims}`);
    }
    this.dims = params.data.size;
    this.exists = true;
    return true;
  }

  private async call<T>(request: () => Promise<T>): Promise<T> {
    try {
      return await request();
    } catch (err) {
      const status = statusOf(err);
      const unavailable = status === undefined || status >= 500 || status === 429 || err instanceof QdrantClientTimeoutError || err instanceof QdrantClientResourceExhaustedError;
      const message = err instanceof Error ? err.message : String(err);
      throw new FleetError(unavailable ? "VECTOR_STORE_UNAVAILABLE" : "INTERNAL", `Qdrant (${this.collection}): ${message}`, { cause: err });
    }
  }
}

/** An HTTP error's status; undefined for a failure before any answer (refused, reset, DNS, timeout). */
function statusOf(err: unknown): number | undefined {
  const parsed = StatusOf.safeParse(err);
  return parsed.success ? parsed.data.status : undefined;
}

/** A name-based UUID (RFC 4122 version 5 layout over SHA-1): the same memory id gives the same point everywhere. */
export function pointId(id: string): string {
  const h = createHash("sha1").update("natsfleet.memory:").update(id, "utf8").digest();
  h[6] = ((h[6] as number) & 0x0f) | 0x50;
  h[8] = ((h[8] as number) & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString("hex");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

function toFilter(filter: SearchFilter | undefined): Schemas["Filter"] | undefined {
  const must: Schemas["FieldCondition"][] = [];
  if (filter?.agentId !== undefined) must.push({ key: "agentId", match: { value: filter.agentId } });
  if (filter?.kind !== undefined) must.push({ key: "kind", match: { value: filter.kind } });
  if (filter?.updatedBefore !== undefined) must.push({ key: "updatedAt", range: { lt: filter.updatedBefore } });
  return must.length > 0 ? { must } : undefined;
}

function toHit(point: unknown): SearchHit {
  const parsed = PointOut.safeParse(point);
  if (!parsed.success) throw new FleetError("MESSAGE_INVALID", "Qdrant returned a point that is not a stored memory", { details: issuesOf(parsed.error) });
  const { memoryId, ...payload } = parsed.data.payload;
  return { id: memoryId, score: parsed.data.score ?? 0, payload };
}
