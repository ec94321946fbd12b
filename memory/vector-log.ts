import { mkdir, open, readFile, rename, rm, writeFile, type FileHandle } from "node:fs/promises";
import { endianness } from "node:os";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import type { Logger } from "pino";
import { FleetError } from "../protocol/index.js";
import { MemoryPayload } from "./vector-store.js";

/*
 * How the embedded vector store (embedded-vector-store.ts) survives a restart: its directory on disk.
 *
 * `vectors.log` is an append-only log of records `[u32 body length][u32 crc32(body)][body]` (little-endian): a header
 * (format, dimensions), an upsert (id, payload JSON, the normalised float32 vector) or a delete (id). Concurrent writers
 * share one append + fdatasync (group commit); upsert/delete resolve once their records are on disk. Open replays the log;
 * a record cut short or failing its checksum ends it (a crash mid-append) and is truncated away, while an intact record
 * that does not parse refuses the open. Once the log exceeds twice the live records (+1 MB), it is rewritten to a temporary
 * file and renamed over it. The log is about n × (d × 4 + 250) bytes (618 MB at 100,000); reopening that took 10 s
 * (2–3 s replay, the rest training). A LOCK file holding the pid keeps a second process out: the store has one writer
 * (MemoryService), and other processes reach it through NATS.
 *
 * The log knows records, not the store: it hands each record read back to its owner, and asks the owner for the live
 * records when it rewrites.
 */

export const LOG_FILE = "vectors.log";
const LOCK_FILE = "LOCK";
const FORMAT = 1;
const HEADER = 1;
const UPSERT = 2;
const DELETE = 3;
const READ_CHUNK = 8 << 20;
/** the log may carry this much dead weight on top of 2× the live records before it is rewritten */
const COMPACT_SLACK = 1 << 20;

/** A record read back from the log; `vector` is a view of the record (copy it out), `bytes` the record's framed size. */
export type LogRecord =
  | { type: "header"; dimensions: number }
  | { type: "upsert"; id: string; payload: MemoryPayload; vector: Buffer; bytes: number }
  | { type: "delete"; id: string };

/** What the log needs from the store whose writes it keeps. */
export interface LogOwner {
  /** the store's dimension once fixed: it bounds a record's length, and heads a rewritten log */
  dimensions(): number | undefined;
  /** the size of the live records, for deciding when to compact */
  liveBytes(): number;
  /** applies a record read back at open; a FleetError refuses the open as it is, any other error as MESSAGE_INVALID */
  apply(record: LogRecord): void;
  /** the live records as upserts, built lazily: a rewrite awaits between batches and takes each one as it is then */
  liveRecords(): Iterable<Buffer>;
}

export class VectorLog {
  private fd: FileHandle | undefined;
  private logBytes = 0;
  private dropped = 0;
  private pending: Buffer[] = [];
  private waiters: { resolve: () => void; reject: (err: unknown) => void }[] = [];
  private flushQueued = false;
  private chain: Promise<unknown> = Promise.resolve();
  private writeFailure: FleetError | undefined;

  constructor(private readonly dir: string, private readonly log: Logger | undefined, private readonly owner: LogOwner) {}

  /** Takes the lock and replays the log into the owner; on failure, releases what it took. */
  async open(): Promise<void> {
    if (endianness() !== "LE") throw new FleetError("INTERNAL", "the embedded vector store's log is little-endian; this host is not");
    await mkdir(this.dir, { recursive: true });
    const lock = await takeLock(this.dir);
    try {
      await this.load();
    } catch (err) {
      await this.fd?.close();
      await rm(lock, { force: true });
      throw err;
    }
  }

  get bytes(): number {
    return this.logBytes;
  }

  /** bytes of a torn last record dropped at open */
  get droppedTailBytes(): number {
    return this.dropped;
  }

  /** Set once an append failed: the log refuses writes until reopened. */
  get failure(): FleetError | undefined {
    return this.writeFailure;
  }

  /** Appends `records` in turn with the log's other work, not batched with other writers. */
  write(records: Buffer[]): Promise<void> {
    return this.serial(() => this.append(records));
  }

