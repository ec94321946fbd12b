import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jetstream, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { SessionLog } from "../../memory/session-log.js";
import { connectNats, encode, ensureFleetResources, FleetError, FleetNames } from "../../protocol/index.js";
import { NatsServer } from "../helpers/nats-server.js";

/** Session logs on a real MEMLOG stream, in the fleet's time zone (Europe/Berlin), with an injected clock. */
describe("SessionLog", () => {
  const TZ = "Europe/Berlin";
  let server: NatsServer;
  let nc: NatsConnection;
  let jsm: JetStreamManager;

  before(async () => {
    server = await NatsServer.start();
    nc = await connectNats({ servers: server.url, name: "session-log-test", longLived: false });
  });
  after(async () => {
    await nc?.close();
    await server?.stop();
  });

  /** Each test its own prefix, so streams and counts never mix. */
  async function logAt(prefix: string, start: number): Promise<{ log: SessionLog; names: FleetNames; setNow: (t: number) => void }> {
    const names = new FleetNames(prefix);
    ({ jsm } = await ensureFleetResources(nc, names));
    let now = start;
    const log = new SessionLog({ js: jetstream(nc), jsm, names, timeZone: TZ, codec: "msgpack", clock: { now: () => now } });
    return { log, names, setNow: (t) => (now = t) };
  }

  async function subjectsOf(names: FleetNames): Promise<string[]> {
    const stream = names.stream("MEMLOG");
    const info = await jsm.streams.info(stream, { subjects_filter: ">" });
    return Object.keys(info.state.subjects ?? {}).sort();
  }

  it("files entries under the local day: 23:59 and 00:00 Berlin are different days, whatever UTC says", async () => {
    // 2025-01-14 23:59:59 CET is 22:59:59Z; a second later it is the 15th in Berlin and still the 14th in UTC
    const beforeMidnight = Date.parse("2025-01-14T22:59:59Z");
    const { log, names, setNow } = await logAt("slday", beforeMidnight);
    await log.append({ agentId: "scout", kind: "note", text: "late on the 14th" });
    setNow(beforeMidnight + 1_000);
    await log.append({ agentId: "scout", kind: "finding", text: "first thing on the 15th", taskId: "t-1" });

    assert.deepEqual(await subjectsOf(names), [names.memoryLog("scout", "20250114"), names.memoryLog("scout", "20250115")]);
    const the14th = await log.read("scout", "2025-01-14");
    assert.deepEqual(the14th.map((e) => [e.day, e.text]), [["2025-01-14", "late on the 14th"]]);
    const the15th = await log.read("scout", "2025-01-15");
    assert.equal(the15th.length, 1);
    assert.equal(the15th[0]?.taskId, "t-1");
    assert.equal(the15th[0]?.at, beforeMidnight + 1_000);
    assert.deepEqual(await log.read("scout", "2025-01-16"), []);
  });

  it("recent() is yesterday and today only, oldest first, across a 23-hour (spring-forward) day", async () => {
    // Berlin skips 02:00-03:00 on 2025-03-30; at 00:30 on the 31st, "now - 24 h" would be the 29th, yesterday is the 30th
    const at = (iso: string) => Date.parse(iso);
    const { log, setNow } = await logAt("slrecent", at("2025-03-29T12:00:00Z"));
    await log.append({ agentId: "mira", kind: "note", text: "two days ago", at: at("2025-03-29T12:00:00Z") });
    await log.append({ agentId: "mira", kind: "note", text: "yesterday late", at: at("2025-03-30T21:00:00Z") });
    await log.append({ agentId: "mira", kind: "note", text: "yesterday early", at: at("2025-03-29T23:30:00Z") });
    await log.append({ agentId: "mira", kind: "task", text: "today", at: at("2025-03-30T22:15:00Z") });
    await log.append({ agentId: "ship", kind: "note", text: "another agent today", at: at("2025-03-30T22:20:00Z") });
    setNow(at("2025-03-30T22:30:00Z")); // 00:30 CEST on the 31st

    const recent = await log.recent("mira");
    assert.deepEqual(recent.map((e) => e.text), ["yesterday early", "yesterday late", "today"]);
    assert.deepEqual([...new Set(recent.map((e) => e.day))], ["2025-03-30", "2025-03-31"]);
  });

  it("stores a retried append once (the message id is the content's hash)", async () => {
    const { log, names } = await logAt("sldup", Date.parse("2025-06-01T10:00:00Z"));
    const entry = { agentId: "atlas", kind: "decision" as const, text: "ship the fix tonight" };
    await log.append(entry);
    await log.append(entry);
    await log.append({ ...entry, text: "ship the fix tomorrow" });
    assert.deepEqual((await log.read("atlas", "2025-06-01")).map((e) => e.text), ["ship the fix tonight", "ship the fix tomorrow"]);
    assert.equal((await jsm.streams.info(names.stream("MEMLOG"))).state.messages, 2);
  });

  it("refuses an oversized entry with MEMORY_TOO_LARGE and a bad agent id with MESSAGE_INVALID, storing nothing", async () => {
    const { log, names } = await logAt("slbig", Date.parse("2025-06-01T10:00:00Z"));
    await assert.rejects(log.append({ agentId: "scout", kind: "note", text: "x".repeat(4001) }), (err: unknown) => {
      assert.ok(err instanceof FleetError);
      assert.equal(err.code, "MEMORY_TOO_LARGE");
      return true;
    });
    await assert.rejects(log.append({ agentId: "scout.*", kind: "note", text: "hi" }), { code: "MESSAGE_INVALID" });
    await assert.rejects(log.append({ agentId: "scout", kind: "note", text: "" }), { code: "MESSAGE_INVALID" });
    await assert.rejects(log.read("scout", "20250601"), { code: "MESSAGE_INVALID" });
    await log.append({ agentId: "scout", kind: "note", text: "x".repeat(4000) });
    assert.equal((await jsm.streams.info(names.stream("MEMLOG"))).state.messages, 1);
  });

  it("skips and counts malformed messages on the day's subject, and leaves no consumer behind", async () => {
    const { log, names } = await logAt("slbad", Date.parse("2025-06-02T08:00:00Z"));
    const js = jetstream(nc);
    await log.append({ agentId: "plume", kind: "note", text: "good one" });
    await js.publish(names.memoryLog("plume", "20250602"), new Uint8Array([0xc1, 0xc1]));
    await js.publish(names.memoryLog("plume", "20250602"), encode({ agentId: "plume", text: 42 }));
    // a valid entry of another agent published on plume's subject is not plume's
    await js.publish(names.memoryLog("plume", "20250602"), encode({ agentId: "ship", day: "2025-06-02", at: 1, kind: "note", text: "stray" }));
    await log.append({ agentId: "plume", kind: "note", text: "good two" });

    const read = await log.readDay("plume", "2025-06-02");
    assert.deepEqual(read.entries.map((e) => e.text), ["good one", "good two"]);
    assert.equal(read.malformed, 3);
    const consumers = await jsm.consumers.list(names.stream("MEMLOG")).next();
    assert.equal(consumers.length, 0, "the ordered consumer is deleted after reading");
    assert.equal((await jsm.streams.info(names.stream("MEMLOG"))).state.messages, 5, "reading deletes nothing");
  });
});
