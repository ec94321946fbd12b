import assert from "node:assert/strict";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { headers, type NatsConnection } from "@nats-io/nats-core";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { pino } from "pino";
import { connectNats, ensureFleetResources, FleetError, FleetNames } from "../../protocol/index.js";
import { backupFleet, restoreFleet, type BackupManifest } from "../../supervisor/index.js";
import { NatsServer } from "../helpers/nats-server.js";

const log = pino({ level: "silent" });

interface Stored {
  subject: string;
  headers: Record<string, string[]>;
  data: string;
}

/** Every message of a stream as the server holds it; `Nats-Expected-*` preconditions are not part of the content. */
async function storedMessages(nc: NatsConnection, stream: string): Promise<Stored[]> {
  const info = await (await jetstreamManager(nc)).streams.info(stream);
  if (info.state.messages === 0) return [];
  const consumer = await jetstream(nc).consumers.get(stream);
  const out: Stored[] = [];
  for await (const m of await consumer.fetch({ max_messages: info.state.messages, expires: 5_000 })) {
    const h: Record<string, string[]> = {};
    for (const [k, v] of m.headers ?? []) if (!/^nats-expected-/i.test(k)) h[k] = v;
    out.push({ subject: m.subject, headers: h, data: Buffer.from(m.data).toString("hex") });
  }
  await consumer.delete();
  return out;
}

async function streamNames(nc: NatsConnection): Promise<string[]> {
  const list: string[] = [];
  for await (const name of (await jetstreamManager(nc)).streams.names()) list.push(name);
  return list;
}

async function withServer<T>(fn: (nc: NatsConnection, server: NatsServer) => Promise<T>): Promise<T> {
  const server = await NatsServer.start();
  const nc = await connectNats({ servers: server.url, name: "backup-test", longLived: false });
  try {
    return await fn(nc, server);
  } finally {
    await nc.close();
    await server.stop();
  }
}

