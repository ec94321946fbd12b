import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { WakeWebhook } from "../../bridges/index.js";
import { jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { connectNats, decode, ensureFleetResources, FleetEvent, FleetNames, HEADERS } from "../../protocol/index.js";
import { NatsServer } from "../helpers/nats-server.js";
import { waitFor } from "../helpers/wait.js";

describe("wake webhook", () => {
  let server: NatsServer;
  let webhook: WakeWebhook;
  let port: number;
  const woken: Array<{ subject: string; body: string }> = [];
  let close: () => Promise<void>;
  const names = new FleetNames("fleet");

  before(async () => {
    server = await NatsServer.start();
    const nc = await connectNats({ servers: server.url, name: "webhook-test" });
    await ensureFleetResources(nc, names);
    nc.subscribe("fleet.wake.*", {
      callback: (_e, m) => {
        woken.push({ subject: m.subject, body: new TextDecoder().decode(m.data) });
      },
    });
    await nc.flush();
    webhook = new WakeWebhook({ nc, names, agents: ["scout", "ship"], token: "s3cret", port: 0, log: pino({ level: "silent" }), maxBodyBytes: 1024, js: jetstream(nc), codec: "msgpack", clock: { now: () => 1_700_000_000_000 } });
    port = await webhook.start();
    close = async () => {
      await webhook.stop();
      await nc.close();
    };
  });
  after(async () => {
    await close();
    await server.stop();
  });

  const post = (path: string, body: string, token = "s3cret") =>
    fetch(`http://127.0.0.1:${port}${path}`, { method: "POST", body, headers: { authorization: `Bearer ${token}` } });

  it("POST /wake/<agent> publishes the event on fleet.wake.<agent>", async () => {
    const res = await post("/wake/scout", '{"event":"new lead"}');
    assert.equal(res.status, 202);
    await waitFor("the wake-up on NATS", () => woken.find((w) => w.subject === "fleet.wake.scout"));
    assert.equal(woken.find((w) => w.subject === "fleet.wake.scout")?.body, '{"event":"new lead"}');
  });

  it("refuses a wrong token, an unknown agent, another path and an oversized body, waking nobody", async () => {
    const before = woken.length;
    assert.equal((await post("/wake/scout", "x", "wrong")).status, 401);
    assert.equal((await post("/wake/nobody", "x")).status, 404);
    assert.equal((await post("/sleep/scout", "x")).status, 404);
    assert.equal((await post("/wake/ship", "y".repeat(2048))).status, 413);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(woken.length, before);
  });
});

describe("event webhook", () => {
  let server: NatsServer;
  let webhook: WakeWebhook;
  let port: number;
  let jsm: JetStreamManager;
  let close: () => Promise<void>;
  const names = new FleetNames("evt");

  before(async () => {
    server = await NatsServer.start();
    const nc = await connectNats({ servers: server.url, name: "event-webhook-test" });
    await ensureFleetResources(nc, names);
    jsm = await jetstreamManager(nc);
    webhook = new WakeWebhook({ nc, names, agents: ["ship"], port: 0, log: pino({ level: "silent" }), js: jetstream(nc), codec: "msgpack", clock: { now: () => 1_700_000_000_000 } });
    port = await webhook.start();
    close = async () => {
      await webhook.stop();
      await nc.close();
    };
  });
  after(async () => {
    await close();
    await server.stop();
  });

  const post = (path: string, body: string) => fetch(`http://127.0.0.1:${port}${path}`, { method: "POST", body, headers: { "content-type": "application/json" } });
  const lastOf = async (stream: "EVENTS" | "DLQ") => {
    const info = await jsm.streams.info(names.stream(stream));
    return info.state.messages === 0 ? undefined : jsm.streams.getMessage(names.stream(stream), { seq: info.state.last_seq });
  };

  it("POST /event/<source> stores a validated FleetEvent on fleet.event.<source>: the sender's own fields kept as its body", async () => {
    const res = await post("/event/uptime-robot", JSON.stringify({ id: "ur-1", type: "down", subject: "shop.example.com", summary: "shop is down", monitorID: 42 }));
    assert.equal(res.status, 202);
    const answer = Object(await res.json());
    assert.equal(answer.event, "ur-1");
    const stored = await lastOf("EVENTS");
    assert.equal(stored?.subject, "evt.event.uptime-robot");
    const event = decode(FleetEvent, stored!.data);
    assert.ok(event.ok);
    assert.deepEqual(event.value, { id: "ur-1", source: "uptime-robot", type: "down", subject: "shop.example.com", summary: "shop is down", body: { monitorID: 42 }, at: 1_700_000_000_000 });
    // the same event again within the stream's duplicate window is stored once
    const again = Object(await (await post("/event/uptime-robot", JSON.stringify({ id: "ur-1", summary: "shop is down" }))).json());
    assert.equal(again.duplicate, true);
  });

  it("a body that is no event is refused with 400 and the typed error, and dead-lettered with its reason; nothing reaches EVENTS", async () => {
    const eventsBefore = (await jsm.streams.info(names.stream("EVENTS"))).state.messages;
    const cases: [string, string, string][] = [
      ["not json", "MESSAGE_MALFORMED", "(root)"],
      ["[1, 2]", "MESSAGE_MALFORMED", "(root)"],
      [JSON.stringify({ subject: 42 }), "MESSAGE_INVALID", "subject"],
      [JSON.stringify({ summary: "x".repeat(1001) }), "MESSAGE_INVALID", "summary"],
      [JSON.stringify({ source: "someone-else", summary: "spoofed" }), "MESSAGE_INVALID", "source"],
    ];
    for (const [body, code, path] of cases) {
      const res = await post("/event/monitor", body);
      assert.equal(res.status, 400, body);
      const error = Object(await res.json()).error;
      assert.equal(error.code, code, body);
      if (path !== "(root)") assert.equal(error.details?.[0]?.path, path, body);
      const dead = await lastOf("DLQ");
      assert.equal(dead?.subject, "evt.dlq.webhook");
      assert.equal(dead?.header.get(HEADERS.dlqCode), code);
      assert.equal(dead?.header.get(HEADERS.dlqSubject), "evt.event.monitor");
      assert.equal(new TextDecoder().decode(dead?.data), body, "the original bytes, to read and replay");
    }
    assert.equal((await jsm.streams.info(names.stream("EVENTS"))).state.messages, eventsBefore);
  });
});
