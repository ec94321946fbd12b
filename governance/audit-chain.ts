import { setTimeout as sleep } from "node:timers/promises";
import { JetStreamApiError, JetStreamApiCodes, type JetStreamClient, type PubAck } from "@nats-io/jetstream";
import type { Logger } from "pino";
import { encode, FleetError, HEADERS, secrets, wireHeaders, type AuditRecord, type CodecName, type FleetNames } from "../protocol/index.js";
import { chainHashOf, jsonValue, recordHash } from "./audit-hash.js";
import { recordSigningBytes, signBytes, type AuditSigner } from "./audit-signing.js";

/** What a caller appends: the record without its links and signature, which the chain computes. */
export type AuditEntry = Omit<AuditRecord, "prevHash" | "hash" | "signer" | "sig">;

export interface AuditAppended {
  seq: number;
  hash: string;
}

export interface AuditChainOptions {
  js: JetStreamClient;
  names: FleetNames;
  codec: CodecName;
  log: Logger;
  /** most records published back-to-back in one round (default 256) */
  maxBatch?: number;
  /** the tool host's nkey: every record names its public key and carries its signature over the hash; none: unsigned */
  signer?: AuditSigner | undefined;
}

// the server's answers to an expectation that no longer holds: someone else appended first
const WRONG_LAST_MSG_ID = 10070; // the server's JSStreamWrongLastMsgIDErrF, missing from the client's JetStreamApiCodes
const CONFLICT_CODES: ReadonlySet<number> = new Set([JetStreamApiCodes.StreamWrongLastSequence, JetStreamApiCodes.StreamWrongLastSequenceUnknown, WRONG_LAST_MSG_ID]);
/** rounds lost to other writers before an append gives up; every round someone wins, so only a storm of writers gets here */
const MAX_CONFLICTS = 100;
/** transport failures (no ack) before an append gives up */
const MAX_FAILURES = 5;
/** how far back from the stream's last sequence we look for the last record that still exists */
const TIP_SEARCH = 1_000;
/** how far past the round's base we look for records whose ack was lost */
const STORED_SCAN = 2_000;

interface Pending {
  entry: Record<string, unknown>;
  agentId: string;
  resolve: (appended: AuditAppended) => void;
  reject: (error: FleetError) => void;
  /** hashes this record was published under: a duplicate ack for one of them is our own earlier copy */
  attempted: Set<string>;
  conflicts: number;
  failures: number;
}

interface Tip {
  /** the stream's last sequence (possibly of a deleted message): the next record expects it */
  seq: number;
  /** the hash of the last record that still exists, "" for none */
  hash: string;
}

/**
 * Appends AuditRecords to the AUDIT stream as one hash chain across every writer: each record names the hash of the
 * stream's previous message, and the server enforces it. A record is published with Nats-Expected-Last-Sequence (and, after
 * the first of a round, Nats-Expected-Last-Msg-Id = its predecessor's hash, which is every record's msg id), so a record
 * is stored only right after the exact message it links to. Concurrent appends are queued and published back-to-back in
 * rounds, one round trip per round rather than per record; a round that loses to another writer re-reads the stream's tip
 * and publishes what was not stored again, re-linked.
 */
export class AuditChain {
  private queue: Pending[] = [];
  private tip: Tip | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private readonly maxBatch: number;
  private readonly stream: string;

  constructor(private readonly options: AuditChainOptions) {
    this.maxBatch = options.maxBatch ?? 256;
    this.stream = options.names.stream("AUDIT");
  }

  /** Reads the stream's tip, so a missing AUDIT stream fails at start rather than at the first call. */
  async start(): Promise<void> {
    this.tip = await this.readTip();
  }