/** A fleet with tasks in KV (one deleted, one purged) and messages with headers in TASKS and DLQ, backed up, then restored onto fresh servers. */
describe("fleet backup and restore", () => {
  const names = new FleetNames("bk");
  const work = mkdtempSync(join(tmpdir(), "fleet-backup-"));
  const dir = join(work, "backup");
  let manifest: BackupManifest;
  let original: Map<string, Stored[]>;
  const binary = new Uint8Array(256).map((_, i) => i);

  before(async () => {
    await withServer(async (nc) => {
      const { kv } = await ensureFleetResources(nc, names);
      const js = jetstream(nc);
      const t1 = await kv.tasks.create(names.taskKey("scout", "t1"), "submitted");
      await kv.tasks.update(names.taskKey("scout", "t1"), "working", t1);
      await kv.tasks.put(names.taskKey("scout", "t2"), binary);
      await kv.tasks.put(names.taskKey("ship", "t3"), "to be deleted");
      await kv.tasks.delete(names.taskKey("ship", "t3"));
      await kv.tasks.put(names.taskKey("ship", "t4"), "to be purged");
      await kv.tasks.purge(names.taskKey("ship", "t4"));
      await kv.agents.put("scout", JSON.stringify({ id: "scout" }));

      for (let i = 0; i < 300; i++) {
        const h = headers();
        h.set("Content-Type", "application/msgpack");
        h.set("traceparent", `00-${i.toString(16).padStart(32, "0")}-00f067aa0ba902b7-01`);
        await js.publish(names.task(i % 2 ? "scout" : "ship"), i === 0 ? binary : new TextEncoder().encode(`task ${i}`), { headers: h, msgID: `task-${i}` });
      }
      const dlq = headers();
      dlq.set("Fleet-Dlq-Reason", "payload does not match the schema");
      dlq.set("Fleet-Dlq-Code", "MESSAGE_INVALID");
      dlq.append("X-Seen-By", "router");
      dlq.append("X-Seen-By", "atlas");
      await js.publish(names.dlq("router"), new Uint8Array([0xc1, 0x00, 0xff]), { headers: dlq });
      await js.publish(`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${names.stream("TASKS")}.agent-ship`, JSON.stringify({ stream_seq: 7 }));
      await js.publish(names.dlq("empty"), new Uint8Array());

      manifest = await backupFleet(nc, names, dir, log, { now: () => Date.UTC(2030, 0, 1, 2) });
      original = new Map();
      for (const s of manifest.streams) original.set(s.name, await storedMessages(nc, s.name));
    });
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  it("writes one file per stream and bucket with a manifest; refuses a non-empty directory unless told to overwrite", async () => {
    assert.equal(manifest.createdAt, "2030-01-01T02:00:00.000Z");
    assert.equal(manifest.prefix, "bk");
    const byName = new Map(manifest.streams.map((s) => [s.name, s]));
    assert.deepEqual([...byName.keys()].sort(), [
      "BK_APPROVALS", "BK_AUDIT", "BK_AUDIT_ANCHORS", "BK_DLQ", "BK_EVENTS", "BK_FINDINGS", "BK_MEMLOG", "BK_OUTBOX", "BK_PROPOSALS", "BK_TASKS", "BK_USAGE",
      "KV_bk-agents", "KV_bk-budgets", "KV_bk-dedup", "KV_bk-deliveries", "KV_bk-held", "KV_bk-labels", "KV_bk-memory", "KV_bk-pipelineruns", "KV_bk-plans", "KV_bk-proposals", "KV_bk-schedules", "KV_bk-tasks", "KV_bk-toolruns", "KV_bk-toolstate",
    ], "every stream and bucket but leases");
    assert.equal(byName.get("BK_TASKS")?.messages, 300);
    assert.equal(byName.get("BK_DLQ")?.messages, 3);
    assert.equal(byName.get("KV_bk-tasks")?.messages, 6, "t1 twice, t2, t3 and its delete marker, t4's purge marker");
    assert.equal(byName.get("BK_TASKS")?.config.duplicate_window, 120_000_000_000);
    const lines = readFileSync(join(dir, "BK_TASKS.jsonl"), "utf8").trimEnd().split("\n");
    assert.equal(lines.length, 300);
    assert.equal(JSON.parse(lines[0]!).data, Buffer.from(binary).toString("base64"));

    await withServer(async (nc) => {
      await ensureFleetResources(nc, names);
      await assert.rejects(backupFleet(nc, names, dir, log), (err: unknown) => err instanceof FleetError && err.code === "CONFLICT");
      const again = join(work, "again");
      mkdirSync(again);
      writeFileSync(join(again, "stale.txt"), "x");
      const fresh = await backupFleet(nc, names, again, log, { overwrite: true });
      assert.equal(fresh.streams.reduce((n, s) => n + s.messages, 0), 0);
    });
  });

  it("restores onto a fresh server: keys, deleted keys, subjects, headers and payload bytes as they were", async () => {
    await withServer(async (nc) => {
      const report = await restoreFleet(nc, names, dir, log);
      assert.equal(report.streams, 25, "every stream and bucket but leases (KV held, labels, pipelineruns, plans, toolstate and deliveries included)");
      assert.equal(report.messages, 300 + 3 + 6 + 1);
      assert.equal(report.duplicates, 0);
      for (const s of manifest.streams) {
        assert.deepEqual(await storedMessages(nc, s.name), original.get(s.name), `${s.name} holds what was backed up`);
      }

      // the fleet starts on the restored state, and its buckets read as before
      const { kv } = await ensureFleetResources(nc, names);
      const keys: string[] = [];
      for await (const k of await kv.tasks.keys()) keys.push(k);
      assert.deepEqual(keys.sort(), ["scout.t1", "scout.t2"], "deleted and purged keys stay gone");
      assert.equal((await kv.tasks.get("scout.t1"))?.string(), "working");
      assert.deepEqual(new Uint8Array((await kv.tasks.get("scout.t2"))?.value ?? []), binary);
      assert.notEqual((await kv.tasks.get("ship.t3"))?.operation ?? "DEL", "PUT");
      const history = [];
      for await (const e of await kv.tasks.history({ key: "scout.t1" })) history.push(e.string());
      assert.deepEqual(history, ["submitted", "working"], "history is kept");
      assert.equal((await kv.agents.get("scout"))?.string(), JSON.stringify({ id: "scout" }));
      await kv.tasks.create("ship.t3", "a new task under a deleted key");
    });
  });

  it("a tampered file is refused, naming it, before anything is written", async () => {
    const tampered = join(work, "tampered");
    cpSync(dir, tampered, { recursive: true });
    const file = join(tampered, "KV_bk-tasks.jsonl");
    const lines = readFileSync(file, "utf8").split("\n");
    const first = JSON.parse(lines[0]!) as { data: string };
    lines[0] = JSON.stringify({ ...first, data: Buffer.from("cancelled").toString("base64") });
    writeFileSync(file, lines.join("\n"));

    await withServer(async (nc) => {
      await assert.rejects(restoreFleet(nc, names, tampered, log), (err: unknown) => {
        assert.ok(err instanceof FleetError);
        assert.equal(err.code, "MESSAGE_INVALID");
        assert.match(err.message, /KV_bk-tasks\.jsonl/);
        return true;
      });
      assert.deepEqual(await streamNames(nc), [], "the server was not touched");
    });
  });

  it("refuses to restore over streams that hold messages unless forced; forced, each is replaced, not doubled", async () => {
    await withServer(async (nc) => {
      await restoreFleet(nc, names, dir, log);
      await assert.rejects(restoreFleet(nc, names, dir, log), (err: unknown) => {
        assert.ok(err instanceof FleetError);
        assert.equal(err.code, "CONFLICT");
        assert.match(err.message, /BK_TASKS \(300 messages\)/);
        return true;
      });
      // the TASKS messages carry Nats-Msg-Ids inside the duplicate window: a purge would keep them and drop the restore
      const forced = await restoreFleet(nc, names, dir, log, { force: true });
      assert.equal(forced.messages, 310);
      assert.equal(forced.duplicates, 0);
      assert.ok(forced.perStream.find((s) => s.name === "BK_TASKS")?.replaced);
      const jsm = await jetstreamManager(nc);
      assert.equal((await jsm.streams.info("BK_TASKS")).state.messages, 300);
      assert.deepEqual(await storedMessages(nc, "KV_bk-tasks"), original.get("KV_bk-tasks"));
    });
  });
});
