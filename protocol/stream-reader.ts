import { AckPolicy, DeliverPolicy, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { nanos, nuid, type MsgHdrs } from "@nats-io/nats-core";
import { HEADERS } from "./subjects.js";

const BATCH = 500;
const FETCH_EXPIRES_MS = 5_000;

export interface StoredMessage {
  seq: number;
  subject: string;
  data: Uint8Array;
  contentType: string | undefined;
}

/**
 * Every message of a stream (or of one subject of it) that is there now, in stream order, as stored. Read through an
 * ordered consumer (ephemeral, deleted when done), so reading leaves nothing on the server; the end is the stream's
 * last sequence when reading began (later appends belong to the next read), never an idle timeout. One subject as
 * `filter_subjects` becomes `filter_subject`, which servers before 2.10 understand.
 */
export async function* readStream(
  js: JetStreamClient,
  stream: string,
  options: { subject?: string | undefined; fromSeq?: number | undefined; fromTime?: number | undefined; signal?: AbortSignal | undefined } = {},
): AsyncGenerator<StoredMessage> {
  const lastSeq = (await (await js.streams.get(stream)).info()).state.last_seq;
  if (lastSeq === 0) return;
  const consumer = await js.consumers.get(stream, {
    ...(options.subject ? { filter_subjects: options.subject } : {}),
    ...(options.fromSeq && options.fromSeq > 1 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: options.fromSeq } : {}),
    ...(options.fromTime !== undefined ? { opt_start_time: new Date(Math.max(0, options.fromTime)).toISOString() } : {}),
  });
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
        if (seq > lastSeq) break;
        yield { seq: m.seq, subject: m.subject, data: m.data, contentType: m.headers?.get(HEADERS.contentType) || undefined };
        if (seq >= lastSeq) break;
      }
      // a short batch: messages were deleted or aged out while we read; ask the server what is left instead of waiting
      if (got < wanted && seq < lastSeq) pending = (await consumer.info()).num_pending;
    }
  } finally {
    await consumer.delete().catch(() => undefined);
  }
}

/**
 * Every message of one subject of a stream that is there now, without the stream's info, which an agent may not ask for
 * (info lists a shared stream's subjects). Read through an ephemeral pull consumer whose filter is in its create subject,
 * the form the broker's permissions can check, deleted when done; the end is what it had pending when it was made.
 */
export async function* readSubject(js: JetStreamClient, jsm: JetStreamManager, stream: string, subject: string): AsyncGenerator<StoredMessage> {
  const name = `read_${nuid.next()}`;
  const info = await jsm.consumers.add(stream, {
    name,
    filter_subject: subject,
    ack_policy: AckPolicy.None,
    deliver_policy: DeliverPolicy.All,
    // a reader that dies leaves nothing behind for long
    inactive_threshold: nanos(60_000),
    mem_storage: true,
    num_replicas: 1,
  });
  try {
    const consumer = js.consumers.getConsumerFromInfo(info);
    let left = info.num_pending;
    while (left > 0) {
      let got = 0;
      for await (const m of await consumer.fetch({ max_messages: Math.min(BATCH, left), expires: FETCH_EXPIRES_MS })) {
        got++;
        left = m.info.pending === 0 ? 0 : left - 1;
        yield { seq: m.seq, subject: m.subject, data: m.data, contentType: m.headers?.get(HEADERS.contentType) || undefined };
        if (left === 0) break;
      }
      // nothing came: the rest was deleted or aged out while we read
      if (got === 0) break;
    }
  } finally {
    await jsm.consumers.delete(stream, name).catch(() => undefined);
  }
}

/** What `readAfter` found: the messages, oldest first, and whether more were there than it took. */
export interface ReadAfter {
  messages: (StoredMessage & { timestampMs: number; headers: MsgHdrs | undefined })[];
  more: boolean;
}

/**
 * Up to `max` messages of one subject (a filter) of a stream after sequence `afterSeq`, or from `fromTime` when there is
 * no sequence yet: how a reader with a durable cursor of its own (Atlas's plan inputs, the event router) takes what is
 * new since it last looked. Like `readSubject`, it needs no stream info (its filter is in the create subject), and the
 * ephemeral consumer is deleted when done; the end is what the consumer had pending when it was made.
 */
export async function readAfter(
  js: JetStreamClient,
  jsm: JetStreamManager,
  stream: string,
  subject: string,
  options: { afterSeq?: number | undefined; fromTime?: number | undefined; max: number },
): Promise<ReadAfter> {
  const name = `read_${nuid.next()}`;
  const start =
    options.afterSeq !== undefined && options.afterSeq > 0
      ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: options.afterSeq + 1 }
      : options.fromTime !== undefined
        ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(Math.max(0, options.fromTime)).toISOString() }
        : { deliver_policy: DeliverPolicy.All };
  const info = await jsm.consumers.add(stream, {
    name,
    filter_subject: subject,
    ack_policy: AckPolicy.None,
    ...start,
    inactive_threshold: nanos(60_000),
    mem_storage: true,
    num_replicas: 1,
  });
  const messages: ReadAfter["messages"] = [];
  try {
    const consumer = js.consumers.getConsumerFromInfo(info);
    let left = Math.min(info.num_pending, options.max);
    while (left > 0) {
      let got = 0;
      for await (const m of await consumer.fetch({ max_messages: Math.min(BATCH, left), expires: FETCH_EXPIRES_MS })) {
        got++;
        left--;
        messages.push({
          seq: m.seq,
          subject: m.subject,
          data: m.data,
          contentType: m.headers?.get(HEADERS.contentType) || undefined,
          timestampMs: Math.floor(m.info.timestampNanos / 1_000_000),
          headers: m.headers,
        });
        if (m.info.pending === 0) left = 0;
        if (left === 0) break;
      }
      if (got === 0) break;
    }
  } finally {
    await jsm.consumers.delete(stream, name).catch(() => undefined);
  }
  return { messages, more: info.num_pending > messages.length };
}
