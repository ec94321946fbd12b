import { JetStreamApiCodes, JetStreamApiError, type JetStreamClient } from "@nats-io/jetstream";
import { millis } from "@nats-io/nats-core";
import { AuditAnchor, readStream, type CodecName, type FleetNames } from "../protocol/index.js";
import { decodeStored } from "./audit-hash.js";
import { anchorSigningBytes, signatureValid, type TrustedSigners } from "./audit-signing.js";

/*
 * The verifier's side of the anchors: every anchor governance wrote to AUDIT_ANCHORS, checked on its own (signature, a
 * trusted signer, no anchor deleted), as a map from the audit sequence it anchors to the hash the record there had.
 */

const DAY_MS = 24 * 3600_000;

export interface AnchorProblem {
  /** the audit sequence the anchor names (0 when the anchor cannot be read) */
  seq: number;
  /** the anchor's own sequence in AUDIT_ANCHORS */
  anchor: number;
  problem: string;
}

export interface AnchorSet {
  /** audit sequence → the anchor that names it (the newest, should there be two) */
  bySeq: Map<number, AuditAnchor & { anchor: number }>;
  problems: AnchorProblem[];
  /** anchors read */
  count: number;
  latest: (AuditAnchor & { anchor: number }) | undefined;
}

/**
 * Reads and checks every anchor. Without trusted signers (no credentials directory) an anchor's signature is still checked
 * against the key it names, but anyone could have made that key; the caller reports the signers as unchecked.
 */
export async function readAuditAnchors(
  js: JetStreamClient,
  names: FleetNames,
  codec: CodecName,
  options: { trusted?: TrustedSigners | undefined; now: number },
): Promise<AnchorSet> {
  const set: AnchorSet = { bySeq: new Map(), problems: [], count: 0, latest: undefined };
  const streamName = names.stream("AUDIT_ANCHORS");
  let info;
  try {
    info = await (await js.streams.get(streamName)).info();
  } catch (err) {
    // a fleet from before anchors: nothing anchored yet (the stream is made at the next start)
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) return set;
    throw err;
  }
  const maxAgeMs = info.config.max_age ? millis(info.config.max_age) : 0;
  const auditStream = names.stream("AUDIT");
  let prev: number | undefined;
  for await (const m of readStream(js, streamName)) {
    set.count++;
    const decoded = decodeStored(m, codec);
    const parsed = decoded.ok ? AuditAnchor.safeParse(decoded.value) : undefined;
    const anchor = parsed?.success ? parsed.data : undefined;
    const from = prev === undefined ? 1 : prev + 1;
    if (m.seq > from) {
      const agedOut = prev === undefined && anchor !== undefined && maxAgeMs > 0 && anchor.at < options.now - maxAgeMs + DAY_MS;
      if (!agedOut) set.problems.push({ seq: anchor?.seq ?? 0, anchor: from, problem: `${range(from, m.seq - 1)} missing: deleted from ${streamName}` });
    }
    prev = m.seq;
    if (!anchor) {
      set.problems.push({ seq: 0, anchor: m.seq, problem: "not an audit anchor" });
      continue;
    }
    if (anchor.stream !== auditStream) continue;
    const problem = signatureProblem(anchor, options.trusted);
    if (problem) {
      set.problems.push({ seq: anchor.seq, anchor: m.seq, problem });
      continue;
    }
    const entry = { ...anchor, anchor: m.seq };
    set.bySeq.set(anchor.seq, entry);
    if (!set.latest || anchor.seq >= set.latest.seq) set.latest = entry;
  }
  const last = info.state.last_seq;
  if ((prev ?? 0) < last) set.problems.push({ seq: 0, anchor: (prev ?? 0) + 1, problem: `${range((prev ?? 0) + 1, last)} missing: deleted from the end of ${streamName}` });
  return set;
}

function signatureProblem(anchor: AuditAnchor, trusted: TrustedSigners | undefined): string | undefined {
  if (trusted && !trusted.anchors.has(anchor.signer)) return `signed by ${anchor.signer}, which is not this fleet's governance identity: a forged anchor`;
  if (!signatureValid(anchor.signer, anchorSigningBytes(anchor), anchor.sig)) return "the anchor's signature does not match it: a forged or changed anchor";
  return undefined;
}

function range(from: number, to: number): string {
  return from === to ? `anchor ${from} is` : `anchors ${from}–${to} are`;
}
