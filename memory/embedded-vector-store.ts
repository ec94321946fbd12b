import type { Logger } from "pino";
import { FleetError } from "../protocol/index.js";
import { IvfIndex, mulberry32 } from "./ivf-index.js";
import { dot, normaliseInto, Rows, TopK } from "./vector-blocks.js";
import { deleteRecord, headerRecord, LOG_FILE, upsertRecord, VectorLog, type LogRecord } from "./vector-log.js";
import { checkPoints, checkVector, MemoryKind, type MemoryPayload, type MemoryPoint, type SearchFilter, type SearchHit, type VectorStore } from "./vector-store.js";

/*
 * The default vector store: one directory, one process, no server. This file holds the points and answers queries; the
 * vectors live in vector-blocks.ts, the directory on disk in vector-log.ts, the approximate index in ivf-index.ts.
 *
 * Memory. Vectors are normalised at insert (cosine = dot product) and kept as float32 rows in blocks of 1,024 rows, so
 * growth never copies: n × d × 4 bytes (100,000 × 1,536 = 614 MB), plus each payload as a JS object and about 60 bytes of
 * columns and index per point. Everything lives in RAM, and that bounds the store: measured at 100,000 × 1,536, RSS 900 MB
 * (a bare process with the same vectors in one Float32Array: 654 MB). A few hundred thousand such points fit a small host;
 * for millions, set QDRANT_URL.
 *
 * Search. While an exact scan costs under 2^24 multiply-adds (10,922 points of 1,536 dimensions, about 15 ms on one core),
 * search is exact. From there, an inverted-file (IVF) index scores the points of the lists nearest the query, and keeps
 * going while fewer than `limit` hits pass the filter. A filter leaving fewer points than those lists hold (one agent's
 * memories, the usual query) is scanned exactly instead. Training runs inside upsert/delete/open once the store has
 * doubled or halved since the last training; it blocks the event loop meanwhile (7 s at 100,000).
 */

/** below this many multiply-adds per query (about 15 ms), an exact scan is cheap enough: 10,923 points of 1,536 */
const EXACT_BUDGET = 1 << 24;

export interface EmbeddedVectorStoreOptions {
  dir: string;
  /** fixes the dimension at creation; an existing store of another dimension is refused (VECTOR_DIMENSION) */
  dimensions?: number;
  /** seeds the index's sketch and k-means, so the same writes give the same index */
  seed?: number;
  /** lists scored per search once indexed: more is slower and finds more of the true nearest (default below) */
  probes?: number;
  /** the size from which searches use the index (default: where an exact scan costs 2^24 multiply-adds, at least 4,096) */
  indexFrom?: number;
  log?: Logger;
}

export interface EmbeddedStoreStats {
  points: number;
  logBytes: number;
  liveBytes: number;
  /** 0 while searches are exact scans */
  indexLists: number;
  /** total time spent training the index since open */
  trainMs: number;
  /** bytes of a torn last record dropped at open */
  droppedTailBytes: number;
}

export class EmbeddedVectorStore implements VectorStore {
  static readonly LOG_FILE = LOG_FILE;
  private dims: number | undefined;
  private rows: Rows | undefined;
  private n = 0;
  private readonly ids: string[] = [];
  private readonly payloads: MemoryPayload[] = [];
  private readonly recordBytes: number[] = [];
  private readonly rowOf = new Map<string, number>();
  // filter columns: a filter reads these arrays, not 100,000 payload objects scattered over the heap
  private readonly agentNumbers = new Map<string, number>();
  private readonly agentCol: number[] = [];
  private readonly kindCol: number[] = [];
  private readonly updatedCol: number[] = [];
  private liveBytes = 0;
  private index: IvfIndex | undefined;
  private readonly random: () => number;
  private trainMs = 0;
  private readonly file: VectorLog;
  private closed = false;

  private constructor(private readonly dir: string, private readonly log: Logger | undefined, seed: number, private readonly tuning: Pick<EmbeddedVectorStoreOptions, "probes" | "indexFrom">) {
    this.random = mulberry32(seed);
    this.file = new VectorLog(dir, log, {
      dimensions: () => this.dims,
      liveBytes: () => this.liveBytes,
      apply: (record) => this.apply(record),
      liveRecords: () => this.liveRecords(),
    });
  }

  static async open(options: EmbeddedVectorStoreOptions): Promise<EmbeddedVectorStore> {
    const store = new EmbeddedVectorStore(options.dir, options.log, options.seed ?? 0x5eed, options);
    await store.file.open();
    try {
      await store.load(options.dimensions);
      return store;
    } catch (err) {
      await store.file.close();
      throw err;
    }
  }

  get dimensions(): number | undefined {
    return this.dims;
  }

  stats(): EmbeddedStoreStats {
    const { n: points, liveBytes, trainMs } = this;
    return { points, logBytes: this.file.bytes, liveBytes, indexLists: this.index?.k ?? 0, trainMs, droppedTailBytes: this.file.droppedTailBytes };
  }

