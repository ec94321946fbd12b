import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { once } from "node:events";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { headers as natsHeaders, type MsgHdrs, type NatsConnection } from "@nats-io/nats-core";
import {
  JetStreamApiCodes,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
  type PubAck,
  type StreamConfig,
  type StreamInfo,
} from "@nats-io/jetstream";
import type { Logger } from "pino";
import { z } from "zod";
import { FleetError, issuesOf, type BucketKey, type FleetNames, type StreamKey } from "../protocol/index.js";

/**
 * A fleet's durable state as files: each stream that matters, KV buckets included (as their `KV_<bucket>` streams, so
 * deletes and purges survive as markers), one JSON Lines file per stream plus a manifest with each file's sha256.
 * Restore checks every file before it touches the server, then republishes the messages in order.
 */

const STREAMS: StreamKey[] = ["TASKS", "PROPOSALS", "APPROVALS", "OUTBOX", "AUDIT", "AUDIT_ANCHORS", "USAGE", "MEMLOG", "DLQ", "FINDINGS", "EVENTS"];
/**
 * Which buckets a backup holds. Exhaustive on purpose: a new bucket does not compile until someone decides.
 * Leases are left out: a restored lease would name a holder that no longer runs and block takeover until its TTL.
 */
const BUCKET_IN_BACKUP = {
  tasks: true,
  agents: true,
  proposals: true,
  budgets: true,
  memory: true,
  leases: false,
  // cron jobs' last runs: without them a restored fleet would run catch-ups for work already delivered
  schedules: true,
  // the dedup windows of recent task titles: without them a restored fleet would admit duplicates again
  dedup: true,
  // cached model answers are cheap to lose: a restored fleet just pays for them again
  cache: false,
  // tool calls by idempotency key: without them a restored fleet could run a recorded effect again
  toolruns: true,
  // model steps' answers: without them a task redelivered after a restore pays for its calls again, nothing worse
  answers: false,
  // held work: the assignments waiting for the end of quiet hours or for midnight; without them a restored fleet loses them
  held: true,
  // pipeline runs' step records: without them a task redelivered after a restore would run its pipeline from the first
  // step again (its model steps paying again)
  pipelineruns: true,
  // Atlas's cursors, waiting notes and held work: without them a restored Atlas would plan old inputs again
  plans: true,
  // tools' memory: without it every feed item is reported again and uptime histories and file manifests start over
  toolstate: true,
  // the tool hosts' catalogues: rewritten by every tool host when it starts
  tools: false,
  // what the bridges sent: without them a restored fleet could send an OUTBOX message redelivered after the restore again
  deliveries: true,
  // what the router's local classifier learned (operators' corrections, escalations): the fleet's own experience
  labels: true,
} satisfies Record<BucketKey, boolean>;
const BUCKETS = (Object.keys(BUCKET_IN_BACKUP) as BucketKey[]).filter((k) => BUCKET_IN_BACKUP[k]);
const BATCH = 256;
const FETCH_EXPIRES_MS = 5_000;
export const MANIFEST_FILE = "manifest.json";

/** The stream names a backup of this fleet holds, in the order they are written and restored. */
export function backupStreams(names: FleetNames): string[] {
  return [...STREAMS.map((k) => names.stream(k)), ...BUCKETS.map((k) => `KV_${names.bucket(k)}`)];
}

export function backupFile(stream: string): string {
  return `${stream}.jsonl`;
}

/** One stored message, one line of `<stream>.jsonl`. */
export const BackupRecord = z.object({
  seq: z.number().int().positive(),
  subject: z.string().min(1),
  /** when the original server stored it (ms precision); `timestampNanos` is the exact value */
  time: z.iso.datetime(),
  timestampNanos: z.string().regex(/^\d+$/),
  headers: z.record(z.string(), z.array(z.string())).optional(),
  data: z.base64(),
});
export type BackupRecord = z.infer<typeof BackupRecord>;

// numbers are not checked as safe integers: nanosecond durations (AUDIT's 365 days) pass 2^53, as in the client's own JSON
const SavedStreamConfig = z.looseObject({
  name: z.string().min(1),
  subjects: z.array(z.string()).optional(),
  retention: z.enum(["limits", "interest", "workqueue"]),
  storage: z.enum(["file", "memory"]),
  discard: z.enum(["old", "new"]).optional(),
  num_replicas: z.number().optional(),
  max_age: z.number().optional(),
  duplicate_window: z.number().optional(),
  max_msg_size: z.number().optional(),
  max_msgs: z.number().optional(),
  max_bytes: z.number().optional(),
  max_msgs_per_subject: z.number().optional(),
  max_consumers: z.number().optional(),
  discard_new_per_subject: z.boolean().optional(),
  allow_rollup_hdrs: z.boolean().optional(),
  allow_direct: z.boolean().optional(),
  deny_delete: z.boolean().optional(),
  deny_purge: z.boolean().optional(),
  description: z.string().optional(),
});

