import { mkdir, open, readFile, rename, rm, writeFile, type FileHandle } from "node:fs/promises";
import { endianness } from "node:os";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import type { Logger } from "pino";
import { FleetError } from "../protocol/index.js";
import { checkPoints, checkVector, MemoryKind, MemoryPayload, type MemoryPoint, type SearchFilter, type SearchHit, type VectorStore } from "./vector-store.js";

/*
 * The default vector store: one directory, one process, no server.
 *
 * Memory. Vectors are normalised at insert (cosine = dot product) and kept as float32 rows in blocks of 1,024 rows, each
 * block one contiguous Float32Array, so growth never copies: n × d × 4 bytes (100,000 × 1,536 = 614 MB), plus each
 * payload as a JS object and about 60 bytes of columns and index per point. Everything lives in RAM, and that bounds the
 * store: measured at 100,000 × 1,536, RSS 900 MB (a bare process with the same vectors in one Float32Array: 654 MB).
 * A few hundred thousand such points fit a small host; for millions, set QDRANT_URL.
 *
 * Disk. `vectors.log` is an append-only log of records `[u32 body length][u32 crc32(body)][body]` (little-endian): a header
 * (format, dimensions), an upsert (id, payload JSON, the normalised float32 vector) or a delete (id). Concurrent writers
 * share one append + fdatasync (group commit); upsert/delete resolve once their records are on disk. Open replays the log;
 * a record cut short or failing its checksum ends it (a crash mid-append) and is truncated away, while an intact record
 * that does not parse refuses the open. Once the log exceeds twice the live records (+1 MB), it is rewritten to a temporary
 * file and renamed over it. The log is about n × (d × 4 + 250) bytes (618 MB at 100,000); reopening that took 10 s
 * (2–3 s replay, the rest training). A LOCK file holding the pid keeps a second process out: the store has one writer
 * (MemoryService), and other processes reach it through NATS.
 *
 * Search. While an exact scan costs under 2^24 multiply-adds (10,922 points of 1,536 dimensions, about 15 ms on one core),
 * search is exact. From there, an inverted-file (IVF) index: each vector is count-sketched to 128 dimensions (each
 * coordinate added, with a random sign, to one of 128 buckets; inner products are kept in expectation; 64 lost too much),
 * spherical k-means on a sample of sketches gives √n centroids, and each point is listed under its nearest centroid. A
 * query ranks the centroids by its own sketch and scores the points of the best `max(8, ⌈√n/32⌉)` lists exactly, in full
 * dimension. It keeps going while fewer than `limit` hits pass the filter. A filter leaving fewer points than those lists
 * hold (one agent's memories, the usual query) is scanned exactly instead. At 100,000 × 1,536: p50 7.3 ms against 129 ms for
 * a brute-force scan, recall@10 0.998 (bench/memory.ts). Recall depends on the data having at least about as many natural
 * clusters as there are lists (`probes` trades speed for recall). Training runs inside upsert/delete/open once the store
 * has doubled or halved since the last training; it blocks the event loop meanwhile (7 s at 100,000).
 */