  async upsert(points: readonly MemoryPoint[]): Promise<void> {
    this.assertWritable();
    const { payloads, dimensions } = checkPoints(points, this.dims);
    if (points.length === 0 || dimensions === undefined) return;
    const records: Buffer[] = [];
    if (this.dims === undefined) records.push(this.fixDimensions(dimensions));
    points.forEach((point, i) => {
      const row = this.place(point.id, payloads[i] as MemoryPayload, (block, at) => normaliseInto(point.vector, block, at));
      const record = upsertRecord(point.id, this.payloads[row] as MemoryPayload, (this.rows as Rows).bytes(row));
      this.track(row, record.length);
      records.push(record);
    });
    this.retrainIfDue();
    return this.file.enqueue(records);
  }

  async delete(ids: readonly string[]): Promise<void> {
    this.assertWritable();
    const records: Buffer[] = [];
    for (const id of ids) if (this.remove(id)) records.push(deleteRecord(id));
    this.retrainIfDue();
    if (records.length > 0) return this.file.enqueue(records);
  }

  async search(vector: readonly number[], options: { limit: number; filter?: SearchFilter }): Promise<SearchHit[]> {
    this.assertOpen();
    checkVector(vector, this.dims ?? vector.length);
    const limit = Math.floor(options.limit);
    const rows = this.rows;
    if (!(limit > 0) || this.n === 0 || !rows) return [];
    const d = rows.width;
    const q = new Float32Array(d);
    normaliseInto(vector, q, 0);
    const match = this.matcher(options.filter);
    const top = new TopK(limit);
    const score = (row: number) => {
      if (match === undefined || match(row)) top.push(dot(q, 0, rows.block(row), rows.offset(row), d), row);
    };
    const index = this.index;
    if (index === undefined) {
      for (let row = 0; row < this.n; row++) score(row);
    } else {
      const probes = this.tuning.probes ?? index.defaultProbes;
      const selected = match ? this.selective(match, Math.ceil((probes * this.n) / index.k)) : undefined;
      if (selected) {
        for (const row of selected) score(row);
      } else {
        index.probe(q, probes, () => top.size >= limit, score);
      }
    }
    return top.rows().map((row, i) => ({ id: this.ids[row] as string, score: top.scores[i] as number, payload: this.payloads[row] as MemoryPayload }));
  }

  /** Unranked: every hit's score is 0. */
  async list(filter: SearchFilter, limit = Infinity): Promise<SearchHit[]> {
    this.assertOpen();
    const match = this.matcher(filter);
    const out: SearchHit[] = [];
    for (let row = 0; row < this.n && out.length < limit; row++) {
      if (!match || match(row)) out.push({ id: this.ids[row] as string, score: 0, payload: this.payloads[row] as MemoryPayload });
    }
    return out;
  }

  async count(filter?: SearchFilter): Promise<number> {
    this.assertOpen();
    const match = this.matcher(filter);
    if (!match) return this.n;
    let count = 0;
    for (let row = 0; row < this.n; row++) if (match(row)) count++;
    return count;
  }

