import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { WakeWebhook } from "../../bridges/index.js";
import { connectNats, FleetNames } from "../../protocol/index.js";
import { NatsServer } from "../helpers/nats-server.js";
import { waitFor } from "../helpers/wait.js";

describe("wake webhook", () => {
  let server: NatsServer;
  let webhook: WakeWebhook;
  let port: number;
  const woken: Array<{ subject: string; body: string }> = [];
  let close: () => Promise<void>;

  before(async () => {
    server = await NatsServer.start();
    const nc = await connectNats({ servers: server.url, name: "webhook-test" });
    const names = new FleetNames("fleet");
    nc.subscribe("fleet.wake.*", {
      callback: (_e, m) => {
        woken.push({ subject: m.subject, body: new TextDecoder().decode(m.data) });
      },
    });
    await nc.flush();
    webhook = new WakeWebhook({ nc, names, agents: ["scout", "ship"], token: "s3cret", port: 0, log: pino({ level: "silent" }), maxBodyBytes: 1024 });
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
