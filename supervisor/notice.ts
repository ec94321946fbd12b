import type { JetStreamClient } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { Delivery } from "../config/index.js";
import { encode, wireHeaders, type CodecName, type FleetNames, type OutboxRecord } from "../protocol/index.js";

/**
 * A notice from the scheduler (the weekly report, an alert, the sweeper's list) goes out like every delivery: onto
 * OUTBOX for the channel's dispatcher, which defers it through a principal's quiet hours and never drops it. `msgId`
 * names the notice (a report's due time, an alert's condition and day): published twice, the server keeps it once.
 */
export async function publishNotice(
  js: JetStreamClient,
  names: FleetNames,
  codec: CodecName,
  delivery: Exclude<Delivery, "none">,
  notice: { text: string; jobId: string; msgId: string; at: number },
): Promise<void> {
  const record: OutboxRecord = { channel: delivery.channel, to: delivery.to, text: notice.text, source: { agentId: "scheduler", jobId: notice.jobId }, createdAt: notice.at };
  await js.publish(names.outbox(delivery.channel), encode(record, codec), { headers: wireHeaders(codec, notice.msgId) });
}

/**
 * Once per key, ever: the first caller creates the key in KV `schedules` and gets true; every later one (another tick,
 * a restarted scheduler) gets false. The OUTBOX duplicate window is minutes; an alert is once per day or window.
 */
export async function claimOnce(kv: KV, key: string, at: number): Promise<boolean> {
  try {
    await kv.create(key, new TextEncoder().encode(String(at)));
    return true;
  } catch (err) {
    if (err instanceof Error && /wrong last sequence|key exists/i.test(err.message)) return false;
    throw err;
  }
}
