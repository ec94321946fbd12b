import type { JetStreamClient } from "@nats-io/jetstream";
import { millis } from "@nats-io/nats-core";
import { AuditRecord, formatPath, readStream, type CodecName, type FleetNames, type StoredMessage } from "../protocol/index.js";
import { readAuditAnchors } from "./audit-anchors.js";
import { chainHashOf, decodeStored, recordHash, sha256Hex } from "./audit-hash.js";
import { recordSigningBytes, signatureValid, type TrustedSigners } from "./audit-signing.js";

/*
 * Reading the AUDIT stream back (protocol's readStream): the records for `fleet audit`, and the verification of the
 * whole chain.
 */

const DAY_MS = 24 * 3600_000;

export type StoredAudit = StoredMessage;

/** Every message of the AUDIT stream (or of one agent's subject) in stream order, as stored. */
export function readAuditMessages(js: JetStreamClient, names: FleetNames, options: { agentId?: string; fromSeq?: number } = {}): AsyncGenerator<StoredAudit> {
  return readStream(js, names.stream("AUDIT"), { subject: options.agentId ? names.audit(options.agentId) : undefined, fromSeq: options.fromSeq });
}

/** The records of the trail, newest last; messages that are not records are counted and skipped. */
export async function readAuditRecords(
  js: JetStreamClient,
  names: FleetNames,
  codec: CodecName,
  options: { agentId?: string; tool?: string; limit?: number } = {},
): Promise<{ records: (AuditRecord & { seq: number })[]; malformed: number }> {
  const records: (AuditRecord & { seq: number })[] = [];
  let malformed = 0;
  // unfiltered, the latest `limit` records are the stream's last `limit` sequences: no need to read the whole year
  const fromSeq = options.limit !== undefined && !options.agentId && !options.tool ? await lastSeqOf(js, names) - options.limit + 1 : undefined;
  const read = { ...(options.agentId ? { agentId: options.agentId } : {}), ...(fromSeq !== undefined ? { fromSeq } : {}) };
  for await (const m of readAuditMessages(js, names, read)) {
    const decoded = decodeStored(m, codec);
    const parsed = decoded.ok ? AuditRecord.safeParse(decoded.value) : undefined;
    if (!parsed?.success) {
      malformed++;
      continue;
    }
    if (options.tool && parsed.data.tool !== options.tool) continue;
    records.push({ ...parsed.data, seq: m.seq });
    // keep memory bounded by the limit on a long trail
    if (options.limit !== undefined && records.length > 2 * options.limit) records.splice(0, records.length - options.limit);
  }
  return { records: options.limit !== undefined ? records.slice(-options.limit) : records, malformed };
}

async function lastSeqOf(js: JetStreamClient, names: FleetNames): Promise<number> {
  return (await (await js.streams.get(names.stream("AUDIT"))).info()).state.last_seq;
}

export interface AuditProblem {
  seq: number;
  problem: string;
  /** for a problem of an anchor itself: its sequence in AUDIT_ANCHORS */
  anchor?: number;
}

export interface AuditVerification {
  /** messages read */
  records: number;
  problems: AuditProblem[];
  /** the stream's last sequence when verification began */
  lastSeq: number;
  signatures: {
    /** whose keys signatures were checked against (the credentials directory); undefined: no trusted keys known */
    trustedFrom: string | undefined;
    signed: number;
    unsigned: number;
  };
  anchors: {
    count: number;
    /** the newest anchor: records after it are not anchored yet */
    latest: { seq: number; at: number } | undefined;
  };
}

export interface VerifyOptions {
  now?: number;
  /**
   * The fleet's tool-host and governance public keys. With them, a record without a signature, with an invalid one, or
   * signed by any other key is a problem; without them (a fleet run with no credentials) signatures present are checked
   * against the key they name and the rest are counted as unsigned.
   */
  trusted?: TrustedSigners | undefined;
}

/**
 * Walks the whole AUDIT stream and checks that it is one unbroken chain: each record's hash matches its content (a changed
 * record fails), each prevHash names the message before it (an inserted or forged record fails), and no sequence is
 * missing (a deleted record leaves a gap, also at the end). A missing start is accepted only when the first record left is
 * itself about to age out under the stream's max_age: its predecessors then expired as the stream is configured to do.
 * Each record's signature is checked (see VerifyOptions.trusted), and so is every anchor governance wrote: the record at
 * an anchored sequence must still hash as anchored, so a tail rewritten consistently (re-linked, re-hashed, re-signed
 * with a stolen tool-host key) is found too.
 */
