import type { JetStreamClient } from "@nats-io/jetstream";
import { encode, outboxMessageId, partsText, textOf, wireHeaders, type CodecName, type FleetNames, type OutboxRecord, type Task } from "../protocol/index.js";

export interface OutboxDeliveryDeps {
  js: JetStreamClient;
  names: FleetNames;
  codec: CodecName;
}

/**
 * Puts a scheduled run's report on OUTBOX for its channel's bridge. The message id is the hash of channel, recipient and
 * text, so the same text to the same recipient within the OUTBOX duplicate window is accepted once (channel dedup): a
 * scheduler that dies after delivering and runs the same due time again does not deliver twice, and a watch that finds
 * the same problem every few minutes says so once.
 */
export async function deliverToOutbox(deps: OutboxDeliveryDeps, delivery: { channel: string; to: string }, text: string, source: OutboxRecord["source"], now: number): Promise<void> {
  const contentId = outboxMessageId({ channel: delivery.channel, to: delivery.to, text });
  const record: OutboxRecord = { channel: delivery.channel, to: delivery.to, text, id: contentId, source, createdAt: now };
  await deps.js.publish(deps.names.outbox(delivery.channel), encode(record, deps.codec), { headers: wireHeaders(deps.codec, contentId) });
}

/** What a finished task says: its artifacts' text, else its status message, else its end state. */
export function taskText(task: Task): string {
  const artifacts = partsText((task.artifacts ?? []).flatMap((a) => a.parts));
  if (artifacts) return artifacts;
  return task.status.message ? textOf(task.status.message) : `task ${task.id} ended ${task.status.state}`;
}
