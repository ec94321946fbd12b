import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jetstream } from "@nats-io/jetstream";
import { pino } from "pino";
import { OutboxDispatcher, type ChannelSender } from "../../bridges/index.js";
import { connectNats, encode, ensureFleetResources, FleetNames, wireHeaders, type FleetResources, type OutboxRecord } from "../../protocol/index.js";
import { NatsServer } from "../helpers/nats-server.js";
import { waitFor } from "../helpers/wait.js";

const log = pino({ level: "silent" });

/** A fake of our own ChannelSender interface that records what it was given, and fails when told to. */
function recordingSender(channel: string): ChannelSender & { sent: Array<{ record: OutboxRecord; at: number }>; failNext: number } {
  const sender = {
    channel,
    sent: [] as Array<{ record: OutboxRecord; at: number }>,
    failNext: 0,
    async send(record: OutboxRecord) {
      if (sender.failNext > 0) {
        sender.failNext--;
        throw new Error("chat API answered 502");
      }
      sender.sent.push({ record, at: Date.now() });
    },
  };
  return sender;
}

describe("OutboxDispatcher", () => {
  let server: NatsServer;
  let resources: FleetResources;
  let close: () => Promise<void>;
  const names = new FleetNames("fleet");
  let publish: (record: OutboxRecord) => Promise<void>;
  let js: ReturnType<typeof jetstream>;
  before(async () => {
    server = await NatsServer.start();
    const nc = await connectNats({ servers: server.url, name: "outbox-test" });
    resources = await ensureFleetResources(nc, names);
    js = jetstream(nc);
    publish = async (record) => void (await js.publish(names.outbox(record.channel), encode(record), { headers: wireHeaders("msgpack", `${record.to}-${record.text}`) }));
    close = () => nc.close();
  });
  after(async () => {
    await close();
    await server.stop();
  });

  function dispatcher(sender: ChannelSender, clock: { now(): number }) {
    return new OutboxDispatcher({
      js,
      jsm: resources.jsm,
      names,
      sender,
      principals: [{ id: "operator", channel: sender.channel, to: "op", timeZone: "UTC", quietHours: { start: "23:30", end: "06:30" } }],
      timeZone: "UTC",
      clock,
      log,
      maxAttempts: 3,
    });
  }

  it("delivers at once outside the recipient's quiet hours, and defers to the window's end inside them", async () => {
    const sender = recordingSender("telegram");
    // the fleet's clock reads 06:29:57 UTC: the recipient's quiet hours end in 3 s of real time
    const windowEndsAt = Date.now() + 3_000;
    const offset = Date.parse("2026-11-23T06:30:00Z") - windowEndsAt;
    const d = dispatcher(sender, { now: () => Date.now() + offset });
    await d.start();
    try {
      await publish({ channel: "telegram", to: "op", text: "nightly report", source: { agentId: "atlas" }, createdAt: 0 });
      await publish({ channel: "telegram", to: "someone-else", text: "no quiet hours here", source: { agentId: "atlas" }, createdAt: 0 });
      await waitFor("the undeferred delivery", () => sender.sent.some((s) => s.record.to === "someone-else"));
      assert.ok(!sender.sent.some((s) => s.record.to === "op"), "not inside the recipient's quiet hours");
      const deferred = await waitFor("the deferred delivery", () => sender.sent.find((s) => s.record.to === "op"), 15_000);
      assert.ok(deferred.at >= windowEndsAt - 50, "delivered at the end of the window, not before");
      assert.equal(deferred.record.text, "nightly report", "deferred, never dropped");
    } finally {
      await d.stop();
    }
  });

  it("retries a failing send and dead-letters it after the last attempt, acking only delivered messages", async () => {
    const sender = recordingSender("discord");
    sender.failNext = 1;
    const d = dispatcher(sender, { now: () => Date.parse("2026-11-23T12:00:00Z") });
    await d.start();
    try {
      await publish({ channel: "discord", to: "team", text: "flaky once", source: { agentId: "mira" }, createdAt: 0 });
      await waitFor("delivery after one failure", () => sender.sent.some((s) => s.record.text === "flaky once"), 15_000);

      sender.failNext = 100;
      await publish({ channel: "discord", to: "team", text: "never works", source: { agentId: "mira" }, createdAt: 0 });
      await waitFor(
        "the dead letter",
        async () => {
          const info = await resources.jsm.streams.info(names.stream("DLQ"), { subjects_filter: names.dlq("outbox") });
          return (info.state.subjects?.[names.dlq("outbox")] ?? 0) > 0;
        },
        30_000,
      );
      // the dispatcher stores the dead letter first and acks after it, so the ack may reach the server a moment later
      const consumer = await waitFor("the dead-lettered message to be acked", async () => {
        const info = await resources.jsm.consumers.info(names.stream("OUTBOX"), "outbox-discord");
        return info.num_ack_pending === 0 ? info : undefined;
      });
      assert.equal(consumer.num_ack_pending, 0);
      assert.equal(consumer.num_pending, 0);
    } finally {
      await d.stop();
    }
  });
});
