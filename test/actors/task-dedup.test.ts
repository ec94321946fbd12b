import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Kvm, type KV } from "@nats-io/kv";
import { pino } from "pino";
import { DedupRecord, TaskDedup, type AdmitResult, type TaskDedupOptions } from "../../actors/task-dedup.js";
import { connectNats, decode, encode } from "../../protocol/index.js";
import { NatsServer } from "../helpers/nats-server.js";

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2025, 4, 1, 8, 0, 0);

/** The task and discovery dedup layers on a real KV bucket, on a simulated clock. */
describe("TaskDedup", () => {
  let server: NatsServer;
  const closers: (() => Promise<void>)[] = [];
  before(async () => {
    server = await NatsServer.start();
  });
  after(async () => {
    for (const close of closers) await close();
    await server.stop();
  });

  /** A connection of its own and the named bucket (created if missing); closed in the after-hook. */
  async function bucket(name: string): Promise<KV> {
    const nc = await connectNats({ servers: server.url, name: `dedup-test-${name}` });
    closers.push(() => nc.close());
    return new Kvm(nc).create(name, { history: 1 });
  }

  function clock(start = T0) {
    let t = start;
    return { now: () => t, set: (ms: number) => (t = ms) };
  }

  async function dedupOn(name: string, options: Partial<TaskDedupOptions> = {}) {
    const c = clock();
    const kv = await bucket(name);
    return { dedup: new TaskDedup({ kv, codec: "msgpack", now: c.now, ...options }), clock: c, kv };
  }

  function refused(result: AdmitResult): Extract<AdmitResult, { admitted: false }> {
    assert.equal(result.admitted, false, "expected a refusal");
    return result as Extract<AdmitResult, { admitted: false }>;
  }

  it("96 identical discoveries over a day become one task and 95 suppressed", async () => {
    const { dedup, clock } = await dedupOn("dedup-96");
    const title = "Competitor pricing changed on acme.example";
    const results: AdmitResult[] = [];
    for (let i = 0; i < 96; i++) {
      clock.set(T0 + i * 15 * MIN); // every quarter hour for 24 h, as the runaway cycle did
      results.push(await dedup.admit("scout", `t-${i}`, title, "discovery"));
    }
    assert.deepEqual(results[0], { admitted: true });
    const refusals = results.slice(1);
    assert.equal(refusals.filter((r) => r.admitted).length, 0);
    for (const r of refusals.map(refused)) {
      assert.equal(r.duplicateOf, "t-0");
      assert.equal(r.similarity, 1);
      assert.equal(r.layer, "task", "the 48 h created rule catches them before the completion rule is needed");
    }
    assert.match(refused(results[95]!).reason, /^task dedup: title 1\.00 similar \(threshold 0\.70\) to task t-0, created 23\.8 h ago \(window 48 h\)$/);
    assert.deepEqual(await dedup.counts("scout"), { entries: 1, suppressed: 95 });
  });

  it("task layer: a similar title is refused within 48 h and admitted after; completions do not count for tasks", async () => {
    const { dedup, clock } = await dedupOn("dedup-48h");
    assert.deepEqual(await dedup.admit("atlas", "t-a", "Draft the Q3 pricing proposal", "task"), { admitted: true });
    clock.set(T0 + HOUR);
    assert.equal(await dedup.completed("atlas", "t-a"), true);

    clock.set(T0 + 47 * HOUR);
    const r = refused(await dedup.admit("atlas", "t-b", "Draft the Q3 pricing proposals", "task"));
    assert.equal(r.layer, "task");
    assert.equal(r.duplicateOf, "t-a");
    assert.ok(r.similarity > 0.7 && r.similarity < 1);
    assert.match(r.reason, /^task dedup: title 0\.\d\d similar .* to task t-a, created 47 h ago/);

    clock.set(T0 + 49 * HOUR);
    const asDiscovery = refused(await dedup.admit("atlas", "t-c", "Draft the Q3 pricing proposals", "discovery"));
    assert.equal(asDiscovery.layer, "discovery", "completed 2 days ago: a finding would redo it");
    assert.deepEqual(await dedup.admit("atlas", "t-d", "Draft the Q3 pricing proposals", "task"), { admitted: true });
    assert.deepEqual(await dedup.counts("atlas"), { entries: 2, suppressed: 2 });
  });

  it("discovery layer: refused when a similar task completed 3 days ago, admitted when it completed 8 days ago", async () => {
    const { dedup, clock } = await dedupOn("dedup-7d");
    const done = T0 + 2 * HOUR;
    await dedup.admit("scout", "t-old", "Competitor X dropped its enterprise price", "discovery");
    clock.set(done);
    assert.equal(await dedup.completed("scout", "t-old"), true);
    clock.set(done + HOUR);
    assert.equal(await dedup.completed("scout", "t-old"), true, "a second completion keeps the first time");

    clock.set(done + 3 * DAY);
    const r = refused(await dedup.admit("scout", "t-3d", "competitor X dropped its enterprise price!", "discovery"));
    assert.equal(r.layer, "discovery");
    assert.equal(r.duplicateOf, "t-old");
    assert.match(r.reason, /^discovery dedup: title 1\.00 similar \(threshold 0\.70\) to task t-old, completed 3 d ago \(window 7 d\)$/);

    clock.set(done + 8 * DAY);
    assert.deepEqual(await dedup.admit("scout", "t-8d", "Competitor X dropped its enterprise price", "discovery"), { admitted: true });
    assert.deepEqual(await dedup.counts("scout"), { entries: 1, suppressed: 1 }, "t-old is pruned by the write");
  });

  it("dissimilar titles are all admitted, per agent", async () => {
    const { dedup } = await dedupOn("dedup-distinct");
    const titles = [
      "Check competitor pricing pages",
      "Deploy the marketing site",
      "Write the weekly investor update",
      "Rotate the staging database credentials",
      "Triage new support tickets",
      "Summarise yesterday's sales calls",
      "Fix the broken signup email",
      "Plan the Q3 hiring budget",
    ];
    for (const [i, title] of titles.entries()) assert.deepEqual(await dedup.admit("atlas", `t-${i}`, title, "task"), { admitted: true }, title);
    // the same titles for another agent: each agent has its own record
    for (const [i, title] of titles.entries()) assert.deepEqual(await dedup.admit("scout", `t-${i}`, title, "task"), { admitted: true }, title);
    assert.deepEqual(await dedup.counts("atlas"), { entries: titles.length, suppressed: 0 });
  });

  it("re-admitting a recorded task id (a retried submission) is admitted and not counted", async () => {
    const { dedup } = await dedupOn("dedup-retry");
    assert.deepEqual(await dedup.admit("ship", "t-1", "Deploy the site", "task"), { admitted: true });
    assert.deepEqual(await dedup.admit("ship", "t-1", "Deploy the site", "task"), { admitted: true });
    assert.deepEqual(await dedup.counts("ship"), { entries: 1, suppressed: 0 });
    assert.equal(await dedup.completed("ship", "t-unknown"), false);
  });

  it("10 concurrent admits of one title from two processes' connections admit exactly one", async () => {
    const c = clock();
    const a = new TaskDedup({ kv: await bucket("dedup-race"), codec: "msgpack", now: c.now });
    const b = new TaskDedup({ kv: await bucket("dedup-race"), codec: "msgpack", now: c.now });
    const title = "Investigate checkout errors from the payment provider";
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a : b).admit("scout", `t-${i}`, title, "discovery").then((r) => ({ id: `t-${i}`, r }))),
    );
    const winners = results.filter((x) => x.r.admitted);
    assert.equal(winners.length, 1, JSON.stringify(results));
    for (const x of results.filter((x) => !x.r.admitted)) assert.equal(refused(x.r).duplicateOf, winners[0]!.id);
    assert.deepEqual(await a.counts("scout"), { entries: 1, suppressed: 9 });
    assert.deepEqual(await b.counts("scout"), { entries: 1, suppressed: 9 });
  });

  it("a completion seen by another process than the admitting one still counts", async () => {
    const c = clock();
    const submitter = new TaskDedup({ kv: await bucket("dedup-two-hosts"), codec: "msgpack", now: c.now });
    const runtime = new TaskDedup({ kv: await bucket("dedup-two-hosts"), codec: "msgpack", now: c.now });
    await runtime.admit("scout", "t-0", "Triage new support tickets", "task"); // the runtime now holds a cached record
    await submitter.admit("scout", "t-1", "Check competitor pricing pages", "discovery");
    c.set(T0 + HOUR);
    assert.equal(await runtime.completed("scout", "t-1"), true, "a stale cache is re-read before answering 'not recorded'");
    c.set(T0 + 3 * DAY);
    assert.equal(refused(await submitter.admit("scout", "t-2", "check competitor pricing pages", "discovery")).layer, "discovery");
  });

  it("the list stays within maxEntries, the oldest dropped first", async () => {
    const { dedup, clock, kv } = await dedupOn("dedup-cap", { maxEntries: 5 });
    const topics = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima"];
    for (const [i, topic] of topics.entries()) {
      clock.set(T0 + i * MIN);
      assert.deepEqual(await dedup.admit("scout", `t-${topic}`, `${topic} ${topic}`, "task"), { admitted: true }, topic);
    }
    assert.deepEqual(await dedup.counts("scout"), { entries: 5, suppressed: 0 });
    const stored = decode(DedupRecord, (await kv.get("scout"))!.value);
    assert.ok(stored.ok);
    assert.deepEqual(stored.value.entries.map((e) => e.taskId), ["t-hotel", "t-india", "t-juliet", "t-kilo", "t-lima"]);
    // alpha was dropped from the list, so its title is new again; lima is still remembered
    assert.deepEqual(await dedup.admit("scout", "t-alpha-2", "alpha alpha", "task"), { admitted: true });
    assert.equal(refused(await dedup.admit("scout", "t-lima-2", "lima lima", "task")).duplicateOf, "t-lima");
  });

  it("a corrupt record is treated as empty and overwritten, with a warning, instead of failing admit", async () => {
    const { dedup, kv } = await dedupOn("dedup-corrupt");
    const warnings: string[] = [];
    const log = pino({ level: "warn" }, { write: (line: string) => void warnings.push(line) });
    const logged = new TaskDedup({ kv, codec: "msgpack", now: () => T0, log });

    // bytes that are not msgpack at all (0xc1 is never used), put there by hand
    await kv.put("scout", new Uint8Array([0xc1, 0xff, 0x00, 0x13, 0x37, 0xde, 0xad, 0xbe, 0xef]));
    assert.deepEqual(await logged.admit("scout", "t-1", "Check competitor pricing", "discovery"), { admitted: true });
    assert.deepEqual(await dedup.counts("scout"), { entries: 1, suppressed: 0 }, "the write replaced the bytes with a valid record");
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /dedup record unreadable; starting it afresh/);

    // valid msgpack of the wrong shape is treated the same way
    await kv.put("atlas", encode({ entries: "nope", suppressed: -1 }));
    assert.deepEqual(await dedup.admit("atlas", "t-2", "Check competitor pricing", "task"), { admitted: true });
    assert.equal(refused(await dedup.admit("atlas", "t-3", "Check competitor pricing", "task")).duplicateOf, "t-2");
  });

  it("rejects impossible settings at construction", async () => {
    const kv = await bucket("dedup-settings");
    assert.throws(() => new TaskDedup({ kv, codec: "msgpack", now: () => T0, threshold: 1.5 }), RangeError);
    assert.throws(() => new TaskDedup({ kv, codec: "msgpack", now: () => T0, createdWindowMs: 0 }), RangeError);
    assert.throws(() => new TaskDedup({ kv, codec: "msgpack", now: () => T0, maxEntries: 0 }), RangeError);
  });
});