  /** Rewrites the log to the live records now (it also happens by itself when the log is over twice their size). */
  async compact(): Promise<void> {
    this.assertWritable();
    await this.file.compact();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.file.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ------------------------------------------------------------------------------------------------------ memory

  private fixDimensions(dimensions: number): Buffer {
    if (this.dims !== undefined && this.dims !== dimensions) {
      throw new FleetError("VECTOR_DIMENSION", `the store at ${this.dir} holds vectors of ${this.dims} dimensions, not ${dimensions}`);
    }
    this.dims = dimensions;
    this.rows ??= new Rows(dimensions);
    return headerRecord(dimensions);
  }

  /** Inserts or replaces `id`'s row; `write` fills its vector. The index, if any, re-lists the row. */
  private place(id: string, payload: MemoryPayload, write: (block: Float32Array, at: number) => void): number {
    const rows = this.rows as Rows;
    let row = this.rowOf.get(id);
    if (row === undefined) {
      row = this.n++;
      rows.ensure(this.n);
      this.rowOf.set(id, row);
      this.ids[row] = id;
      this.recordBytes[row] = 0;
    } else {
      this.index?.remove(row);
    }
    this.payloads[row] = payload;
    let agent = this.agentNumbers.get(payload.agentId);
    if (agent === undefined) this.agentNumbers.set(payload.agentId, (agent = this.agentNumbers.size));
    this.agentCol[row] = agent;
    this.kindCol[row] = MemoryKind.options.indexOf(payload.kind);
    this.updatedCol[row] = payload.updatedAt;
    write(rows.block(row), rows.offset(row));
    this.index?.add(row, rows.block(row), rows.offset(row));
    return row;
  }

  /** Counts a record of `bytes` as `row`'s live record, for deciding when to compact. */
  private track(row: number, bytes: number): void {
    this.liveBytes += bytes - (this.recordBytes[row] as number);
    this.recordBytes[row] = bytes;
  }

  /** Deletes by moving the last row into the hole, so rows stay dense. */
  private remove(id: string): boolean {
    const row = this.rowOf.get(id);
    if (row === undefined) return false;
    const rows = this.rows as Rows;
    const last = --this.n;
    this.index?.remove(row);
    this.liveBytes -= this.recordBytes[row] as number;
    this.rowOf.delete(id);
    if (row !== last) {
      rows.block(row).set(rows.block(last).subarray(rows.offset(last), rows.offset(last) + rows.width), rows.offset(row));
      const moved = this.ids[last] as string;
      this.ids[row] = moved;
      this.payloads[row] = this.payloads[last] as MemoryPayload;
      this.recordBytes[row] = this.recordBytes[last] as number;
      this.agentCol[row] = this.agentCol[last] as number;
      this.kindCol[row] = this.kindCol[last] as number;
      this.updatedCol[row] = this.updatedCol[last] as number;
      this.rowOf.set(moved, row);
      this.index?.move(last, row);
    }
    this.ids.pop();
    this.payloads.pop();
    this.recordBytes.pop();
    this.agentCol.pop();
    this.kindCol.pop();
    this.updatedCol.pop();
    rows.trim(this.n);
    return true;
  }

  /** The rows passing `match`, or undefined once there are more than `budget` of them (the index is cheaper then). */
  private selective(match: (row: number) => boolean, budget: number): number[] | undefined {
    const out: number[] = [];
    for (let row = 0; row < this.n; row++) {
      if (match(row) && out.push(row) > budget) return undefined;
    }
    return out;
  }

  private matcher(filter: SearchFilter | undefined): ((row: number) => boolean) | undefined {
    const { agentId, kind, updatedBefore } = filter ?? {};
    if (agentId === undefined && kind === undefined && updatedBefore === undefined) return undefined;
    const agent = agentId === undefined ? -1 : (this.agentNumbers.get(agentId) ?? -2);
    const kindNumber = kind === undefined ? -1 : MemoryKind.options.indexOf(kind);
    const before = updatedBefore ?? Infinity;
    const { agentCol, kindCol, updatedCol } = this;
    return (row) => (agent === -1 || agentCol[row] === agent) && (kindNumber === -1 || kindCol[row] === kindNumber) && (updatedCol[row] as number) < before;
  }

  private retrainIfDue(): void {
    const trainedAt = this.index?.trainedAt;
    // within a factor of two of its training size, an index still fits its data; the gap stops a store near a
    // threshold from retraining back and forth
    if (trainedAt !== undefined && this.n < 2 * trainedAt && 2 * this.n > trainedAt) return;
    if (this.n < (this.tuning.indexFrom ?? Math.max(4096, Math.ceil(EXACT_BUDGET / (this.dims ?? 1))))) {
      this.index = undefined;
      return;
    }
    const started = performance.now();
    this.index = IvfIndex.train(this.rows as Rows, this.n, this.random);
    const ms = performance.now() - started;
    this.trainMs += ms;
    this.log?.info({ points: this.n, lists: this.index.k, ms: Math.round(ms) }, "vector index trained");
  }

  // -------------------------------------------------------------------------------------------------------- disk

  /** After the log has been replayed into the store: fixes the dimension asked for, compacts if due, trains if due. */
  private async load(dimensions: number | undefined): Promise<void> {
    if (dimensions !== undefined && this.dims === undefined) await this.file.write([this.fixDimensions(dimensions)]);
    else if (dimensions !== undefined) this.fixDimensions(dimensions);
    await this.file.compactIfDue();
    this.retrainIfDue();
  }

  /** A record read back from the log at open. */
  private apply(record: LogRecord): void {
    if (record.type === "header") {
      this.fixDimensions(record.dimensions);
    } else if (record.type === "delete") {
      this.remove(record.id);
    } else {
      const { vector } = record;
      const row = this.place(record.id, record.payload, (block, at) => vector.copy(Buffer.from(block.buffer, block.byteOffset + at * 4)));
      this.track(row, record.bytes);
    }
  }

  /** The live records, each built when the rewrite reaches it, from the ids there were when it began. */
  private *liveRecords(): Generator<Buffer> {
    for (const id of [...this.ids]) {
      const row = this.rowOf.get(id);
      if (row !== undefined) yield upsertRecord(id, this.payloads[row] as MemoryPayload, (this.rows as Rows).bytes(row));
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new FleetError("INTERNAL", `the vector store at ${this.dir} is closed`);
  }

  private assertWritable(): void {
    this.assertOpen();
    const failure = this.file.failure;
    if (failure) throw failure;
  }
}
