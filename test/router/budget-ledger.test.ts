import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { dirname, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { z } from "zod";
import { connectNats, FleetError, type TierName } from "../../protocol/index.js";
import { BudgetLedger, BudgetRecord, type BudgetLedgerOptions, type Reservation } from "../../router/budget-ledger.js";
import { fleetDay } from "../../config/index.js";
import { NatsServer } from "../helpers/nats-server.js";

const at = (iso: string): number => Date.parse(iso);
const here = dirname(fileURLToPath(import.meta.url));
/** compiled path: dist/test/router → dist/test/fixtures */
const RESERVER = resolve(here, "..", "fixtures", "budget-reserver.js");

describe("BudgetLedger on a real KV bucket", () => {
  let server: NatsServer;
  const connections: NatsConnection[] = [];
  const children: ChildProcess[] = [];
  before(async () => {
    server = await NatsServer.start();
  });
  after(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    for (const nc of connections) await nc.close();
    await server.stop();
  });

  let buckets = 0;
  async function bucket(): Promise<{ kv: KV; name: string }> {
    const nc = await connectNats({ servers: server.url, name: "budget-ledger-test" });
    connections.push(nc);
    const name = `budgets-${++buckets}`;
    return { kv: await new Kvm(nc).create(name, { history: 1 }), name };
  }

  /** A ledger on a fresh bucket with a clock the test moves by hand. */
  async function setup(overrides: Partial<BudgetLedgerOptions> = {}, start = at("2026-06-15T10:00:00Z")) {
    const { kv } = await bucket();
    const clock = { now: start };
    let tokens = 0;
    const ledger = new BudgetLedger({
      kv, timeZone: "Europe/Berlin", fleetCapUsd: 100, agentCapsUsd: { atlas: 1, scout: 1 },
      downgradeAt: 0.8, nanoGrace: 0.1, reservationTtlMs: 600_000, clock: { now: () => clock.now }, newToken: () => `tok-${++tokens}`, ...overrides,
    });
    const record = async (key: string): Promise<BudgetRecord | undefined> => {
      const entry = await kv.get(key);
      return entry ? BudgetRecord.parse(entry.json()) : undefined;
    };
    let ids = 0;
    /** Spends `usd` for real: a nano reservation (admitted until the grace is spent) settled at its worst case. */
    const spend = async (agentId: string, usd: number): Promise<void> => {
      const reserved = await ledger.reserve(agentId, "nano", usd, `spend-${++ids}`);
      assert.equal(reserved.ok, true, `spending ${usd} for ${agentId} was refused`);
      if (reserved.ok) await ledger.settle(reserved.reservation, usd);
    };
    return { ledger, clock, record, spend };
  }

  const reservationOf = (result: Awaited<ReturnType<BudgetLedger["reserve"]>>): Reservation => {
    assert.ok(result.ok, `expected an admission, got ${JSON.stringify(result)}`);
    return result.reservation;
  };

  it("reserves on the agent's and the fleet's key and settles the actual cost on both", async () => {
    const { ledger, record } = await setup();
    const r = reservationOf(await ledger.reserve("atlas", "capable", 0.3, "call-1.1"));
    assert.deepEqual(r, { id: "call-1.1", agentId: "atlas", tier: "capable", usd: 0.3, day: "2026-06-15", expiresAt: at("2026-06-15T10:10:00Z"), token: "tok-1" });
    let view = await ledger.view("atlas");
    assert.deepEqual(view.agent, { spentUsd: 0, reservedUsd: 0.3, capUsd: 1, state: "normal" });
    assert.deepEqual(view.fleet, { spentUsd: 0, reservedUsd: 0.3, capUsd: 100, state: "normal" });
    await ledger.settle(r, 0.1);
    const other = reservationOf(await ledger.reserve("scout", "workhorse", 0.5, "call-2.1"));
    await ledger.settle(other, 0.2);
    view = await ledger.view("atlas");
    assert.deepEqual(view.agent, { spentUsd: 0.1, reservedUsd: 0, capUsd: 1, state: "normal" });
    const all = await ledger.views(["atlas", "scout"]);
    assert.equal(all.day, "2026-06-15");
    assert.deepEqual(all.fleet, { spentUsd: 0.3, reservedUsd: 0, capUsd: 100, state: "normal" }, "0.1 + 0.2 is booked as 0.3");
    assert.equal(all.agents.scout?.spentUsd, 0.2);
    const stored = await record("2026-06-15.fleet");
    assert.deepEqual(stored?.reservations, {});
    assert.deepEqual(Object.keys(stored ?? {}).sort(), ["day", "reservations", "spentUsd"], "no tombstones: records do not grow with calls");
  });

  it("admits any tier below the cap, only nano at it, and nothing past the nano grace", async () => {
    const { ledger, spend } = await setup();
    await spend("atlas", 0.79);
    assert.equal((await ledger.view("atlas")).state, "normal");
    reservationOf(await ledger.reserve("atlas", "power", 0, "a")); // 79 % committed: admitted

    await spend("atlas", 0.01);
    assert.equal((await ledger.view("atlas")).state, "downgraded", "exactly 80 %");
    // the ledger leaves the downgrade to the caller and keeps only the cap
    const big = reservationOf(await ledger.reserve("atlas", "capable", 0.15, "b"));
    await ledger.settle(big, 0.15);

    await spend("atlas", 0.05);
    assert.equal((await ledger.view("atlas")).state, "nanoOnly", "exactly 100 %");
    assert.deepEqual(await ledger.reserve("atlas", "workhorse", 0.01, "c"), { ok: false, state: "nanoOnly", exhausted: false, by: "agent" });
    await spend("atlas", 0.09); // nano still runs: 1.09 < 1.1
    await spend("atlas", 0.01);
    assert.deepEqual(await ledger.reserve("atlas", "nano", 0.001, "d"), { ok: false, state: "nanoOnly", exhausted: true, by: "agent" }, "1.10 ≥ cap × 1.1");
    const view = await ledger.view("atlas");
    assert.deepEqual(view.agent, { spentUsd: 1.1, reservedUsd: 0, capUsd: 1, state: "nanoOnly" });
    assert.equal(view.fleet.state, "normal");
  });

  it("judges admission before the new reservation: the last call below the cap may pass it by its own size", async () => {
    const { ledger, spend } = await setup();
    await spend("atlas", 0.9);
    const last = reservationOf(await ledger.reserve("atlas", "capable", 0.5, "last"));
    assert.deepEqual((await ledger.view("atlas")).agent, { spentUsd: 0.9, reservedUsd: 0.5, capUsd: 1, state: "nanoOnly" });
    assert.deepEqual(await ledger.reserve("atlas", "capable", 0.01, "next"), { ok: false, state: "nanoOnly", exhausted: true, by: "agent" });
    await ledger.release(last);
    assert.equal((await ledger.view("atlas")).state, "downgraded", "a released reservation no longer counts");
  });

  it("a refusal by the fleet takes back the agent's reservation, and the state is the stricter of the two", async () => {
    const { ledger, spend } = await setup({ fleetCapUsd: 1, agentCapsUsd: { atlas: 10, scout: 10 } });
    await spend("atlas", 1);
    assert.deepEqual(await ledger.reserve("scout", "capable", 0.2, "s-1"), { ok: false, state: "nanoOnly", exhausted: false, by: "fleet" }, "the fleet's cap refused it");
    const view = await ledger.view("scout");
    assert.deepEqual(view.agent, { spentUsd: 0, reservedUsd: 0, capUsd: 10, state: "normal" });
    assert.equal(view.state, "nanoOnly");
    // the undo leaves no tombstone: the same attempt may come back as nano
    reservationOf(await ledger.reserve("scout", "nano", 0.2, "s-1"));
    assert.equal((await ledger.view("scout")).agent.reservedUsd, 0.2);
  });

  it("books the reservation of a router that died at its worst case after its TTL, and corrects it if it settles late", async () => {
    const { ledger, clock, record } = await setup({ agentCapsUsd: { atlas: 10 }, reservationTtlMs: 1_000 });
    const orphan = reservationOf(await ledger.reserve("atlas", "power", 9, "orphan"));
    assert.equal((await ledger.view("atlas")).state, "downgraded");
    clock.now += 999;
    assert.equal((await ledger.view("atlas")).agent.reservedUsd, 9);
    clock.now += 1; // expiresAt <= now: expired, and its router may have paid before it died
    assert.deepEqual((await ledger.view("atlas")).agent, { spentUsd: 9, reservedUsd: 0, capUsd: 10, state: "downgraded" });
    reservationOf(await ledger.reserve("atlas", "power", 1, "fresh"));
    assert.deepEqual(Object.keys((await record("2026-06-15.atlas"))?.reservations ?? {}), ["fresh"], "the expired one is dropped on write");
    await ledger.settle(orphan, 8.5); // the money was spent even though the reservation had lapsed
    assert.deepEqual((await ledger.view("atlas")).agent, { spentUsd: 8.5, reservedUsd: 1, capUsd: 10, state: "downgraded" });
  });

  it("is idempotent per reservation id: a repeated reserve or settle counts once", async () => {
    const { ledger } = await setup();
    const first = reservationOf(await ledger.reserve("atlas", "capable", 0.3, "same"));
    const again = reservationOf(await ledger.reserve("atlas", "capable", 0.3, "same"));
    assert.deepEqual(again, first, "the retried reserve gets the live reservation back");
    let view = await ledger.view("atlas");
    assert.equal(view.agent.reservedUsd, 0.3);
    assert.equal(view.fleet.reservedUsd, 0.3);
    await ledger.settle(first, 0.25);
    await ledger.settle(again, 0.25);
    await ledger.release(first);
    view = await ledger.view("atlas");
    assert.deepEqual(view.agent, { spentUsd: 0.25, reservedUsd: 0, capUsd: 1, state: "normal" });
    assert.deepEqual(view.fleet, { spentUsd: 0.25, reservedUsd: 0, capUsd: 100, state: "normal" });
  });

  it("a settled id reserved again is a new call: it is booked, and a late duplicate settle of the old one is not", async () => {
    // the model router names attempts <callId>.<n> from 0 on every call, so a retried call reuses "call-9.0"
    const { ledger } = await setup();
    const old = reservationOf(await ledger.reserve("atlas", "premium", 0.3, "call-9.0"));
    await ledger.release(old); // the provider failed
    const retry = reservationOf(await ledger.reserve("atlas", "premium", 0.3, "call-9.0"));
    assert.notEqual(retry.token, old.token);
    assert.equal((await ledger.view("atlas")).agent.reservedUsd, 0.3);
    await ledger.settle(old, 0.3); // a duplicate of the old settle: neither booked nor taking the new reservation away
    assert.deepEqual((await ledger.view("atlas")).agent, { spentUsd: 0, reservedUsd: 0.3, capUsd: 1, state: "normal" });
    await ledger.settle(retry, 0.2);
    assert.deepEqual((await ledger.view("atlas")).fleet, { spentUsd: 0.2, reservedUsd: 0, capUsd: 100, state: "normal" });
  });

  it("starts a new day at local midnight; a call that ran over midnight is booked on the day it was reserved", async () => {
    // 23:59 on the spring-forward day in Berlin (CEST); midnight is 22:00Z
    const { ledger, clock, spend, record } = await setup({}, at("2026-03-29T21:59:00Z"));
    await spend("atlas", 1);
    assert.deepEqual(await ledger.reserve("atlas", "capable", 0.1, "refused"), { ok: false, state: "nanoOnly", exhausted: false, by: "agent" });
    const late = reservationOf(await ledger.reserve("atlas", "nano", 0.05, "late"));
    clock.now = at("2026-03-29T21:59:59.999Z");
    assert.equal((await ledger.views(["atlas"])).day, "2026-03-29");
    clock.now = at("2026-03-29T22:00:00Z");
    const today = await ledger.views(["atlas"]);
    assert.equal(today.day, "2026-03-30");
    assert.deepEqual(today.agents.atlas, { spentUsd: 0, reservedUsd: 0, capUsd: 1, state: "normal" });
    reservationOf(await ledger.reserve("atlas", "capable", 0.1, "morning"));
    await ledger.settle(late, 0.04);
    assert.equal((await record("2026-03-29.atlas"))?.spentUsd, 1.04);
    assert.equal((await ledger.view("atlas")).agent.spentUsd, 0, "yesterday's call does not count against today");
  });

  it("fails closed on an unreadable record, refuses an agent without a cap and an agent named fleet", async () => {
    const { kv } = await bucket();
    const ledger = new BudgetLedger({
      kv, timeZone: "UTC", fleetCapUsd: 10, agentCapsUsd: { atlas: 1 }, downgradeAt: 0.8, nanoGrace: 0.1, reservationTtlMs: 1_000,
      clock: { now: () => at("2026-06-15T10:00:00Z") },
    });
    await kv.put("2026-06-15.atlas", new TextEncoder().encode(JSON.stringify({ day: "2026-06-15", spentUsd: "lots" })));
    await assert.rejects(ledger.reserve("atlas", "nano", 0.1, "x"), (err) => err instanceof FleetError && err.code === "MESSAGE_INVALID");
    await assert.rejects(ledger.view("ghost"), (err) => err instanceof FleetError && /no daily cap/.test(err.message));
    assert.throws(() => new BudgetLedger({ kv, timeZone: "UTC", fleetCapUsd: 10, agentCapsUsd: { fleet: 1 }, downgradeAt: 0.8, nanoGrace: 0.1, reservationTtlMs: 1_000 }),
      (err) => err instanceof FleetError && err.code === "CONFIG_INVALID", "an agent named fleet would share the fleet's key");
  });

  const Summary = z.object({
    agentId: z.string(), calls: z.number(), spentUsd: z.number(), startedAt: z.number(), endedAt: z.number(),
    state: z.string(), exhausted: z.boolean(),
  });

  /** Starts one fixture process per agent id, lets them all go at once when every one is connected; returns their summaries. */
  async function race(name: string, agentIds: string[], caps: { fleet: number; agent: number }, tier: TierName = "capable", extra: string[] = [], worstCase = WORST_CASE) {
    const ready: Promise<void>[] = [];
    const racers: ChildProcess[] = [];
    const runs = agentIds.map((agentId, i) => {
      const child = spawn(process.execPath, [
        RESERVER, "--nats", server.url, "--bucket", name, "--agent", agentId, "--fleet-cap", String(caps.fleet),
        "--agent-cap", String(caps.agent), "--usd", String(worstCase), "--tier", tier, "--seed", String(i + 1), ...extra,
      ], { stdio: ["pipe", "pipe", "pipe"] });
      children.push(child);
      racers.push(child);
      let stdout = "";
      let stderr = "";
      let isReady = (): void => {};
      // a child that dies before it is ready also releases the barrier: its exit code fails the race below
      ready.push(new Promise<void>((resolve) => (isReady = resolve)));
      child.stdout!.on("data", (d: Buffer) => {
        stdout += d.toString();
        if (stdout.startsWith("ready\n")) isReady();
      });
      child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
      return new Promise<z.infer<typeof Summary>>((done, fail) => {
        child.once("exit", (code) => {
          isReady();
          if (code !== 0) fail(new Error(`reserver ${agentId} exited ${code}: ${stderr}`));
          else done(Summary.parse(JSON.parse(stdout.replace(/^ready\n/, ""))));
        });
      });
    });
    await Promise.all(ready);
    for (const child of racers) if (child.exitCode === null) child.stdin!.end("go\n");
    const summaries = await Promise.all(runs);
    // they really ran at the same time: every process started before any finished
    assert.ok(Math.max(...summaries.map((s) => s.startedAt)) < Math.min(...summaries.map((s) => s.endedAt)), "the processes overlapped");
    return summaries;
  }

  const WORST_CASE = 0.3;
  const sum = (xs: number[]): number => Math.round(xs.reduce((a, b) => a + b, 0) * 1e6) / 1e6;

  it("six router processes on one fleet cap never overshoot it by more than one reservation", async () => {
    const { kv, name } = await bucket();
    const agents = ["atlas", "atlas", "scout", "scout", "ship", "ship"];
    const summaries = await race(name, agents, { fleet: 10, agent: 100 });
    const day = fleetDay(summaries[0]!.startedAt, "UTC"); // the fixture's zone
    const fleet = BudgetRecord.parse((await kv.get(`${day}.fleet`))?.json());
    // A process stops when the fleet refuses it, i.e. when spent + the others' live reservations (at most 5 × 0.30) has
    // reached the cap; spend only grows after that.
    assert.ok(fleet.spentUsd >= 10 - (agents.length - 1) * WORST_CASE, `really spent: ${fleet.spentUsd}`);
    assert.ok(fleet.spentUsd <= 10 + WORST_CASE, `overshoot of at most one reservation: ${fleet.spentUsd}`);
    assert.deepEqual(fleet.reservations, {}, "no reservation left over");
    // no lost update: the key holds exactly what the processes say they settled, and the agents' keys add up to it
    assert.equal(fleet.spentUsd, sum(summaries.map((s) => s.spentUsd)));
    const perAgent = await Promise.all(["atlas", "scout", "ship"].map(async (a) => BudgetRecord.parse((await kv.get(`${day}.${a}`))?.json())));
    assert.equal(sum(perAgent.map((r) => r.spentUsd)), fleet.spentUsd);
    for (const r of perAgent) assert.deepEqual(r.reservations, {});
    for (const s of summaries) assert.deepEqual([s.state, s.exhausted], ["nanoOnly", false], "refused for a non-nano tier, not exhausted");
  });

  it("five router processes for one agent never overshoot its cap by more than one reservation", async () => {
    const { kv, name } = await bucket();
    const agents = ["atlas", "atlas", "atlas", "atlas", "atlas"];
    const summaries = await race(name, agents, { fleet: 100, agent: 3 });
    const day = fleetDay(summaries[0]!.startedAt, "UTC"); // the fixture's zone
    const agent = BudgetRecord.parse((await kv.get(`${day}.atlas`))?.json());
    const fleet = BudgetRecord.parse((await kv.get(`${day}.fleet`))?.json());
    assert.ok(agent.spentUsd >= 3 - (agents.length - 1) * WORST_CASE, `really spent: ${agent.spentUsd}`);
    assert.ok(agent.spentUsd <= 3 + WORST_CASE, `overshoot of at most one reservation: ${agent.spentUsd}`);
    assert.equal(agent.spentUsd, sum(summaries.map((s) => s.spentUsd)));
    assert.equal(fleet.spentUsd, agent.spentUsd);
    assert.deepEqual([agent.reservations, fleet.reservations], [{}, {}]);
  });

  it("six router processes reserving from allowances never overshoot the fleet's cap by more than one reservation, and give back what they hold", async () => {
    const { kv, name } = await bucket();
    const agents = ["atlas", "atlas", "scout", "scout", "ship", "ship"];
    // each allowance is a tenth of the $2 cap: twenty calls' worth at $0.01, so the processes reserve mostly in memory
    const worstCase = 0.01;
    const summaries = await race(name, agents, { fleet: 2, agent: 100 }, "capable", ["--allowance", "0.1"], worstCase);
    const day = fleetDay(summaries[0]!.startedAt, "UTC");
    const fleet = BudgetRecord.parse((await kv.get(`${day}.fleet`))?.json());
    assert.ok(fleet.spentUsd <= 2 + worstCase, `overshoot of at most one per-call reservation: ${fleet.spentUsd}`);
    assert.ok(fleet.spentUsd >= 1, `really spent: ${fleet.spentUsd}`);
    assert.deepEqual(fleet.reservations, {}, "every allowance given back, every call settled");
    assert.equal(fleet.spentUsd, sum(summaries.map((s) => s.spentUsd)), "no lost update: the key holds what the processes settled");
    const perAgent = await Promise.all(["atlas", "scout", "ship"].map(async (a) => BudgetRecord.parse((await kv.get(`${day}.${a}`))?.json())));
    assert.equal(sum(perAgent.map((r) => r.spentUsd)), fleet.spentUsd);
    for (const r of perAgent) assert.deepEqual(r.reservations, {});
    assert.ok(summaries.reduce((n, s) => n + s.calls, 0) >= 100, "the allowances served most calls");
  });
});