export async function verifyAuditChain(js: JetStreamClient, names: FleetNames, codec: CodecName, options: VerifyOptions = {}): Promise<AuditVerification> {
  const info = await (await js.streams.get(names.stream("AUDIT"))).info();
  const lastSeq = info.state.last_seq;
  const maxAgeMs = info.config.max_age ? millis(info.config.max_age) : 0;
  const now = options.now ?? Date.now();
  const { trusted } = options;
  const anchors = await readAuditAnchors(js, names, codec, { trusted, now });
  const problems: AuditProblem[] = [...anchors.problems];
  const signatures = { trustedFrom: trusted?.source, signed: 0, unsigned: 0 };
  const seen = new Set<number>();
  let records = 0;
  let prevSeq: number | undefined;
  // the hash the next record must name; undefined when a gap or an accepted aged-out start means there is nothing to check
  let expected: string | undefined;

  for await (const m of readAuditMessages(js, names)) {
    records++;
    const anchored = anchors.bySeq.get(m.seq);
    if (anchored) {
      seen.add(m.seq);
      if (chainHashOf(m, codec) !== anchored.hash) {
        problems.push({ seq: m.seq, problem: `anchored at ${new Date(anchored.at).toISOString()} with hash ${anchored.hash.slice(0, 12)}…, it no longer has it: the chain was rewritten here or before` });
      }
    }
    const decoded = decodeStored(m, codec);
    const parsed = decoded.ok ? AuditRecord.safeParse(decoded.value) : undefined;
    const record = parsed?.success ? parsed.data : undefined;

    if (prevSeq === undefined) {
      expected = "";
      if (m.seq > 1) {
        const agedOut = record !== undefined && maxAgeMs > 0 && record.at < now - maxAgeMs + DAY_MS;
        if (agedOut) expected = undefined;
        else problems.push({ seq: 1, problem: `records 1–${m.seq - 1} are missing: the chain's start was deleted or purged` });
      }
    } else if (m.seq !== prevSeq + 1) {
      problems.push({ seq: prevSeq + 1, problem: `${range(prevSeq + 1, m.seq - 1)} missing: deleted from the stream` });
      expected = undefined;
    }
    prevSeq = m.seq;

    if (!decoded.ok) {
      problems.push({ seq: m.seq, problem: `not decodable: ${decoded.reason}` });
      expected = sha256Hex(m.data);
      continue;
    }
    if (!record) {
      const issues = parsed && !parsed.success ? parsed.error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`).join("; ") : "";
      problems.push({ seq: m.seq, problem: `not an audit record: ${issues}` });
      expected = chainHashOf(m, codec);
      continue;
    }
    if (m.subject !== names.audit(record.agentId)) {
      problems.push({ seq: m.seq, problem: `published on ${m.subject} but names agent "${record.agentId}"` });
    }
    // the raw value, not zod's copy: a member zod would strip must still count towards the hash
    if (decoded.value !== null && typeof decoded.value === "object" && recordHash(decoded.value) !== record.hash) {
      problems.push({ seq: m.seq, problem: "hash does not match the record's content: the record was changed" });
    }
    const unsigned = signatureProblem(record, trusted);
    if (unsigned === "unsigned") signatures.unsigned++;
    else if (unsigned) problems.push({ seq: m.seq, problem: unsigned });
    else signatures.signed++;
    if (expected !== undefined && record.prevHash !== expected) {
      problems.push({
        seq: m.seq,
        problem: expected === "" ? "the first record names a predecessor: records before it are missing" : `prevHash does not name record ${m.seq - 1}: a record was inserted or forged`,
      });
    }
    expected = record.hash;
  }

  const lastRead = prevSeq ?? 0;
  if (lastRead < lastSeq) {
    problems.push({ seq: lastRead + 1, problem: `${range(lastRead + 1, lastSeq)} missing: deleted from the end of the stream` });
  }
  for (const [seq, anchor] of anchors.bySeq) {
    // an anchored record inside the stream's range that was not read is a gap already reported; past the end, the
    // stream was cut back or made again
    if (!seen.has(seq) && seq > lastSeq) {
      problems.push({ seq, problem: `anchored at ${new Date(anchor.at).toISOString()}, but the stream now ends at ${lastSeq}: the chain was cut back or re-created` });
    }
  }
  problems.sort((a, b) => a.seq - b.seq);
  const latest = anchors.latest ? { seq: anchors.latest.seq, at: anchors.latest.at } : undefined;
  return { records, problems, lastSeq, signatures, anchors: { count: anchors.count, latest } };
}

/**
 * What is wrong with a record's signature, "unsigned" for a record without one where that is allowed (no trusted keys:
 * the tool host ran without an nkey), undefined when it is good.
 */
function signatureProblem(record: AuditRecord, trusted: TrustedSigners | undefined): string | undefined {
  if (!record.sig || !record.signer) {
    if (!trusted) return record.sig || record.signer ? "half a signature (signer or sig missing): the record was changed" : "unsigned";
    return "unsigned, but this fleet's tool hosts sign every record: written without the tool host's key";
  }
  if (trusted && !trusted.records.has(record.signer)) return `signed by ${record.signer}, which is not a tool-host identity of this fleet`;
  if (!signatureValid(record.signer, recordSigningBytes(record.hash), record.sig)) return "the signature does not match the record's hash: re-hashed or forged";
  return undefined;
}

function range(from: number, to: number): string {
  return from === to ? `record ${from} is` : `records ${from}–${to} are`;
}
