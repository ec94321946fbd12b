import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { jetstream, jetstreamManager, type JetStreamClient } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino } from "pino";
import { AuditChain, recordHash, verifyAuditChain, type AuditEntry } from "../../governance/index.js";
import { connectNats, encode, ensureFleetResources, FleetNames, wireHeaders, type AuditRecord } from "../../protocol/index.js";
import { NatsServer } from "../helpers/nats-server.js";

/** The audit trail as one hash chain over the AUDIT stream, written by several hosts at once and checked end to end. */
describe("audit chain", () => {
  const log = pino({ level: "silent" });
  // recent: a first record older than the stream's max_age would count as aged out
  const T0 = Date.now();
  let server: NatsServer;
  let nc: NatsConnection;
  let js: JetStreamClient;

  before(async () => {
    server = await NatsServer.start();
    nc = await connectNats({ servers: server.url, name: "audit-chain-test", longLived: false });
    js = jetstream(nc);
  });
  after(async () => {
    await nc.close();
    await server.stop();
  });

  function entry(i: number, agentId = "scout"): AuditEntry {
    return { agentId, tool: "http_check", risk: "AUTO", input: { url: `http://localhost/${i}`, z: 1, a: [2, { y: 1, b: 2 }] }, output: { status: 200 }, ok: true, durationMs: i, costUsd: 0, mode: "run", at: T0 + i };
  }

  async function fleet(prefix: string): Promise<FleetNames> {
    const names = new FleetNames(prefix);
    await ensureFleetResources(nc, names);
    return names;
  }

  it("a record's hash ignores key order and covers everything but `hash`", () => {
    assert.equal(recordHash({ b: 1, a: { d: [1, undefined], c: "x" }, u: undefined }), recordHash({ a: { c: "x", d: [1, null] }, b: 1 }));
    // pinned: changing the canonical form would break every record already written
    assert.equal(recordHash({ b: 1, a: "x", prevHash: "" }), createHash("sha256").update('{"a":"x","b":1,"prevHash":""}').digest("hex"));
    const record = { a: 1, prevHash: "", hash: "anything" };
    assert.equal(recordHash(record), recordHash({ prevHash: "", a: 1 }));
    assert.notEqual(recordHash(record), recordHash({ a: 2, prevHash: "" }));
  });

  it("records appended concurrently by two chains form one intact chain", async () => {
    const names = await fleet("ac1");
    const first = new AuditChain({ js, names, codec: "msgpack", log });
    // a second host, on its own connection, with a small batch so the two interleave many times
    const nc2 = await connectNats({ servers: server.url, name: "audit-chain-test-2", longLived: false });
    const second = new AuditChain({ js: jetstream(nc2), names, codec: "msgpack", log, maxBatch: 7 });
    await Promise.all([first.start(), second.start()]);
    const appended = await Promise.all([
      ...Array.from({ length: 300 }, (_, i) => first.append(entry(i, i % 2 ? "scout" : "atlas"))),
      ...Array.from({ length: 300 }, (_, i) => second.append(entry(1000 + i, "ship"))),
    ]);
    await Promise.all([first.stop(), second.stop()]);
    await nc2.close();

    const seqs = appended.map((a) => a.seq).sort((x, y) => x - y);
    assert.deepEqual(seqs, Array.from({ length: 600 }, (_, i) => i + 1), "every record stored exactly once");
    const result = await verifyAuditChain(js, names, "msgpack");
    assert.deepEqual(result.problems, []);
    assert.equal(result.records, 600);

    // a chain started later continues from the stream's tip
    const later = new AuditChain({ js, names, codec: "json", log });
    await later.start();
    const next = await later.append(entry(5000));
    await later.stop();
    assert.equal(next.seq, 601);
    assert.deepEqual((await verifyAuditChain(js, names, "msgpack")).problems, [], "a JSON record links to msgpack ones");
  });

  it("detects a deleted record, in the middle and at the end", async () => {
    const names = await fleet("ac2");
    const chain = new AuditChain({ js, names, codec: "msgpack", log });
    await chain.start();
    for (let i = 0; i < 10; i++) await chain.append(entry(i));
    const jsm = await jetstreamManager(nc);
    await jsm.streams.deleteMessage(names.stream("AUDIT"), 4);
    let result = await verifyAuditChain(js, names, "msgpack");
    assert.equal(result.records, 9);
    assert.deepEqual(result.problems.map((p) => p.seq), [4]);
    assert.match(result.problems[0]?.problem ?? "", /record 4 is missing/);

    await jsm.streams.deleteMessage(names.stream("AUDIT"), 10);
    result = await verifyAuditChain(js, names, "msgpack");
    assert.deepEqual(result.problems.map((p) => p.seq), [4, 10]);
    assert.match(result.problems[1]?.problem ?? "", /end of the stream/);

    // the writer carries on from the last record that exists; the hole stays visible
    const fresh = new AuditChain({ js, names, codec: "msgpack", log });
    await fresh.start();
    assert.equal((await fresh.append(entry(11))).seq, 11);
    await fresh.stop();
    await chain.stop();
    result = await verifyAuditChain(js, names, "msgpack");
    assert.deepEqual(result.problems.map((p) => p.seq), [4, 10]);

    await jsm.streams.deleteMessage(names.stream("AUDIT"), 1);
    result = await verifyAuditChain(js, names, "msgpack");
    assert.ok(result.problems.some((p) => p.seq === 1 && /start/.test(p.problem)), "a deleted first record is not taken for an aged-out one");
    // a year on, the same start is what max_age leaves behind: accepted
    const yearOn = await verifyAuditChain(js, names, "msgpack", { now: T0 + 365 * 86_400_000 });
    assert.deepEqual(yearOn.problems.map((p) => p.seq), [4, 10]);
  });

  it("detects forged records published around the chain", async () => {
    const names = await fleet("ac3");
    const chain = new AuditChain({ js, names, codec: "msgpack", log });
    await chain.start();
    const appended: { seq: number; hash: string }[] = [];
    for (let i = 0; i < 3; i++) appended.push(await chain.append(entry(i)));
    const last = appended[2];
    assert.ok(last);

    // a record with a well-formed hash that links to the wrong predecessor
    const wrongLink = { ...entry(50), prevHash: "0".repeat(64) };
    const forged1: AuditRecord = { ...wrongLink, hash: recordHash(wrongLink) };
    await js.publish(names.audit("scout"), encode(forged1, "msgpack"), { headers: wireHeaders("msgpack") });
    // a record that links correctly but whose content no longer matches its hash
    const good = { ...entry(51), prevHash: forged1.hash };
    const forged2: AuditRecord = { ...good, hash: recordHash(good), ok: false };
    await js.publish(names.audit("scout"), encode(forged2, "msgpack"), { headers: wireHeaders("msgpack") });
    // the writer has not seen them: its next append loses the race, re-reads the tip and links after them
    const after = await chain.append(entry(52));
    await chain.stop();
    assert.equal(after.seq, 6);

    const result = await verifyAuditChain(js, names, "msgpack");
    assert.deepEqual(result.problems.map((p) => p.seq), [4, 5]);
    assert.match(result.problems[0]?.problem ?? "", /prevHash does not name record 3/);
    assert.match(result.problems[1]?.problem ?? "", /hash does not match/);
  });

  it("detects a changed record, a record on another agent's subject and bytes that are no record", async () => {
    const names = await fleet("ac4");
    const chain = new AuditChain({ js, names, codec: "msgpack", log });
    await chain.start();
    const first = await chain.append(entry(1));
    // an extra member zod would strip still changes the record
    const body = { ...entry(2), prevHash: first.hash };
    const sneaky = { ...body, hash: recordHash(body), note: "added later" };
    await js.publish(names.audit("scout"), encode(sneaky, "msgpack"), { headers: wireHeaders("msgpack") });
    const third = { ...entry(3, "atlas"), prevHash: sneaky.hash };
    await js.publish(names.audit("scout"), encode({ ...third, hash: recordHash(third) }, "msgpack"), { headers: wireHeaders("msgpack") });
    await js.publish(names.audit("scout"), new Uint8Array([0xc1, 0xff]), { headers: wireHeaders("msgpack") });
    await chain.append(entry(5));
    await chain.stop();
    const result = await verifyAuditChain(js, names, "msgpack");
    assert.deepEqual(
      result.problems.map((p) => [p.seq, p.problem.split(":")[0]]),
      [
        [2, "hash does not match the record's content"],
        [3, `published on ${names.audit("scout")} but names agent "atlas"`],
        [4, "not decodable"],
      ],
    );
    assert.equal(result.records, 5);
  });
});
