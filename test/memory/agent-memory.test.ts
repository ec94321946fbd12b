import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { AgentMemory, fromMarkdown, toMarkdown } from "../../memory/agent-memory.js";
import { connectNats, ensureFleetResources, FleetError, FleetNames } from "../../protocol/index.js";
import { NatsServer } from "../helpers/nats-server.js";

const lines = (n: number, tag = "fact") => Array.from({ length: n }, (_, i) => `${tag} ${i + 1}`);

function isCode(code: FleetError["code"]) {
  return (err: unknown) => {
    assert.ok(err instanceof FleetError, `a FleetError, got ${String(err)}`);
    assert.equal(err.code, code);
    return true;
  };
}

/** MEMORY.md in the fleet's real `memory` bucket (history 10), with the reference cap of 100 lines. */
describe("AgentMemory", () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let kv: KV;
  let memory: AgentMemory;
  const now = 1_750_000_000_000;

  before(async () => {
    server = await NatsServer.start();
    nc = await connectNats({ servers: server.url, name: "agent-memory-test", longLived: false });
    kv = (await ensureFleetResources(nc, new FleetNames("agentmem"))).kv.memory;
    memory = new AgentMemory({ kv, maxLines: 100, clock: { now: () => now } });
  });
  after(async () => {
    await nc?.close();
    await server?.stop();
  });

  it("reads an absent MEMORY.md as no lines at revision 0", async () => {
    assert.deepEqual(await memory.read("nobody"), { lines: [], revision: 0, replaced: [] });
  });

  it("writes 100 lines and refuses 101, leaving the stored lines as they were", async () => {
    const revision = await memory.write("scout", lines(100), 0);
    assert.ok(revision > 0);
    await assert.rejects(memory.write("scout", lines(101, "new"), revision), isCode("MEMORY_TOO_LARGE"));
    const after = await memory.read("scout");
    assert.deepEqual(after.lines, lines(100));
    assert.equal(after.revision, revision, "nothing was written");
    // a fresh agent's first write is held to the cap too, and creates nothing
    await assert.rejects(memory.write("fresh", lines(101), 0), isCode("MEMORY_TOO_LARGE"));
    assert.equal((await kv.get("fresh")), null);
  });

  it("append fills up to the cap and then refuses with MEMORY_TOO_LARGE", async () => {
    await memory.write("mira", lines(98), 0);
    await memory.append("mira", "line ninety-nine");
    const full = await memory.append("mira", "line one hundred");
    assert.equal((await memory.read("mira")).lines.length, 100);
    await assert.rejects(memory.append("mira", "one too many"), isCode("MEMORY_TOO_LARGE"));
    const after = await memory.read("mira");
    assert.equal(after.revision, full, "nothing was written");
    assert.equal(after.lines.at(-1), "line one hundred");
    // appending a line already there is a no-op, so a retried append does not duplicate it (even when full)
    assert.equal(await memory.append("mira", "line one hundred"), full);
  });

  it("refuses over-long, blank and multi-line lines and writes nothing", async () => {
    await assert.rejects(memory.write("plume", ["ok", "x".repeat(501)], 0), isCode("MEMORY_TOO_LARGE"));
    await assert.rejects(memory.write("plume", ["ok", "   "], 0), isCode("MESSAGE_INVALID"));
    await assert.rejects(memory.write("plume", ["two\nlines"], 0), isCode("MESSAGE_INVALID"));
    await assert.rejects(memory.append("plume", ""), isCode("MESSAGE_INVALID"));
    await assert.rejects(memory.write("plume.x", ["ok"], 0), isCode("MESSAGE_INVALID"));
    assert.deepEqual(await memory.list().then((ids) => ids.filter((id) => id.startsWith("plume"))), []);
    await memory.write("plume", ["x".repeat(500)], 0);
  });

  it("is compare-and-set: a stale revision and a second create are CONFLICT; append retries past a race", async () => {
    const first = await memory.write("atlas", ["a"], 0);
    await assert.rejects(memory.write("atlas", ["b"], 0), isCode("CONFLICT"));
    const second = await memory.write("atlas", ["a", "b"], first);
    await assert.rejects(memory.write("atlas", ["stale"], first), isCode("CONFLICT"));
    assert.deepEqual((await memory.read("atlas")).lines, ["a", "b"]);

    // another writer lands between append's read and its write: the first CAS fails, the retry keeps both lines
    let raced = false;
    const racing = new AgentMemory({
      kv: new Proxy(kv, {
        get(target, prop, receiver) {
          if (prop !== "update") return Reflect.get(target, prop, receiver);
          return async (key: string, value: Uint8Array, version: number) => {
            if (!raced) {
              raced = true;
              await memory.write("atlas", ["a", "b", "from the distiller"], second);
            }
            return target.update(key, value, version);
          };
        },
      }),
      maxLines: 100,
    });
    await racing.append("atlas", "from the agent");
    assert.deepEqual((await memory.read("atlas")).lines, ["a", "b", "from the distiller", "from the agent"]);
  });

  it("keeps the latest 50 replacements across writes", async () => {
    let revision = 0;
    for (let i = 0; i < 6; i++) {
      const replaced = Array.from({ length: 10 }, (_, j) => ({ old: `old ${i}.${j}`, new: `new ${i}.${j}`, at: now + i }));
      revision = await memory.write("sentinel", [`line ${i}`], revision, replaced);
    }
    const { replaced } = await memory.read("sentinel");
    assert.equal(replaced.length, 50);
    assert.equal(replaced[0]?.old, "old 1.0");
    assert.equal(replaced.at(-1)?.old, "old 5.9");
  });

  it("renders markdown that reads back to the same lines", () => {
    const original = ["Deploys to the shop wait for 22:00 Berlin time.", "- a line that starts with a dash", "`code` and **bold** stay as typed"];
    const md = toMarkdown("ship", original);
    assert.match(md, /^# MEMORY — ship\n\n- Deploys/);
    assert.deepEqual(fromMarkdown(md), { agentId: "ship", lines: original });
    assert.deepEqual(fromMarkdown(`${toMarkdown("ship", [])}\n<!-- 0/100 lines -->\n`), { agentId: "ship", lines: [] });
    assert.throws(() => fromMarkdown("# MEMORY — ship\n\nsome prose\n"), isCode("MESSAGE_INVALID"));
  });

  it("list() names only agents with a MEMORY.md, ignoring the distiller's and other keys, and deleted ones", async () => {
    const names = new FleetNames("agentmemlist");
    const bucket = (await ensureFleetResources(nc, names)).kv.memory;
    const store = new AgentMemory({ kv: bucket, maxLines: 100, codec: "json" });
    await store.write("scout", ["s"], 0);
    await store.write("closer", ["c"], 0);
    const gone = await store.write("ghost", ["g"], 0);
    await bucket.delete("ghost", { previousSeq: gone });
    await bucket.put("distilled.scout.2025-06-01", new TextEncoder().encode("{}"));
    await bucket.put("distilled.closer.2025-06-01", new TextEncoder().encode("{}"));
    assert.deepEqual(await store.list(), ["closer", "scout"]);
    // a deleted MEMORY.md reads as absent and can be created again
    assert.equal((await store.read("ghost")).revision, 0);
    await store.write("ghost", ["back"], 0);
    // a record written with the other codec still reads
    const msgpack = new AgentMemory({ kv: bucket, maxLines: 100, codec: "msgpack" });
    assert.deepEqual((await msgpack.read("scout")).lines, ["s"]);
  });
});