export const BackupManifest = z.object({
  version: z.literal(1),
  createdAt: z.iso.datetime(),
  prefix: z.string(),
  serverVersion: z.string().optional(),
  streams: z.array(
    z.object({
      name: z.string().min(1),
      file: z.string(),
      messages: z.number().int().nonnegative(),
      /** sequences as they were on the backed-up server; 0 when the stream was empty */
      firstSeq: z.number().int().nonnegative(),
      lastSeq: z.number().int().nonnegative(),
      config: SavedStreamConfig,
      sha256: z.string().regex(/^[0-9a-f]{64}$/),
    }),
  ),
});
export type BackupManifest = z.infer<typeof BackupManifest>;
type ManifestStream = BackupManifest["streams"][number];

export interface BackupOptions {
  /** write into a directory that already has files in it (the old manifest is removed first) */
  overwrite?: boolean;
  now?: () => number;
  signal?: AbortSignal;
}

export async function backupFleet(nc: NatsConnection, names: FleetNames, dir: string, log: Logger, options: BackupOptions = {}): Promise<BackupManifest> {
  const blog = log.child({ component: "backup" });
  const now = options.now ?? Date.now;
  await prepareDirectory(dir, options.overwrite ?? false);
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const streams: ManifestStream[] = [];
  for (const name of backupStreams(names)) {
    const info = await streamInfo(jsm, name);
    if (!info) {
      blog.warn({ stream: name }, "stream missing: left out of the backup");
      continue;
    }
    const entry = await dumpStream(js, info, join(dir, backupFile(name)), options.signal);
    blog.info({ stream: name, messages: entry.messages, firstSeq: entry.firstSeq, lastSeq: entry.lastSeq }, "stream backed up");
    streams.push(entry);
  }
  const manifest: BackupManifest = {
    version: 1,
    createdAt: new Date(now()).toISOString(),
    prefix: names.prefix,
    ...(nc.info?.version ? { serverVersion: nc.info.version } : {}),
    streams,
  };
  // the manifest is written last and renamed into place: a directory with a manifest holds a finished backup
  const tmp = join(dir, `${MANIFEST_FILE}.tmp`);
  await writeFile(tmp, JSON.stringify(manifest, null, 2) + "\n");
  await rename(tmp, join(dir, MANIFEST_FILE));
  blog.info({ dir, streams: streams.length, messages: streams.reduce((n, s) => n + s.messages, 0) }, "backup written");
  return manifest;
}

async function prepareDirectory(dir: string, overwrite: boolean): Promise<void> {
  const existing = await stat(dir).catch(() => undefined);
  if (existing && !existing.isDirectory()) throw new FleetError("CONFLICT", `${dir} exists and is not a directory`);
  if (existing && (await readdir(dir)).length > 0) {
    if (!overwrite) throw new FleetError("CONFLICT", `backup directory ${dir} is not empty (--overwrite writes into it)`);
    await rm(join(dir, MANIFEST_FILE), { force: true });
  }
  await mkdir(dir, { recursive: true });
}

/**
 * Reads the stream from its first message with an ordered consumer, in batches sized by what the server says is still
 * pending, and stops when nothing is: no idle timeout decides the end. A batch that comes back short (messages expired
 * while we read) is followed by asking the consumer for its pending count instead of waiting again.
 */
async function dumpStream(js: JetStreamClient, info: StreamInfo, file: string, signal: AbortSignal | undefined): Promise<ManifestStream> {
  const name = info.config.name;
  const out = createWriteStream(file);
  const hash = createHash("sha256");
  let messages = 0;
  let firstSeq = 0;
  let lastSeq = 0;
  const write = async (line: string) => {
    hash.update(line);
    if (!out.write(line)) await once(out, "drain");
  };
  try {
    let pending = info.state.messages;
    if (pending > 0) {
      const consumer = await js.consumers.get(name);
      try {
        while (pending > 0) {
          signal?.throwIfAborted();
          const wanted = Math.min(BATCH, pending);
          const batch = await consumer.fetch({ max_messages: wanted, expires: FETCH_EXPIRES_MS });
          let got = 0;
          for await (const m of batch) {
            got++;
            const record: BackupRecord = {
              seq: m.seq,
              subject: m.subject,
              time: m.time.toISOString(),
              timestampNanos: m.timestampNanos.toString(),
              ...(m.headers ? { headers: headersToRecord(m.headers) } : {}),
              data: Buffer.from(m.data).toString("base64"),
            };
            await write(JSON.stringify(record) + "\n");
            messages++;
            if (firstSeq === 0) firstSeq = m.seq;
            lastSeq = m.seq;
            pending = m.info.pending;
          }
          if (got < wanted) pending = (await consumer.info()).num_pending;
        }
      } finally {
        await consumer.delete().catch(() => undefined);
      }
    }
  } finally {
    out.end();
    await once(out, "close");
  }
  return { name, file: backupFile(name), messages, firstSeq, lastSeq, config: info.config, sha256: hash.digest("hex") };
}

