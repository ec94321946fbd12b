import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { OutboxDispatcher, type ChannelSender } from "../../bridges/index.js";
import { encode, type OutboxRecord } from "../../protocol/index.js";
import { AlertWatcher, evaluateAlerts } from "../../supervisor/index.js";
import { FleetClient } from "../helpers/fleet-client.js";
import { NatsServer } from "../helpers/nats-server.js";
import { waitFor } from "../helpers/wait.js";
import { reportsConfig, usage } from "./report-fixture.js";

const log = pino({ level: "silent" });

describe("alerts", () => {
  let server: NatsServer;
  let client: FleetClient;
  const config = reportsConfig();
  before(async () => {
    server = await NatsServer.start();
    client = await FleetClient.connect(server.url);
  });
  after(async () => {
    await client.close();
    await server.stop();
  });

  it("a spend alert inside the principal's quiet hours is deferred to the window's end, delivered, and sent once", async () => {
    const sent: Array<{ record: OutboxRecord; at: number }> = [];
    const sender: ChannelSender = { channel: "telegram", async send(record) { sent.push({ record, at: Date.now() }); } };
    // the fleet's clock reads 06:59:57 in Berlin: the operator's quiet hours (22:00–07:00) end in 3 s of real time
    const windowEndsAt = Date.now() + 3_000;
    const offset = Date.parse("2026-11-23T06:00:00Z") - windowEndsAt;
    const clock = { now: () => Date.now() + offset };
    // scout has spent $1.10 of its $2 cap today (55 %): past the 50 % share
    for (const r of [usage({ costUsd: 0.6, at: clock.now() - 3_600_000 }), usage({ costUsd: 0.5, at: clock.now() - 60_000 })]) {
      await client.js.publish(client.names.usage(r.agentId, r.servedTier), encode(r, "msgpack"), { msgID: `${r.callId}.${r.attempt}` });
    }
    const dispatcher = new OutboxDispatcher({ js: client.js, jsm: client.resources.jsm, names: client.names, sender, principals: config.principals, timeZone: config.fleet.timeZone, clock, log });
    await dispatcher.start();
    const watcher = new AlertWatcher({ js: client.js, kv: client.resources.kv, names: client.names, codec: "msgpack", config, alerts: config.alerts!, clock, log });
    try {
      const first = await watcher.tick();
      assert.deepEqual(first.map((a) => a.key), ["alert.spend.scout.50.2026-11-23"]);
      assert.match(first[0]!.text, /agent scout has spent \$1\.10 of its \$2\.00 daily cap today \(55 %, past 50 %\)/);
      assert.deepEqual(await watcher.tick(), [], "the same condition, the same day: not again");
      await new Promise((r) => setTimeout(r, 1_000));
      assert.equal(sent.length, 0, "held while the recipient is quiet");
      const delivered = await waitFor("the deferred alert", () => sent[0], 15_000);
      assert.ok(delivered.at >= windowEndsAt - 50, "delivered at the end of the quiet hours, not before");
      assert.equal(delivered.record.to, "ops-chat");
      assert.match(delivered.record.text, /agent scout has spent/);
      assert.deepEqual(await watcher.tick(), [], "a restarted look does not send it again");
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(sent.length, 1, "delivered once");
    } finally {
      await dispatcher.stop();
      watcher.stop();
    }
  });

  it("rules: highest share only, breaker open, DLQ growth per window, premium waits, pools near their limit", () => {
    const now = Date.parse("2026-11-23T12:00:00Z");
    const alerts = evaluateAlerts(
      {
        now, day: "2026-11-23",
        spend: { fleet: 9.5, agents: { scout: 0.1 } },
        caps: { fleet: 10, agents: { scout: 2 } },
        breakers: [{ agentId: "scout", state: "open", openUntil: now + 60_000 }, { agentId: "atlas", state: "closed" }],
        newDeadLetters: 3,
        waiting: [{ callId: "c1", agentId: "atlas", since: now - 31 * 60_000 }, { callId: "c2", agentId: "atlas", since: now - 60_000 }],
        recentUsage: Array.from({ length: 9 }, (_, i) => usage({ at: now - 30_000 + i })),
        pools: [{ tier: "capable", deployments: ["cap-a", "cap-b"], rateLimit: { requestsPerMinute: 10 } }],
      },
      config.alerts!,
    );
    assert.deepEqual(alerts.map((a) => a.key), [
      "alert.spend.fleet.80.2026-11-23",
      `alert.breaker.scout.${now + 60_000}`,
      `alert.dlq.${Math.floor(now / 3_600_000)}`,
      "alert.premium.c1",
      `alert.rate.capable.${Math.floor(now / 3_600_000)}`,
    ]);
  });
});
