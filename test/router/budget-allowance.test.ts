import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { connectNats } from "../../protocol/index.js";
import { BudgetLedger, BudgetRecord, type Reservation } from "../../router/budget-ledger.js";
import { NatsServer } from "../helpers/nats-server.js";
import { waitFor } from "../helpers/wait.js";

/** A busy router's allowance (router/budget-allowance.ts) through the ledger, on a real KV bucket. */
describe("budget allowance", () => {
  let server: NatsServer;
  let nc: NatsConnection;
  before(async () => {
    server = await NatsServer.start();
    nc = await connectNats({ servers: server.url, name: "budget-allowance-test" });
  });
  after(async () => {
    await nc.close();
    await server.stop();
  });

  let buckets = 0;
  async function setup(caps: { fleet: number; atlas: number }) {
    const kv = await new Kvm(nc).create(`allowance-${++buckets}`, { history: 1 });
    const now = Date.parse("2026-06-15T10:00:00Z");
    const ledger = new BudgetLedger({
      kv, timeZone: "UTC", fleetCapUsd: caps.fleet, agentCapsUsd: { atlas: caps.atlas }, downgradeAt: 0.8, nanoGrace: 0.1,
      reservationTtlMs: 600_000, clock: { now: () => now }, settleDelayMs: 5,
      allowance: { share: 0.1, busyPerSecond: 3, minCalls: 4 },
    });
    const record = async (owner: string) => BudgetRecord.parse((await kv.get(`2026-06-15.${owner}`))?.json());
    return { ledger, record };
  }

  const reserved = (r: Awaited<ReturnType<BudgetLedger["reserve"]>>): Reservation => {
    assert.ok(r.ok, JSON.stringify(r));
    return r.reservation;
  };

  it("reserves a busy agent's calls in memory from one KV reservation, books their costs, and gives back the rest", async () => {
    const { ledger, record } = await setup({ fleet: 100, atlas: 10 });
    // the first calls reserve on their own; the third makes atlas busy and asks for an allowance of 10 % of $10
    for (let i = 0; i < 3; i++) await ledger.settle(reserved(await ledger.reserve("atlas", "capable", 0.01, `warm-${i}`)), 0.01);
    await waitFor("the allowance to be granted", async () => Object.keys((await record("atlas")).reservations).length === 1);
    const entry = Object.values((await record("atlas")).reservations)[0];
    assert.equal(entry?.usd, 1, "one allowance of $1 on the agent's key");
    assert.equal(Object.values((await record("fleet")).reservations)[0]?.usd, 1, "and on the fleet's");

    const calls = await Promise.all(Array.from({ length: 10 }, async (_, i) => reserved(await ledger.reserve("atlas", "capable", 0.05, `call-${i}`))));
    assert.ok(calls.every((c) => c.allowance !== undefined), "drawn from the allowance");
    assert.equal(Object.keys((await record("atlas")).reservations).length, 1, "no reservation of their own in KV");
    // this router's own view counts its calls in flight, not the allowance's free part
    assert.deepEqual((await ledger.view("atlas")).agent, { spentUsd: 0.03, reservedUsd: 0.5, capUsd: 10, state: "normal" });

    await Promise.all(calls.map((c) => ledger.settle(c, 0.02)));
    const settled = await record("atlas");
    assert.equal(settled.spentUsd, 0.23, "ten calls at $0.02 moved from the allowance to the spend");
    assert.equal(Object.values(settled.reservations)[0]?.usd, 0.8, "the allowance shrank by what they cost");
    assert.deepEqual((await ledger.view("atlas")).agent, { spentUsd: 0.23, reservedUsd: 0, capUsd: 10, state: "normal" });

    await ledger.flush();
    for (const owner of ["atlas", "fleet"]) {
      const r = await record(owner);
      assert.deepEqual([r.spentUsd, r.reservations], [0.23, {}], `${owner}: the free part given back, the spend exact`);
    }
  });

  it("takes no allowance that would not fit under the cap whole: near the cap every call reserves on its own", async () => {
    const { ledger, record } = await setup({ fleet: 100, atlas: 1 });
    // $0.95 of $1 spent: an allowance of $0.10 does not fit
    await ledger.settle(reserved(await ledger.reserve("atlas", "nano", 0.95, "spent")), 0.95);
    for (let i = 0; i < 5; i++) {
      const r = reserved(await ledger.reserve("atlas", "capable", 0.01, `near-${i}`));
      assert.equal(r.allowance, undefined);
      await ledger.settle(r, 0.01);
    }
    await ledger.flush();
    assert.deepEqual((await record("atlas")).reservations, {});
    assert.equal((await record("atlas")).spentUsd, 1, "five calls fitted under the cap");
    assert.deepEqual(await ledger.reserve("atlas", "capable", 0.01, "past"), { ok: false, state: "nanoOnly", exhausted: false, by: "agent" });
  });

  it("stops drawing from an allowance the record no longer holds (rebuilt or purged) and asks for a new one", async () => {
    const { ledger, record } = await setup({ fleet: 100, atlas: 10 });
    for (let i = 0; i < 3; i++) await ledger.settle(reserved(await ledger.reserve("atlas", "capable", 0.01, `warm-${i}`)), 0.01);
    await waitFor("the allowance to be granted", async () => Object.keys((await record("atlas")).reservations).length === 1);
    const first = Object.keys((await record("atlas")).reservations)[0];
    const kv = await new Kvm(nc).open(`allowance-${buckets}`);
    await kv.purge("2026-06-15.atlas");
    // the next settle's write finds the allowance gone: its call is booked as spend, and the allowance is dropped
    await ledger.settle(reserved(await ledger.reserve("atlas", "capable", 0.01, "after-purge")), 0.01);
    await waitFor("a new allowance", async () => {
      const ids = Object.keys((await record("atlas")).reservations);
      if (ids.length === 0) await ledger.settle(reserved(await ledger.reserve("atlas", "capable", 0.01, `again-${Date.now()}`)), 0.01);
      return ids.length === 1 && ids[0] !== first;
    });
  });
});
