import { createHash } from "node:crypto";

/**
 * The OUTBOX message id of a message: the sha256 of its channel, recipient and text (and subject, for an email). It is
 * the `Nats-Msg-Id` of every OUTBOX publish, so the stream's 4 h duplicate window is the channel-dedup layer: the same
 * text to the same recipient on the same channel is stored once, whichever cron job, duty or proposal produced it.
 * Without a subject the hash is the one cron deliveries have always used, so records already in the window still match.
 */
export function outboxMessageId(message: { channel: string; to: string; text: string; subject?: string | undefined }): string {
  const hash = createHash("sha256").update(`${message.channel}\u0000${message.to}\u0000${message.text}`);
  if (message.subject !== undefined) hash.update(`\u0000${message.subject}`);
  return hash.digest("hex");
}
