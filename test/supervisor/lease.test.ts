import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Kvm, type KV } from "@nats-io/kv";
import { pino } from "pino";
import { connectNats } from "../../protocol/index.js";
import { Lease } from "../../supervisor/index.js";
import { NatsServer } from "../helpers/nats-server.js";
import { waitFor } from "../helpers/wait.js";

const log = pino({ level: "silent" });

/** Singleton leases on a real KV bucket whose max_age (2 s) is the lease TTL. */
describe("Lease", () => {
  let server: NatsServer;
  before(async () => {
    server = await NatsServer.start();
  });
  after(async () => {
    await server.stop();
  });

  async function bucket(name: string): Promise<{ kv: KV; close: () => Promise<void> }> {
    const nc = await connectNats({ servers: server.url, name });
    const kv = await new Kvm(nc).create(name, { history: 1, ttl: 2_000 });
    return { kv, close: () => nc.close() };
  }

  it("a second contender stands by while the holder renews, and takes over after the holder dies", async () => {
    const a = await bucket("leases-a");
    const b = await bucket("leases-a");
    const holder = new Lease({ kv: a.kv, role: "agent.atlas", holder: "host-a", renewMs: 400, log });
    await holder.acquire();
    const standby = new Lease({ kv: b.kv, role: "agent.atlas", holder: "host-b", renewMs: 400, log });
    let acquired = false;
    const taking = standby.acquire().then(() => (acquired = true));
    // Proof that more than the TTL has passed on the server with the holder still holding: its key, written by the server
    // more than the 2 s TTL after it was created, still names the holder (an expired key would have let the standby, which
    // tries every 400 ms, create it as host-b instead). The server's timestamps, not a wall-clock sleep, say the TTL passed.
    const created = await a.kv.get("agent.atlas");
    assert.ok(created);
    await waitFor("the holder's renewals to outlast the TTL", async () => {
      const entry = await b.kv.get("agent.atlas");
      return entry !== null && entry.string() === "host-a" && entry.created.getTime() - created.created.getTime() > 2_400;
    }, 10_000);
    assert.equal(acquired, false, "no second holder while the first renews");
    assert.equal(holder.isHeld, true);

    // the holder's process dies: its connection goes, nothing renews, the key expires
    await a.close();
    await waitFor("the standby to take over", () => acquired, 10_000);
    await taking;
    assert.equal(standby.isHeld, true);
    await holder.release();
    await standby.release();
    await b.close();
  });

  it("release hands over at once; a holder whose key was taken is told it lost the lease", async () => {
    const a = await bucket("leases-b");
    const b = await bucket("leases-b");
    const first = new Lease({ kv: a.kv, role: "agent.atlas", holder: "host-a", renewMs: 200, log });
    await first.acquire();
    const second = new Lease({ kv: b.kv, role: "agent.atlas", holder: "host-b", renewMs: 200, log });
    const started = Date.now();
    const taking = second.acquire();
    await first.release();
    await taking;
    assert.ok(Date.now() - started < 1_500, "a released lease is taken without waiting for the TTL");

    let lost = false;
    second.onLost(() => (lost = true));
    await a.kv.put("agent.atlas", new TextEncoder().encode("intruder"));
    await waitFor("the holder to notice it lost the lease", () => lost, 5_000);
    assert.equal(second.isHeld, false);
    await a.close();
    await b.close();
  });

  it("a holder whose key expired while the server was away takes it back on reconnect: no loss, no restart", async () => {
    const a = await bucket("leases-c");
    const holder = new Lease({ kv: a.kv, role: "scheduler", holder: "host-a", renewMs: 300, log });
    await holder.acquire();
    let lost = false;
    holder.onLost(() => (lost = true));
    const before = await a.kv.get("scheduler");
    assert.ok(before);
    // down for longer than the 2 s TTL: the restarted server expires the key, and the holder's next renewal finds it gone
    await server.kill();
    await sleep(2_500);
    await server.restart();
    const back = await waitFor("the holder to take its lease back", async () => {
      const entry = await a.kv.get("scheduler");
      return entry?.operation === "PUT" && entry.string() === "host-a" && entry.created.getTime() - before.created.getTime() > 2_000 ? entry : undefined;
    }, 15_000);
    assert.ok(back);
    assert.equal(lost, false, "not told it lost the lease");
    assert.equal(holder.isHeld, true);
    // it keeps renewing the key it took back
    await waitFor("a renewal after the take-back", async () => ((await a.kv.get("scheduler"))?.revision ?? 0) > back.revision, 5_000);
    await holder.release();
    await a.close();
  });

  it("a holder whose key was deleted takes it back; one whose key another process created meanwhile stands down", async () => {
    const a = await bucket("leases-d");
    const b = await bucket("leases-d");
    const holder = new Lease({ kv: a.kv, role: "governance", holder: "host-a", renewMs: 200, log });
    await holder.acquire();
    let lost = false;
    holder.onLost(() => (lost = true));
    await b.kv.delete("governance");
    await waitFor("the holder to take back its deleted key", async () => (await b.kv.get("governance"))?.string() === "host-a", 5_000);
    assert.equal(lost, false);
    // the key vanishes and another process writes it before the holder's renewal: that one holds it now
    await b.kv.delete("governance");
    await b.kv.put("governance", new TextEncoder().encode("host-b"));
    await waitFor("the holder to stand down", () => lost, 5_000);
    assert.equal(holder.isHeld, false);
    assert.equal((await b.kv.get("governance"))?.string(), "host-b");
    await a.close();
    await b.close();
  });
});