const LOG_FILE = "vectors.log";
const LOCK_FILE = "LOCK";
const FORMAT = 1;
const HEADER = 1;
const UPSERT = 2;
const DELETE = 3;
const BLOCK_SHIFT = 10;
/** below this many multiply-adds per query (about 15 ms), an exact scan is cheap enough: 10,923 points of 1,536 */
const EXACT_BUDGET = 1 << 24;
const SKETCH = 128;
const TRAIN_PER_LIST = 32;
const TRAIN_ITERATIONS = 6;
const READ_CHUNK = 8 << 20;
/** the log may carry this much dead weight on top of 2× the live records before it is rewritten */
const COMPACT_SLACK = 1 << 20;

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
  private droppedTailBytes = 0;
  private fd: FileHandle | undefined;
  private logBytes = 0;
  private pending: Buffer[] = [];
  private waiters: { resolve: () => void; reject: (err: unknown) => void }[] = [];
  private flushQueued = false;
  private chain: Promise<unknown> = Promise.resolve();
  private failure: FleetError | undefined;
  private closed = false;

  private constructor(private readonly dir: string, private readonly log: Logger | undefined, seed: number, private readonly tuning: Pick<EmbeddedVectorStoreOptions, "probes" | "indexFrom">) {
    this.random = mulberry32(seed);
  }

  static async open(options: EmbeddedVectorStoreOptions): Promise<EmbeddedVectorStore> {
    if (endianness() !== "LE") throw new FleetError("INTERNAL", "the embedded vector store's log is little-endian; this host is not");
    await mkdir(options.dir, { recursive: true });
    const lock = await takeLock(options.dir);
    const store = new EmbeddedVectorStore(options.dir, options.log, options.seed ?? 0x5eed, options);
    try {
      await store.load(options.dimensions);
      return store;
    } catch (err) {
      await store.fd?.close();
      await rm(lock, { force: true });
      throw err;
    }
  }

  get dimensions(): number | undefined {
    return this.dims;
  }

  stats(): EmbeddedStoreStats {
    const { n: points, logBytes, liveBytes, trainMs, droppedTailBytes } = this;
    return { points, logBytes, liveBytes, indexLists: this.index?.k ?? 0, trainMs, droppedTailBytes };
  }

  async upsert(points: readonly MemoryPoint[]): Promise<void> {
    this.assertWritable();
    const { payloads, dimensions } = checkPoints(points, this.dims);
    if (points.length === 0 || dimensions === undefined) return;
    const records: Buffer[] = [];
    if (this.dims === undefined) records.push(this.fixDimensions(dimensions));
    points.forEach((point, i) => {
      const row = this.place(point.id, payloads[i] as MemoryPayload, (block, at) => normaliseInto(point.vector, block, at));
      records.push(this.track(row, upsertRecord(point.id, this.payloads[row] as MemoryPayload, this.vectorBytes(row))));
    });
    this.retrainIfDue();
    return this.enqueue(records);
  }

  async delete(ids: readonly string[]): Promise<void> {
    this.assertWritable();
    const records: Buffer[] = [];
    for (const id of ids) if (this.remove(id)) records.push(deleteRecord(id));
    this.retrainIfDue();
    if (records.length > 0) return this.enqueue(records);
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
      const probes = this.tuning.probes ?? Math.max(8, Math.ceil(index.k / 32));
      const selected = match ? this.selective(match, Math.ceil((probes * this.n) / index.k)) : undefined;
      if (selected) {
        for (const row of selected) score(row);
      } else {
        let probed = 0;
        for (const list of index.rank(q)) {
          if (probed >= probes && top.size >= limit) break;
          for (const row of index.lists[list] as number[]) score(row);
          probed++;
        }
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
    await this.serial(() => this.rewrite());
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.chain;
    await this.fd?.close();
    await rm(join(this.dir, LOCK_FILE), { force: true });
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

  /** Counts `record` as `row`'s live record, for deciding when to compact. */
  private track(row: number, record: Buffer): Buffer {
    this.liveBytes += record.length - (this.recordBytes[row] as number);
    this.recordBytes[row] = record.length;
    return record;
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

  private vectorBytes(row: number): Buffer {
    const rows = this.rows as Rows;
    const block = rows.block(row);
    return Buffer.from(block.buffer, block.byteOffset + rows.offset(row) * 4, rows.width * 4);
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

  private async load(dimensions: number | undefined): Promise<void> {
    const path = join(this.dir, LOG_FILE);
    await rm(`${path}.compact`, { force: true });
    const size = await this.replay(path);
    if (this.logBytes < size) {
      this.droppedTailBytes = size - this.logBytes;
      this.log?.warn({ path, bytes: this.droppedTailBytes }, "vector log ended in a torn record; dropped it");
      const fh = await open(path, "r+");
      await fh.truncate(this.logBytes);
      await fh.close();
    }
    this.fd = await open(path, "a");
    if (dimensions !== undefined && this.dims === undefined) await this.serial(() => this.append([this.fixDimensions(dimensions)]));
    else if (dimensions !== undefined) this.fixDimensions(dimensions);
    if (this.logBytes > 2 * this.liveBytes + COMPACT_SLACK) await this.serial(() => this.rewrite());
    this.retrainIfDue();
  }

  /** Applies every whole, intact record; returns the file's size (this.logBytes ends at the last good record). */
  private async replay(path: string): Promise<number> {
    const fh = await open(path, "a+");
    try {
      const size = (await fh.stat()).size;
      let buf = Buffer.alloc(0);
      let filePos = 0;
      for (;;) {
        let at = 0;
        while (at + 8 <= buf.length) {
          const length = buf.readUInt32LE(at);
          if (length === 0 || length > (1 << 20) + (this.dims ?? 1 << 16) * 4) return size;
          if (at + 8 + length > buf.length) break;
          const body = buf.subarray(at + 8, at + 8 + length);
          if (crc32(body) !== buf.readUInt32LE(at + 4)) return size;
          try {
            this.apply(body, this.logBytes);
          } catch (err) {
            // an intact record that does not parse is not a torn write: refuse to open rather than drop data
            if (err instanceof FleetError) throw err;
            throw new FleetError("MESSAGE_INVALID", `${path}: record at byte ${this.logBytes} is malformed`, { cause: err });
          }
          this.logBytes += 8 + length;
          at += 8 + length;
        }
        if (filePos >= size) return size;
        const chunk = Buffer.allocUnsafe(Math.min(READ_CHUNK, size - filePos));
        const { bytesRead } = await fh.read(chunk, 0, chunk.length, filePos);
        filePos += bytesRead;
        buf = Buffer.concat([buf.subarray(at), chunk.subarray(0, bytesRead)]);
      }
    } finally {
      await fh.close();
    }
  }

  private apply(body: Buffer, offset: number): void {
    const bad = (why: string) => new FleetError("MESSAGE_INVALID", `${join(this.dir, LOG_FILE)}: record at byte ${offset}: ${why}`);
    const type = body[0];
    if (type === HEADER) {
      if (body.readUInt16LE(1) !== FORMAT) throw bad(`format ${body.readUInt16LE(1)} is not ${FORMAT}`);
      this.fixDimensions(body.readUInt32LE(3));
      return;
    }
    const idEnd = 3 + body.readUInt16LE(1);
    const id = body.toString("utf8", 3, idEnd);
    if (type === DELETE) {
      this.remove(id);
      return;
    }
    if (type !== UPSERT || this.rows === undefined) throw bad(this.rows ? `unknown type ${type}` : "an upsert before the header");
    const vectorAt = idEnd + 4 + body.readUInt32LE(idEnd);
    if (body.length - vectorAt !== this.rows.width * 4) throw bad("the vector's length differs from the store's dimension");
    let payload: MemoryPayload;
    try {
      payload = MemoryPayload.parse(JSON.parse(body.toString("utf8", idEnd + 4, vectorAt)));
    } catch (err) {
      throw bad(`the payload is not a MemoryPayload: ${err instanceof Error ? err.message : String(err)}`);
    }
    const row = this.place(id, payload, (block, at) => body.copy(Buffer.from(block.buffer, block.byteOffset + at * 4), 0, vectorAt));
    this.liveBytes += 8 + body.length - (this.recordBytes[row] as number);
    this.recordBytes[row] = 8 + body.length;
  }

  /** Queues records for the next group commit; resolves once they are on disk. */
  private enqueue(records: Buffer[]): Promise<void> {
    this.pending.push(...records);
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      if (this.flushQueued) return;
      this.flushQueued = true;
      void this.serial(() => this.flush());
    });
  }

  private async flush(): Promise<void> {
    this.flushQueued = false;
    const records = this.pending;
    const waiters = this.waiters;
    this.pending = [];
    this.waiters = [];
    try {
      await this.append(records);
    } catch (err) {
      waiters.forEach((w) => w.reject(err));
      return;
    }
    waiters.forEach((w) => w.resolve());
    if (this.logBytes > 2 * this.liveBytes + COMPACT_SLACK) {
      await this.rewrite().catch((err: unknown) => this.log?.warn({ err }, "vector log compaction failed; the log stays as it was"));
    }
  }

  private async append(records: Buffer[]): Promise<void> {
    if (this.failure) throw this.failure;
    const fd = this.fd as FileHandle;
    const data = Buffer.concat(records);
    try {
      for (let at = 0; at < data.length; ) at += (await fd.write(data, at)).bytesWritten;
      await fd.datasync();
      this.logBytes += data.length;
    } catch (err) {
      // a later append must not land behind half a record, which replay would take for the end of the log
      await fd.truncate(this.logBytes).catch(() => undefined);
      this.failure = new FleetError("INTERNAL", `the vector log in ${this.dir} could not be written; the store refuses writes until reopened`, { cause: err });
      throw this.failure;
    }
  }

  /**
   * Writes the live records to a temporary file and renames it over the log. Writes made meanwhile wait in `pending` and
   * are appended after: replaying them over the rewritten log gives the same state, since upserts replace and deletes of
   * absent ids do nothing.
   */
  private async rewrite(): Promise<void> {
    const path = join(this.dir, LOG_FILE);
    const out = await open(`${path}.compact`, "w");
    let written = 0;
    try {
      let batch: Buffer[] = this.dims === undefined ? [] : [headerRecord(this.dims)];
      const flushBatch = async () => {
        const data = Buffer.concat(batch);
        for (let at = 0; at < data.length; ) at += (await out.write(data, at)).bytesWritten;
        written += data.length;
        batch = [];
      };
      let batchBytes = 0;
      for (const id of [...this.ids]) {
        const row = this.rowOf.get(id);
        if (row === undefined) continue;
        const record = upsertRecord(id, this.payloads[row] as MemoryPayload, this.vectorBytes(row));
        batch.push(record);
        batchBytes += record.length;
        if (batchBytes > 4 << 20) {
          await flushBatch();
          batchBytes = 0;
        }
      }
      await flushBatch();
      await out.sync();
    } finally {
      await out.close();
    }
    await rename(`${path}.compact`, path);
    const dir = await open(this.dir, "r");
    await dir.sync().finally(() => dir.close());
    const next = await open(path, "a");
    await this.fd?.close();
    this.fd = next;
    this.logBytes = written;
  }

  private serial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.chain.then(task);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private assertOpen(): void {
    if (this.closed) throw new FleetError("INTERNAL", `the vector store at ${this.dir} is closed`);
  }

  private assertWritable(): void {
    this.assertOpen();
    if (this.failure) throw this.failure;
  }
}

// ---------------------------------------------------------------------------------------------------------- index

/** Fixed-width float32 rows in blocks of 1,024: each block contiguous, so growing never copies what is there. */
class Rows {
  readonly blocks: Float32Array[] = [];
  constructor(readonly width: number) {}

  ensure(rows: number): void {
    while (this.blocks.length << BLOCK_SHIFT < rows) this.blocks.push(new Float32Array(this.width << BLOCK_SHIFT));
  }

  /** Frees trailing blocks, keeping one spare so a delete/insert pair at a boundary does not reallocate. */
  trim(rows: number): void {
    while ((this.blocks.length - 2) << BLOCK_SHIFT >= rows) this.blocks.pop();
  }

  block(row: number): Float32Array {
    return this.blocks[row >> BLOCK_SHIFT] as Float32Array;
  }

  offset(row: number): number {
    return (row & ((1 << BLOCK_SHIFT) - 1)) * this.width;
  }
}

/** Count sketch: coordinate i goes, with a random sign, to bucket h(i); the result is normalised. Identity when d ≤ 128. */
class Sketch {
  readonly width: number;
  private readonly bucket: Int32Array;
  private readonly sign: Float32Array;

  constructor(d: number, random: () => number) {
    this.width = Math.min(d, SKETCH);
    this.bucket = new Int32Array(d);
    this.sign = new Float32Array(d);
    for (let i = 0; i < d; i++) {
      this.bucket[i] = d <= SKETCH ? i : Math.floor(random() * SKETCH);
      this.sign[i] = d <= SKETCH || random() < 0.5 ? 1 : -1;
    }
  }

  project(src: Float32Array, at: number, out: Float32Array, outAt: number): void {
    const { width, bucket, sign } = this;
    out.fill(0, outAt, outAt + width);
    for (let i = 0; i < bucket.length; i++) {
      const j = outAt + (bucket[i] as number);
      out[j] = (out[j] as number) + (sign[i] as number) * (src[at + i] as number);
    }
    normaliseInPlace(out, outAt, width);
  }
}

/** The inverted file: √n spherical k-means centroids over sketches, and the rows listed under their nearest one. */
class IvfIndex {
  readonly lists: number[][];
  private readonly listOf: number[] = [];
  private readonly slot: number[] = [];
  private readonly scratch: Float32Array;

  private constructor(private readonly sketch: Sketch, private readonly centroids: Float32Array, readonly k: number, readonly trainedAt: number) {
    this.lists = Array.from({ length: k }, () => []);
    this.scratch = new Float32Array(sketch.width);
  }

  static train(rows: Rows, n: number, random: () => number): IvfIndex {
    const sketch = new Sketch(rows.width, random);
    const p = sketch.width;
    const k = Math.round(Math.sqrt(n));
    const m = Math.min(n, k * TRAIN_PER_LIST);
    const sample = new Float32Array(m * p);
    for (let i = 0; i < m; i++) {
      const row = m === n ? i : Math.floor(random() * n);
      sketch.project(rows.block(row), rows.offset(row), sample, i * p);
    }
    const index = new IvfIndex(sketch, kmeans(sample, m, k, p, random), k, n);
    for (let row = 0; row < n; row++) index.add(row, rows.block(row), rows.offset(row));
    return index;
  }

  add(row: number, block: Float32Array, at: number): void {
    this.sketch.project(block, at, this.scratch, 0);
    const list = (this.listOf[row] = nearest(this.centroids, this.k, this.scratch, 0, this.sketch.width));
    this.slot[row] = (this.lists[list] as number[]).push(row) - 1;
  }

  remove(row: number): void {
    const list = this.lists[this.listOf[row] as number] as number[];
    const last = list.pop() as number;
    if (last === row) return;
    list[this.slot[row] as number] = last;
    this.slot[last] = this.slot[row] as number;
  }

  /** Row `from` now lives at `to`. */
  move(from: number, to: number): void {
    const c = this.listOf[from] as number;
    (this.lists[c] as number[])[this.slot[from] as number] = to;
    this.listOf[to] = c;
    this.slot[to] = this.slot[from] as number;
  }

  /** The lists, nearest centroid to the query first. */
  rank(q: Float32Array): Int32Array {
    const p = this.sketch.width;
    this.sketch.project(q, 0, this.scratch, 0);
    const scores = new Float32Array(this.k);
    for (let c = 0; c < this.k; c++) scores[c] = dot(this.scratch, 0, this.centroids, c * p, p);
    return Int32Array.from({ length: this.k }, (_, c) => c).sort((a, b) => (scores[b] as number) - (scores[a] as number));
  }
}

/** Spherical k-means (unit vectors, nearest = largest dot product) over `m` rows of `data`, from random rows. */
function kmeans(data: Float32Array, m: number, k: number, p: number, random: () => number): Float32Array {
  const centroids = new Float32Array(k * p);
  const reseed = (c: number) => {
    const pick = Math.floor(random() * m) * p;
    centroids.set(data.subarray(pick, pick + p), c * p);
  };
  for (let c = 0; c < k; c++) reseed(c);
  const assigned = new Int32Array(m);
  const counts = new Int32Array(k);
  for (let iteration = 0; iteration < TRAIN_ITERATIONS; iteration++) {
    for (let i = 0; i < m; i++) assigned[i] = nearest(centroids, k, data, i * p, p);
    centroids.fill(0);
    counts.fill(0);
    for (let i = 0; i < m; i++) {
      const c = assigned[i] as number;
      counts[c] = (counts[c] as number) + 1;
      for (let j = 0; j < p; j++) centroids[c * p + j] = (centroids[c * p + j] as number) + (data[i * p + j] as number);
    }
    for (let c = 0; c < k; c++) {
      if (counts[c] === 0) reseed(c);
      normaliseInPlace(centroids, c * p, p);
    }
  }
  return centroids;
}

/** The centroid with the largest dot product with v. */
function nearest(centroids: Float32Array, k: number, v: Float32Array, at: number, p: number): number {
  let best = -Infinity;
  let bestC = 0;
  for (let c = 0; c < k; c++) {
    const s = dot(v, at, centroids, c * p, p);
    if (s > best) {
      best = s;
      bestC = c;
    }
  }
  return bestC;
}

/** The `k` best (score, row) pairs, kept sorted; a candidate below the k-th is rejected with one comparison. */
class TopK {
  readonly scores: Float64Array;
  private readonly best: Int32Array;
  size = 0;

  constructor(private readonly k: number) {
    this.scores = new Float64Array(k);
    this.best = new Int32Array(k);
  }

  push(score: number, row: number): void {
    if (this.size === this.k && score <= (this.scores[this.k - 1] as number)) return;
    let i = this.size < this.k ? this.size++ : this.k - 1;
    for (; i > 0 && (this.scores[i - 1] as number) < score; i--) {
      this.scores[i] = this.scores[i - 1] as number;
      this.best[i] = this.best[i - 1] as number;
    }
    this.scores[i] = score;
    this.best[i] = row;
  }

  rows(): number[] {
    return Array.from(this.best.subarray(0, this.size));
  }
}

/** Unrolled by 8: V8 does not vectorise, and separate accumulators let the multiplies overlap. */
function dot(a: Float32Array, aAt: number, b: Float32Array, bAt: number, length: number): number {
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0; // prettier-ignore
  let i = 0;
  for (; i + 7 < length; i += 8) {
    const x = aAt + i;
    const y = bAt + i;
    s0 += (a[x] as number) * (b[y] as number);
    s1 += (a[x + 1] as number) * (b[y + 1] as number);
    s2 += (a[x + 2] as number) * (b[y + 2] as number);
    s3 += (a[x + 3] as number) * (b[y + 3] as number);
    s4 += (a[x + 4] as number) * (b[y + 4] as number);
    s5 += (a[x + 5] as number) * (b[y + 5] as number);
    s6 += (a[x + 6] as number) * (b[y + 6] as number);
    s7 += (a[x + 7] as number) * (b[y + 7] as number);
  }
  for (; i < length; i++) s0 += (a[aAt + i] as number) * (b[bAt + i] as number);
  return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
}

function normaliseInto(v: readonly number[], out: Float32Array, at: number): void {
  let sum = 0;
  for (const x of v) sum += x * x;
  const scale = 1 / Math.sqrt(sum);
  for (let i = 0; i < v.length; i++) out[at + i] = (v[i] as number) * scale;
}

function normaliseInPlace(v: Float32Array, at: number, length: number): void {
  let sum = 0;
  for (let i = at; i < at + length; i++) sum += (v[i] as number) ** 2;
  const scale = sum > 0 ? 1 / Math.sqrt(sum) : 0;
  for (let i = at; i < at + length; i++) v[i] = (v[i] as number) * scale;
}

// ------------------------------------------------------------------------------------------------------- records

function frame(body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(8 + body.length);
  out.writeUInt32LE(body.length, 0);
  out.writeUInt32LE(crc32(body), 4);
  body.copy(out, 8);
  return out;
}

function headerRecord(dimensions: number): Buffer {
  const body = Buffer.alloc(7);
  body[0] = HEADER;
  body.writeUInt16LE(FORMAT, 1);
  body.writeUInt32LE(dimensions, 3);
  return frame(body);
}

function idField(type: number, id: string): Buffer {
  const idBytes = Buffer.from(id, "utf8");
  const out = Buffer.allocUnsafe(3 + idBytes.length);
  out[0] = type;
  out.writeUInt16LE(idBytes.length, 1);
  idBytes.copy(out, 3);
  return out;
}

function upsertRecord(id: string, payload: MemoryPayload, vector: Buffer): Buffer {
  const json = Buffer.from(JSON.stringify(payload), "utf8");
  const length = Buffer.allocUnsafe(4);
  length.writeUInt32LE(json.length, 0);
  return frame(Buffer.concat([idField(UPSERT, id), length, json, vector]));
}

function deleteRecord(id: string): Buffer {
  return frame(idField(DELETE, id));
}

// --------------------------------------------------------------------------------------------------------- misc

/** A LOCK file with our pid; a lock whose process is gone (a crash) is taken over. */
async function takeLock(dir: string): Promise<string> {
  const path = join(dir, LOCK_FILE);
  try {
    await writeFile(path, String(process.pid), { flag: "wx" });
    return path;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  const holder = Number((await readFile(path, "utf8")).trim());
  if (Number.isInteger(holder) && holder > 0 && isAlive(holder)) {
    throw new FleetError("VECTOR_STORE_UNAVAILABLE", `the vector store at ${dir} is open in process ${holder}; it has one writer, reached by others through the memory service`);
  }
  await writeFile(path, String(process.pid));
  return path;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