  /** Stops taking appends and waits until every queued one is stored or has failed. */
  async stop(): Promise<void> {
    this.stopped = true;
    while (this.running) await this.running;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** Resolves once the record is in the stream, linked; rejects when it could not be stored (it is then not in the chain). */
  append(entry: AuditEntry): Promise<AuditAppended> {
    if (this.stopped) return Promise.reject(new FleetError("INTERNAL", "the audit chain is stopped"));
    const normalised = jsonValue(entry);
    if (!isObject(normalised)) return Promise.reject(new FleetError("INTERNAL", "an audit entry must be an object"));
    return new Promise((resolve, reject) => {
      this.queue.push({ entry: normalised, agentId: entry.agentId, resolve, reject, attempted: new Set(), conflicts: 0, failures: 0 });
      this.kick();
    });
  }

  get pending(): number {
    return this.queue.length;
  }

  private kick(): void {
    if (this.running) return;
    this.running = this.drain().finally(() => {
      this.running = undefined;
      if (this.queue.length > 0) this.kick();
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      let retry: Pending[];
      try {
        retry = await this.round(batch);
      } catch (err) {
        // the tip could not be read (NATS away): nothing of this round was published
        this.tip = undefined;
        retry = batch.filter((p) => this.failed(p, err));
        if (retry.length > 0) await sleep(100 * Math.min(...retry.map((p) => p.failures)));
      }
      this.queue.unshift(...retry);
    }
  }

  /** Publishes one round; returns the records that must go again, in order. */
  private async round(batch: Pending[]): Promise<Pending[]> {
    const base = this.tip ?? (await this.readTip());
    let prev = base.hash;
    let seq = base.seq;
    const sent = batch.map((p, i) => {
      const signer = this.options.signer;
      // a tool input or output may quote a secret the process knows: the trail keeps it scrubbed, hashed as kept
      const body = { ...secrets.scrubDeep(p.entry), ...(signer ? { signer: signer.publicKey } : {}), prevHash: prev };
      const hash = recordHash(body);
      const record = { ...body, hash, ...(signer ? { sig: signBytes(signer, recordSigningBytes(hash)) } : {}) };
      const expect = i === 0 ? { lastSequence: seq } : { lastSequence: seq, lastMsgID: prev };
      const ack = this.options.js.publish(this.options.names.audit(p.agentId), encode(record, this.options.codec), {
        headers: wireHeaders(this.options.codec, hash),
        expect,
      });
      prev = hash;
      seq += 1;
      return { p, hash, expectedSeq: seq, ack };
    });
    const settled = await Promise.allSettled(sent.map((s) => s.ack));

    let clean = true;
    let tip = base;
    let uncertain = false;
    const retry: Pending[] = [];
    sent.forEach((s, i) => {
      const result = settled[i];
      if (!result) return;
      if (result.status === "fulfilled" && stored(result.value, s.p, s.hash)) {
        s.p.resolve({ seq: result.value.seq, hash: s.hash });
        if (clean && !result.value.duplicate && result.value.seq === s.expectedSeq) tip = { seq: s.expectedSeq, hash: s.hash };
        else clean = false;
        return;
      }
      clean = false;
      s.p.attempted.add(s.hash);
      // a duplicate of someone else's identical record (same content, same predecessor): ours still needs its own place
      const reason = result.status === "fulfilled" ? "duplicate" : result.reason;
      if (reason === "duplicate" || isConflict(reason)) {
        if (++s.p.conflicts <= MAX_CONFLICTS) retry.push(s.p);
        else s.p.reject(new FleetError("CONFLICT", `audit append lost ${MAX_CONFLICTS} rounds to other writers`));
      } else if (reason instanceof JetStreamApiError) {
        // the server refused the message itself (too large, no stream): publishing it again cannot help
        s.p.reject(new FleetError("INTERNAL", `the AUDIT stream refused a record: ${reason.message}`, { cause: reason }));
      } else {
        uncertain = true;
        if (this.failed(s.p, reason)) retry.push(s.p);
      }
    });
    this.tip = clean ? tip : undefined;
    if (!clean) this.options.log.debug({ published: batch.length, retry: retry.length }, "audit round lost a race; re-reading the tip");
    return uncertain ? this.withoutStored(base.seq, retry) : retry;
  }

  /** Counts a transport failure; false (and the append rejected) once it has failed too often. */
  private failed(p: Pending, err: unknown): boolean {
    if (++p.failures < MAX_FAILURES) return true;
    p.reject(new FleetError("NATS_UNAVAILABLE", `audit append failed ${MAX_FAILURES} times: ${String(err)}`, { cause: err }));
    return false;
  }

  /**
   * A publish whose ack was lost may have been stored: those are found by hash after the round's base and resolved, so the
   * same call is not recorded twice. If the scan itself fails they are published again (a duplicate beats a missing record).
   */
  private async withoutStored(baseSeq: number, retry: Pending[]): Promise<Pending[]> {
    if (retry.length === 0) return retry;
    try {
      const stream = await this.options.js.streams.get(this.stream);
      const last = (await stream.info()).state.last_seq;
      let left = retry;
      for (let seq = baseSeq + 1; seq <= Math.min(last, baseSeq + STORED_SCAN) && left.length > 0; seq++) {
        const m = await stream.getMessage({ seq });
        if (!m) continue;
        const hash = chainHashOf({ data: m.data, contentType: m.header?.get(HEADERS.contentType) }, this.options.codec);
        const found = left.find((p) => p.attempted.has(hash));
        if (!found) continue;
        found.resolve({ seq, hash });
        left = left.filter((p) => p !== found);
      }
      return left;
    } catch (err) {
      this.options.log.warn({ err }, "could not check which audit records were stored; publishing them again");
      return retry;
    }
  }

  /** The stream's last sequence, and the hash of the newest message that still exists. */
  private async readTip(): Promise<Tip> {
    const tip = await readAuditTip(this.options.js, this.options.names, this.options.codec);
    return { seq: tip.lastSeq, hash: tip.newest?.hash ?? "" };
  }
}

export interface AuditTip {
  /** the stream's last sequence (possibly of a deleted message) */
  lastSeq: number;
  /** the newest message that still exists (within the last 1,000 sequences) and the hash the chain knows it by */
  newest: { seq: number; hash: string } | undefined;
}

/** Where the chain ends: what the next record links to, and what governance anchors. */
export async function readAuditTip(js: JetStreamClient, names: FleetNames, codec: CodecName): Promise<AuditTip> {
  const stream = await js.streams.get(names.stream("AUDIT"));
  const { state } = await stream.info();
  const lowest = Math.max(1, state.first_seq, state.last_seq - TIP_SEARCH);
  for (let seq = state.last_seq; seq >= lowest; seq--) {
    const m = await stream.getMessage({ seq });
    if (m) return { lastSeq: state.last_seq, newest: { seq, hash: chainHashOf({ data: m.data, contentType: m.header?.get(HEADERS.contentType) }, codec) } };
  }
  return { lastSeq: state.last_seq, newest: undefined };
}

function stored(ack: PubAck, p: Pending, hash: string): boolean {
  return !ack.duplicate || p.attempted.has(hash);
}

function isConflict(err: unknown): boolean {
  return err instanceof JetStreamApiError && CONFLICT_CODES.has(err.code);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}
