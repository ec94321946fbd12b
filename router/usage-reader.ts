import type { JetStreamClient, JsMsg } from "@nats-io/jetstream";
import { codecForContentType, decode, HEADERS, UsageRecord, type CodecName, type FleetNames } from "../protocol/index.js";

/*
 * Reads the USAGE records of a time range back from the stream. An ordered consumer (ephemeral, in memory, deleted when
 * done) leaves no state on the server, so `fleet costs` can run as often as an operator likes. The end is decided by the
 * server's counts, never by an idle timeout: we stop once the consumer has nothing pending or we have reached the last
 * sequence the stream had when we began (records published while we read belong to the next report).
 */

const BATCH = 500;
const FETCH_EXPIRES_MS = 5_000;
/**
 * A record's `at` is the router's clock and the consumer starts by the server's clock; starting this much earlier keeps a
 * record whose router clock ran ahead. Records are then kept by their own `at`.
 */
const CLOCK_SKEW_MS = 60_000;

export interface UsageRead {
  /** records with since <= at < until, in stream order */
  records: UsageRecord[];
  /** messages that did not decode as a UsageRecord: skipped, counted */
  malformed: number;
}

export interface ReadUsageOptions {
  signal?: AbortSignal;
}

/**
 * The USAGE records with `since <= at < until` (until: open-ended when omitted). Publishers set no Content-Type on
 * USAGE, so a message without one is tried as msgpack and then as JSON; the reader does not need the fleet's config.
 */
export async function readUsage(js: JetStreamClient, names: FleetNames, since: number, until?: number, options: ReadUsageOptions = {}): Promise<UsageRead> {
  const stream = names.stream("USAGE");
  const lastSeq = (await (await js.streams.get(stream)).info()).state.last_seq;
  const out: UsageRead = { records: [], malformed: 0 };
  const consumer = await js.consumers.get(stream, { opt_start_time: new Date(Math.max(0, since - CLOCK_SKEW_MS)).toISOString() });
  try {
    let pending = (await consumer.info(true)).num_pending;
    let seq = 0;
    while (pending > 0 && seq < lastSeq) {
      options.signal?.throwIfAborted();
      const wanted = Math.min(BATCH, pending);
      let got = 0;
      for await (const m of await consumer.fetch({ max_messages: wanted, expires: FETCH_EXPIRES_MS })) {
        got++;
        seq = m.seq;
        pending = m.info.pending;
        const record = decodeUsage(m);
        if (!record) out.malformed++;
        else if (record.at >= since && (until === undefined || record.at < until)) out.records.push(record);
        if (seq >= lastSeq) break;
      }
      // a short batch: messages expired or were deleted while we read; ask the server what is left instead of waiting
      if (got < wanted && seq < lastSeq) pending = (await consumer.info()).num_pending;
    }
  } finally {
    await consumer.delete().catch(() => undefined);
  }
  return out;
}

function decodeUsage(m: JsMsg): UsageRecord | undefined {
  const header = m.headers?.get(HEADERS.contentType) || undefined;
  const named = codecForContentType(header, "msgpack");
  if (header && !named) return undefined;
  const codecs: CodecName[] = header && named ? [named] : ["msgpack", "json"];
  for (const codec of codecs) {
    const decoded = decode(UsageRecord, m.data, { codec });
    if (decoded.ok) return decoded.value;
  }
  return undefined;
}