function headersToRecord(h: MsgHdrs): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [key, values] of h) out[key] = [...values];
  return out;
}

export interface RestoreOptions {
  /** restore over streams that hold messages: each is deleted and created again from the backup */
  force?: boolean;
  /** replicas for the streams restore creates (default: as backed up), e.g. 1 when an R3 backup goes to one server */
  replicas?: number;
  signal?: AbortSignal;
}

export interface RestoreReport {
  streams: number;
  /** messages the server stored */
  messages: number;
  /** messages the server dropped as duplicates (the same Nats-Msg-Id twice in one stream's backup) */
  duplicates: number;
  perStream: Array<{ name: string; messages: number; duplicates: number; replaced: boolean }>;
}

export async function restoreFleet(nc: NatsConnection, names: FleetNames, dir: string, log: Logger, options: RestoreOptions = {}): Promise<RestoreReport> {
  const rlog = log.child({ component: "restore" });
  const manifest = await readManifest(dir);
  if (manifest.prefix !== names.prefix) {
    throw new FleetError("MESSAGE_INVALID", `the backup in ${dir} is of fleet "${manifest.prefix}", not "${names.prefix}"`);
  }
  const allowed = new Set(backupStreams(names));
  for (const s of manifest.streams) {
    if (!allowed.delete(s.name) || s.file !== backupFile(s.name) || s.config.name !== s.name) {
      throw new FleetError("MESSAGE_INVALID", `${MANIFEST_FILE} in ${dir}: "${s.name}" is not a stream of fleet "${names.prefix}" or is listed twice`);
    }
  }
  // every file is checked before the server is touched: a damaged backup changes nothing
  for (const s of manifest.streams) await verifyFile(dir, s);

  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const existing = new Map<string, StreamInfo>();
  const occupied: string[] = [];
  for (const s of manifest.streams) {
    const info = await streamInfo(jsm, s.name);
    if (!info) continue;
    existing.set(s.name, info);
    if (info.state.messages > 0) occupied.push(`${s.name} (${info.state.messages} messages)`);
  }
  if (occupied.length && !options.force) {
    throw new FleetError("CONFLICT", `streams already hold messages: ${occupied.join(", ")}; restore over them with --force`);
  }

  const report: RestoreReport = { streams: 0, messages: 0, duplicates: 0, perStream: [] };
  for (const s of manifest.streams) {
    options.signal?.throwIfAborted();
    const info = existing.get(s.name);
    // delete rather than purge: a purge keeps the duplicate-window table, which would drop restored messages
    const replaced = info !== undefined && info.state.messages > 0;
    if (replaced) await jsm.streams.delete(s.name);
    if (!info || replaced) await jsm.streams.add(restorableConfig(s.config, options.replicas));
    const counts = await republish(js, join(dir, s.file), s.name, options.signal);
    if (counts.duplicates) rlog.warn({ stream: s.name, duplicates: counts.duplicates }, "messages dropped as duplicates by Nats-Msg-Id");
    rlog.info({ stream: s.name, messages: counts.messages, replaced }, "stream restored");
    report.streams++;
    report.messages += counts.messages;
    report.duplicates += counts.duplicates;
    report.perStream.push({ name: s.name, ...counts, replaced });
  }
  rlog.info({ dir, streams: report.streams, messages: report.messages, duplicates: report.duplicates }, "restore finished");
  return report;
}

export async function readManifest(dir: string): Promise<BackupManifest> {
  const file = join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (cause) {
    throw new FleetError("MESSAGE_INVALID", `no backup in ${dir}: ${MANIFEST_FILE} cannot be read`, { cause });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new FleetError("MESSAGE_MALFORMED", `${file} is not JSON`, { cause });
  }
  const parsed = BackupManifest.safeParse(raw);
  if (!parsed.success) {
    const details = issuesOf(parsed.error);
    throw new FleetError("MESSAGE_INVALID", `${file} is not a fleet backup manifest: ${details.map((d) => `${d.path}: ${d.message}`).join("; ")}`, { details });
  }
  return parsed.data;
}

