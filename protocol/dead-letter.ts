import type { JetStreamClient } from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/nats-core";
import type { FleetError } from "./errors.js";
import { secrets } from "./secret-scrubber.js";
import { HEADERS, type FleetNames } from "./subjects.js";

/**
 * Puts a message we could not use on the DLQ stream with the original bytes, its subject and why, so nothing is lost:
 * an operator can read it with `nats stream view FLEET_DLQ` and republish it once fixed.
 */
export async function deadLetter(
  js: JetStreamClient,
  names: FleetNames,
  source: string,
  original: { subject: string; data: Uint8Array; msgId?: string },
  reason: FleetError,
): Promise<void> {
  const h = natsHeaders();
  h.set(HEADERS.dlqSubject, original.subject);
  h.set(HEADERS.dlqCode, reason.code);
  // headers are one line: keep the reason readable and bounded
  h.set(HEADERS.dlqReason, secrets.scrub(reason.message).replace(/[\r\n]+/g, " ").slice(0, 1000));
  await js.publish(names.dlq(source), original.data, {
    headers: h,
    ...(original.msgId ? { msgID: `dlq-${original.msgId}` } : {}),
  });
}