  /** Queues records for the next group commit; resolves once they are on disk. */
  enqueue(records: Buffer[]): Promise<void> {
    this.pending.push(...records);
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      if (this.flushQueued) return;
      this.flushQueued = true;
      void this.serial(() => this.flush());
    });
  }

  /** Rewrites the log to the live records now. */
  compact(): Promise<void> {
    return this.serial(() => this.rewrite());
  }

  async compactIfDue(): Promise<void> {
    if (this.due()) await this.compact();
  }

  /** Waits for the writes under way, then closes the file and releases the lock. */
  async close(): Promise<void> {
    await this.chain;
    await this.fd?.close();
    await rm(join(this.dir, LOCK_FILE), { force: true });
  }

  private async load(): Promise<void> {
    const path = join(this.dir, LOG_FILE);
    await rm(`${path}.compact`, { force: true });
    const size = await this.replay(path);
    if (this.logBytes < size) {
      this.dropped = size - this.logBytes;
      this.log?.warn({ path, bytes: this.dropped }, "vector log ended in a torn record; dropped it");
      const fh = await open(path, "r+");
      await fh.truncate(this.logBytes);
      await fh.close();
    }
    this.fd = await open(path, "a");
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
          if (length === 0 || length > (1 << 20) + (this.owner.dimensions() ?? 1 << 16) * 4) return size;
          if (at + 8 + length > buf.length) break;
          const body = buf.subarray(at + 8, at + 8 + length);
          if (crc32(body) !== buf.readUInt32LE(at + 4)) return size;
          try {
            this.owner.apply(this.decode(body, this.logBytes));
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

  private decode(body: Buffer, offset: number): LogRecord {
    const bad = (why: string) => new FleetError("MESSAGE_INVALID", `${join(this.dir, LOG_FILE)}: record at byte ${offset}: ${why}`);
    const type = body[0];
    if (type === HEADER) {
      if (body.readUInt16LE(1) !== FORMAT) throw bad(`format ${body.readUInt16LE(1)} is not ${FORMAT}`);
      return { type: "header", dimensions: body.readUInt32LE(3) };
    }
    const idEnd = 3 + body.readUInt16LE(1);
    const id = body.toString("utf8", 3, idEnd);
    if (type === DELETE) return { type: "delete", id };
    const dimensions = this.owner.dimensions();
    if (type !== UPSERT || dimensions === undefined) throw bad(dimensions !== undefined ? `unknown type ${type}` : "an upsert before the header");
    const vectorAt = idEnd + 4 + body.readUInt32LE(idEnd);
    if (body.length - vectorAt !== dimensions * 4) throw bad("the vector's length differs from the store's dimension");
    let payload: MemoryPayload;
    try {
      payload = MemoryPayload.parse(JSON.parse(body.toString("utf8", idEnd + 4, vectorAt)));
    } catch (err) {
      throw bad(`the payload is not a MemoryPayload: ${err instanceof Error ? err.message : String(err)}`);
    }
    return { type: "upsert", id, payload, vector: body.subarray(vectorAt), bytes: 8 + body.length };
  }

  private due(): boolean {
    return this.logBytes > 2 * this.owner.liveBytes() + COMPACT_SLACK;
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
    if (this.due()) {
      await this.rewrite().catch((err: unknown) => this.log?.warn({ err }, "vector log compaction failed; the log stays as it was"));
    }
  }

  private async append(records: Buffer[]): Promise<void> {
    if (this.writeFailure) throw this.writeFailure;
    const fd = this.fd as FileHandle;
    const data = Buffer.concat(records);
    try {
      for (let at = 0; at < data.length; ) at += (await fd.write(data, at)).bytesWritten;
      await fd.datasync();
      this.logBytes += data.length;
    } catch (err) {
      // a later append must not land behind half a record, which replay would take for the end of the log
      await fd.truncate(this.logBytes).catch(() => undefined);
      this.writeFailure = new FleetError("INTERNAL", `the vector log in ${this.dir} could not be written; the store refuses writes until reopened`, { cause: err });
      throw this.writeFailure;
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
      const dimensions = this.owner.dimensions();
      let batch: Buffer[] = dimensions === undefined ? [] : [headerRecord(dimensions)];
      const flushBatch = async () => {
        const data = Buffer.concat(batch);
        for (let at = 0; at < data.length; ) at += (await out.write(data, at)).bytesWritten;
        written += data.length;
        batch = [];
      };
      let batchBytes = 0;
      for (const record of this.owner.liveRecords()) {
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
}

// ------------------------------------------------------------------------------------------------------- records

function frame(body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(8 + body.length);
  out.writeUInt32LE(body.length, 0);
  out.writeUInt32LE(crc32(body), 4);
  body.copy(out, 8);
  return out;
}

export function headerRecord(dimensions: number): Buffer {
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

export function upsertRecord(id: string, payload: MemoryPayload, vector: Buffer): Buffer {
  const json = Buffer.from(JSON.stringify(payload), "utf8");
  const length = Buffer.allocUnsafe(4);
  length.writeUInt32LE(json.length, 0);
  return frame(Buffer.concat([idField(UPSERT, id), length, json, vector]));
}

export function deleteRecord(id: string): Buffer {
  return frame(idField(DELETE, id));
}

// ---------------------------------------------------------------------------------------------------------- lock

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
