import type { FleetError, Hold } from "../protocol/index.js";

/**
 * What became of one delivery of a task message, as a value: the chart's `report` effect returns it, so do the steps
 * before the chart (decoding the assignment, claiming the Task), and the consumer's claim timer. The consumer turns it
 * into exactly one thing done to the message (`decide`); nothing signals a retry by throwing.
 */
export type DeliveryOutcome =
  /** the Task is settled (completed, failed, canceled), now or by an earlier delivery: the message is done */
  | { kind: "done"; already?: boolean }
  /** the work could not be done now for a reason that passes (no router, NATS away, the host stopping): redeliver */
  | { kind: "retry"; delayMs: number; reason: string }
  /** the message can never be worked (undecodable, misaddressed, no Task): kept in the DLQ with its reason, never redelivered */
  | { kind: "dead-letter"; error: FleetError }
  /** the task is still in hand (long work, a breaker hold, waiting for the chart): keep the claim */
  | { kind: "working" }
  /**
   * the task's model work waits until `hold.until` (quiet hours, a spent cap): the assignment is kept in KV `held` and
   * sent again then, and this message is acked. A nak with that delay would count a delivery per hold (max_deliver
   * would dead-letter a task held a few nights) and wait on the server's clock rather than the fleet's.
   */
  | { kind: "held"; hold: Hold };

/** The one thing done to the message. */
export type MessageAction =
  | { op: "ack" }
  | { op: "nak"; delayMs: number }
  /** store the original bytes in the DLQ first; nats-server 2.9 has no term reason, the dead letter carries it */
  | { op: "term"; deadLetter: FleetError }
  | { op: "working" }
  /** record the hold (KV `held`) first, then ack; if it cannot be recorded, nak so the task comes back */
  | { op: "hold"; hold: Hold };

/** The one place that decides what a delivery's outcome does to its message. Pure: tested as a table. */
export function decide(outcome: DeliveryOutcome): MessageAction {
  switch (outcome.kind) {
    case "done":
      // a lost ack is harmless: the redelivery finds the Task terminal and is acked then, completing nothing twice
      return { op: "ack" };
    case "retry":
      // a nak without a delay comes back at once; a bad delay must not turn into that busy loop by accident
      return { op: "nak", delayMs: Number.isFinite(outcome.delayMs) ? Math.max(0, Math.round(outcome.delayMs)) : RETRY_DELAY_MS };
    case "dead-letter":
      return { op: "term", deadLetter: outcome.error };
    case "working":
      return { op: "working" };
    case "held":
      return { op: "hold", hold: outcome.hold };
  }
}

/** How soon a task whose work could not be done or reported comes back: soon, yet not a busy loop. */
export const RETRY_DELAY_MS = 1_000;