/** The file's sha256 matches the manifest (checked first: a changed file is refused as such), then its records and count. */
async function verifyFile(dir: string, s: ManifestStream): Promise<void> {
  const path = join(dir, s.file);
  if (!(await stat(path).catch(() => undefined))?.isFile()) throw new FleetError("MESSAGE_INVALID", `${path} is missing from the backup`);
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk);
  if (hash.digest("hex") !== s.sha256) {
    throw new FleetError("MESSAGE_INVALID", `${path} does not match its sha256 in ${MANIFEST_FILE}: the file was changed or damaged`);
  }
  let count = 0;
  for await (const _record of readRecords(path)) count++;
  if (count !== s.messages) throw new FleetError("MESSAGE_INVALID", `${path} holds ${count} messages, ${MANIFEST_FILE} says ${s.messages}`);
}

async function* readRecords(path: string): AsyncGenerator<BackupRecord> {
  const input = createReadStream(path);
  const lines = createInterface({ input, crlfDelay: Infinity });
  let n = 0;
  try {
    for await (const line of lines) {
      n++;
      if (line === "") continue;
      let raw: unknown;
      try {
        raw = JSON.parse(line);
      } catch (cause) {
        throw new FleetError("MESSAGE_MALFORMED", `${path}:${n} is not JSON`, { cause });
      }
      const parsed = BackupRecord.safeParse(raw);
      if (!parsed.success) {
        const details = issuesOf(parsed.error);
        throw new FleetError("MESSAGE_INVALID", `${path}:${n} is not a backed-up message: ${details.map((d) => `${d.path}: ${d.message}`).join("; ")}`, { details });
      }
      yield parsed.data;
    }
  } finally {
    lines.close();
    input.destroy();
  }
}

/** What the server assigns or what cannot be recreated (mirrors, sources, sealed) stays behind; limits come back. */
function restorableConfig(saved: z.infer<typeof SavedStreamConfig>, replicas: number | undefined): Partial<StreamConfig> & { name: string } {
  const { name, subjects, retention, storage, discard, num_replicas, max_age, duplicate_window, max_msg_size, max_msgs, max_bytes } = saved;
  const { max_msgs_per_subject, max_consumers, discard_new_per_subject, allow_rollup_hdrs, allow_direct, deny_delete, deny_purge, description } = saved;
  // fields left undefined are not sent (JSON drops them), so the server applies its defaults
  return {
    name, subjects, retention, storage, discard, max_age, duplicate_window, max_msg_size, max_msgs, max_bytes, max_msgs_per_subject,
    max_consumers, discard_new_per_subject, allow_rollup_hdrs, allow_direct, deny_delete, deny_purge, description,
    num_replicas: replicas ?? num_replicas,
  };
}

/**
 * Publishes every record in file order, `BATCH` acks in flight at a time (one connection keeps them in order).
 * `Nats-Expected-*` headers are dropped: they were preconditions against the old server's sequences.
 */
async function republish(js: JetStreamClient, path: string, stream: string, signal: AbortSignal | undefined): Promise<{ messages: number; duplicates: number }> {
  let messages = 0;
  let duplicates = 0;
  let inflight: Array<Promise<PubAck>> = [];
  const settle = async () => {
    for (const ack of await Promise.all(inflight)) {
      if (ack.duplicate) duplicates++;
      else messages++;
    }
    inflight = [];
  };
  for await (const r of readRecords(path)) {
    const data = Buffer.from(r.data, "base64");
    const pub = js.publish(r.subject, data, { headers: recordToHeaders(r.headers) }).catch((cause: unknown) => {
      throw new FleetError("INTERNAL", `restoring ${stream}: message ${r.seq} on ${r.subject} was refused`, { cause });
    });
    pub.catch(() => undefined); // seen by settle(); this only keeps an early failure from counting as unhandled
    inflight.push(pub);
    if (inflight.length >= BATCH) {
      await settle();
      signal?.throwIfAborted();
    }
  }
  await settle();
  return { messages, duplicates };
}

function recordToHeaders(record: Record<string, string[]> | undefined): MsgHdrs | undefined {
  if (!record) return undefined;
  const h = natsHeaders();
  let any = false;
  for (const [key, values] of Object.entries(record)) {
    if (/^nats-expected-/i.test(key)) continue;
    for (const v of values) {
      h.append(key, v);
      any = true;
    }
  }
  return any ? h : undefined;
}

async function streamInfo(jsm: JetStreamManager, name: string): Promise<StreamInfo | undefined> {
  try {
    return await jsm.streams.info(name);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) return undefined;
    throw err;
  }
}
