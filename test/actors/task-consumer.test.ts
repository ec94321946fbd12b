import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino } from "pino";
import { decide, RETRY_DELAY_MS, type DeliveryOutcome, type MessageAction } from "../../actors/delivery-outcome.js";
import { settleMessage, type StoreDeadLetter, type TaskMessage } from "../../actors/task-consumer.js";
import { FleetError } from "../../protocol/index.js";

const log = pino({ level: "silent" });
const notFound = new FleetError("TASK_NOT_FOUND", "task t-1 not found for agent scout");

describe("decide: a delivery's outcome → what is done to its message", () => {
  const table: Array<[string, DeliveryOutcome, MessageAction]> = [
    ["a settled task is acked", { kind: "done" }, { op: "ack" }],
    ["a redelivery of finished work is acked (nothing completed twice)", { kind: "done", already: true }, { op: "ack" }],
    ["a retry naks with its delay", { kind: "retry", delayMs: 2_500, reason: "router away" }, { op: "nak", delayMs: 2_500 }],
    ["a retry with no delay (the host stopping) naks at once", { kind: "retry", delayMs: 0, reason: "stopping" }, { op: "nak", delayMs: 0 }],
    ["a negative delay is no delay", { kind: "retry", delayMs: -5, reason: "clock skew" }, { op: "nak", delayMs: 0 }],
    ["a fractional delay is whole milliseconds", { kind: "retry", delayMs: 1.6, reason: "x" }, { op: "nak", delayMs: 2 }],
    ["a delay that is not a number is the default, not a busy loop", { kind: "retry", delayMs: Number.NaN, reason: "x" }, { op: "nak", delayMs: RETRY_DELAY_MS }],
    ["an infinite delay is the default too", { kind: "retry", delayMs: Number.POSITIVE_INFINITY, reason: "x" }, { op: "nak", delayMs: RETRY_DELAY_MS }],
    ["a dead letter is termed, carrying its reason to the DLQ", { kind: "dead-letter", error: notFound }, { op: "term", deadLetter: notFound }],
    ["work in hand keeps its claim", { kind: "working" }, { op: "working" }],
    [
      "held work is kept (KV held) and acked, never nak'd: a nak would spend a delivery per hold",
      { kind: "held", hold: { reason: "quiet-hours", until: 1_700_000_000_000, detail: "quiet hours until 06:30" } },
      { op: "hold", hold: { reason: "quiet-hours", until: 1_700_000_000_000, detail: "quiet hours until 06:30" } },
    ],
  ];
  for (const [name, outcome, action] of table) {
    it(name, () => assert.deepEqual(decide(outcome), action));
  }
});

/** A task message that records what was done to it, in order. */
function fakeMessage(): TaskMessage & { done: string[] } {
  const done: string[] = [];
  const msg = {
    done,
    data: new Uint8Array([1, 2, 3]),
    subject: "fleet.task.scout",
    seq: 7,
    headers: undefined,
    info: { stream: "FLEET_TASKS", deliveryCount: 1 },
    ack: () => void done.push("ack"),
    nak: (millis?: number) => void done.push(`nak ${millis}`),
    term: () => void done.push("term"),
    working: () => void done.push("working"),
  };
  // the fake has only what settleMessage reads of a JsMsg's info
  return msg as unknown as TaskMessage & { done: string[] };
}

describe("settleMessage: the one place a task message is acked, nak'd, termed or working-acked", () => {
  const never: StoreDeadLetter = async () => assert.fail("nothing to dead-letter");
  const hold = { reason: "agent-cap" as const, until: 1_700_000_000_000, detail: "the daily cap of scout is spent" };

  it("a held task is kept first and acked after; one that cannot be kept comes back (nak), never lost", async () => {
    const kept: unknown[] = [];
    const msg = fakeMessage();
    await settleMessage(msg, { kind: "held", hold }, { deadLetter: never, log, keep: async (h) => void kept.push(h) });
    assert.deepEqual([kept, msg.done], [[hold], ["ack"]]);
    const lost = fakeMessage();
    await settleMessage(lost, { kind: "held", hold }, { deadLetter: never, log, keep: async () => { throw new FleetError("NATS_UNAVAILABLE", "KV away"); } });
    assert.deepEqual(lost.done, [`nak ${RETRY_DELAY_MS}`]);
  });

  it("does exactly one thing for ack, nak and working", async () => {
    for (const [outcome, expected] of [
      [{ kind: "done" }, ["ack"]],
      [{ kind: "retry", delayMs: 1_000, reason: "router away" }, ["nak 1000"]],
      [{ kind: "working" }, ["working"]],
    ] as Array<[DeliveryOutcome, string[]]>) {
      const msg = fakeMessage();
      await settleMessage(msg, outcome, { deadLetter: never, log });
      assert.deepEqual(msg.done, expected);
    }
  });

  it("a dead letter stores the original bytes with the reason first, then terms the message", async () => {
    const msg = fakeMessage();
    const stored: Array<{ subject: string; data: Uint8Array; msgId: string; code: string }> = [];
    await settleMessage(msg, { kind: "dead-letter", error: notFound }, {
      deadLetter: async (original, error) => {
        assert.deepEqual(msg.done, [], "nothing done to the message before its dead letter is stored");
        stored.push({ ...original, code: error.code });
      },
      log,
    });
    assert.deepEqual(stored, [{ subject: "fleet.task.scout", data: msg.data, msgId: "FLEET_TASKS-7", code: "TASK_NOT_FOUND" }]);
    assert.deepEqual(msg.done, ["term"]);
  });

  it("a dead letter that cannot be stored is not dropped: the message is nak'd to come back", async () => {
    const msg = fakeMessage();
    await settleMessage(msg, { kind: "dead-letter", error: notFound }, {
      deadLetter: async () => {
        throw new Error("no responders");
      },
      log,
    });
    assert.deepEqual(msg.done, [`nak ${RETRY_DELAY_MS}`]);
  });
});
