import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { appendFileSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { EmbeddedVectorStore } from "../../memory/embedded-vector-store.js";
import type { MemoryPoint, SearchHit } from "../../memory/vector-store.js";
import { FleetError } from "../../protocol/index.js";
import { point, vectorStoreContract } from "./vector-store-contract.js";

const root = mkdtempSync(join(tmpdir(), "fleet-vectors-"));
let dirs = 0;
const newDir = () => join(root, `store-${++dirs}`);
after(() => rmSync(root, { recursive: true, force: true }));

vectorStoreContract("embedded", () => EmbeddedVectorStore.open({ dir: newDir() }));

/** Deterministic vectors: a seeded generator, so failures reproduce. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a * 1_103_515_245 + 12_345) % 2_147_483_648;
    return a / 2_147_483_648 - 0.5;
  };
}

function randomPoints(n: number, d: number, seed: number, prefix = "p"): MemoryPoint[] {
  const r = rng(seed);
  return Array.from({ length: n }, (_, i) => point(`${prefix}${i}`, Array.from({ length: d }, r), { agentId: `agent-${i % 3}`, updatedAt: i }));
}

const byId = (hits: SearchHit[]) => [...hits].sort((a, b) => a.id.localeCompare(b.id));
const isCode = (code: string) => (err: unknown) => err instanceof FleetError && err.code === code;

describe("EmbeddedVectorStore persistence", () => {
  it("finds everything again after a reopen, and keeps its dimension", async () => {
    const dir = newDir();
    const store = await EmbeddedVectorStore.open({ dir });
    const points = randomPoints(60, 8, 1);
    await store.upsert(points);
    await store.upsert(randomPoints(5, 8, 2)); // replaces p0..p4
    await store.delete(["p10", "p11", "p12"]);
    const query = points[20]?.vector ?? [];
    const before = { list: byId(await store.list({})), hits: await store.search(query, { limit: 7, filter: { agentId: "agent-1" } }) };
    await store.close();

    const again = await EmbeddedVectorStore.open({ dir });
    assert.equal(again.dimensions, 8);
    assert.equal(await again.count(), 57);
    assert.deepEqual(byId(await again.list({})), before.list);
    assert.deepEqual(await again.search(query, { limit: 7, filter: { agentId: "agent-1" } }), before.hits);
    await again.close();

    await assert.rejects(EmbeddedVectorStore.open({ dir, dimensions: 9 }), isCode("VECTOR_DIMENSION"));
    const third = await EmbeddedVectorStore.open({ dir, dimensions: 8 }); // the refusal released the lock
    await third.close();
  });

  it("fixes the dimension given at creation before any write", async () => {
    const dir = newDir();
    const store = await EmbeddedVectorStore.open({ dir, dimensions: 4 });
    await assert.rejects(store.upsert([point("a", [1, 0, 0])]), isCode("VECTOR_DIMENSION"));
    await store.close();
    const again = await EmbeddedVectorStore.open({ dir });
    assert.equal(again.dimensions, 4);
    await again.close();
  });

  for (const [label, tail] of [
    ["cut short", Buffer.from([200, 0, 0, 0, 1, 2, 3, 4, 2, 9, 9])],
    ["failing its checksum", Buffer.from([3, 0, 0, 0, 0, 0, 0, 0, 3, 1, 0])],
  ] as const) {
    it(`ignores a last record ${label}, and later writes survive the next reopen`, async () => {
      const dir = newDir();
      const store = await EmbeddedVectorStore.open({ dir });
      await store.upsert(randomPoints(10, 4, 3));
      await store.close();
      appendFileSync(join(dir, EmbeddedVectorStore.LOG_FILE), tail);

      const again = await EmbeddedVectorStore.open({ dir });
      assert.equal(again.stats().droppedTailBytes, tail.length);
      assert.equal(await again.count(), 10);
      await again.upsert([point("late", [1, 2, 3, 4])]);
      await again.close();

      const third = await EmbeddedVectorStore.open({ dir });
      assert.equal(third.stats().droppedTailBytes, 0);
      assert.equal(await third.count(), 11);
      assert.equal((await third.search([1, 2, 3, 4], { limit: 1 }))[0]?.id, "late");
      await third.close();
    });
  }

  it("compacts the log to the live set, by hand and by itself, and loses nothing", async () => {
    const dir = newDir();
    const log = join(dir, EmbeddedVectorStore.LOG_FILE);
    const store = await EmbeddedVectorStore.open({ dir });
    for (let round = 0; round < 12; round++) {
      await store.upsert(randomPoints(200, 256, 10 + round).map((p) => ({ ...p, payload: { ...p.payload, text: `round ${round}` } })));
    }
    // 2,400 records of about 1.1 kB each for 200 live ones: the log must have been rewritten along the way
    const { logBytes, liveBytes } = store.stats();
    assert.ok(logBytes <= 2 * liveBytes + (1 << 20), `log ${logBytes} B for ${liveBytes} B live`);
    await store.delete(randomPoints(150, 256, 0).map((p) => p.id));
    await store.compact();
    assert.equal(statSync(log).size, store.stats().logBytes);
    assert.ok(store.stats().logBytes < store.stats().liveBytes + 64, `after compact: ${JSON.stringify(store.stats())}`);
    const live = byId(await store.list({}));
    await store.close();

    const again = await EmbeddedVectorStore.open({ dir });
    assert.equal(await again.count(), 50);
    assert.deepEqual(byId(await again.list({})), live);
    assert.ok(live.every((h) => h.payload.text === "round 11"));
    await again.close();
  });

  it("lands every write of concurrent callers, who share group commits", async () => {
    const dir = newDir();
    const store = await EmbeddedVectorStore.open({ dir });
    const points = randomPoints(200, 16, 4);
    await Promise.all([...points.map((p) => store.upsert([p])), store.delete(["p7", "p8"])]);
    await store.close();
    const again = await EmbeddedVectorStore.open({ dir });
    assert.equal(await again.count(), 198);
    await again.close();
  });

  it("keeps a second opener out while it is open, and takes over a dead process's lock", async () => {
    const dir = newDir();
    const store = await EmbeddedVectorStore.open({ dir });
    await assert.rejects(EmbeddedVectorStore.open({ dir }), isCode("VECTOR_STORE_UNAVAILABLE"));
    await store.close();
    const gone = spawnSync(process.execPath, ["-e", ""]).pid;
    writeFileSync(join(dir, "LOCK"), String(gone));
    const again = await EmbeddedVectorStore.open({ dir });
    await again.close();
  });
});

describe("EmbeddedVectorStore index", () => {
  it("answers through its IVF index with recall@10 ≥ 0.95, and stays exact under selective filters", async () => {
    const d = 256;
    const clusters = randomPoints(60, d, 99).map((p) => p.vector);
    const noise = rng(7);
    const make = (id: string, i: number): MemoryPoint => {
      const centre = clusters[i % clusters.length] as number[];
      const agentId = i % 100 === 0 ? "rare" : `agent-${i % 4}`;
      return point(id, centre.map((x) => x + noise() * 0.12), { agentId, updatedAt: i });
    };
    const points = Array.from({ length: 6_000 }, (_, i) => make(`v${i}`, i));
    // at 256 dimensions the default would scan exactly up to 65,536 points; this test wants the index
    const store = await EmbeddedVectorStore.open({ dir: newDir(), indexFrom: 4_096 });
    for (let at = 0; at < points.length; at += 1_000) await store.upsert(points.slice(at, at + 1_000));
    // churn, so the lists have been maintained through moves and replacements, not only built
    await store.delete(points.filter((_, i) => i % 7 === 3).map((p) => p.id));
    const replaced = points.filter((_, i) => i % 11 === 5).map((p, j) => make(p.id, j * 13 + 1));
    await store.upsert(replaced);
    assert.ok(store.stats().indexLists > 0, "the index was not trained");

    const live = new Map(points.filter((_, i) => i % 7 !== 3).map((p) => [p.id, p]));
    for (const p of replaced) live.set(p.id, p);
    const unit = (v: readonly number[]) => {
      const n = Math.hypot(...v);
      return v.map((x) => x / n);
    };
    const exact = (q: readonly number[], agentId?: string) =>
      [...live.values()]
        .filter((p) => agentId === undefined || p.payload.agentId === agentId)
        .map((p) => ({ id: p.id, score: unit(p.vector).reduce((s, x, i) => s + x * (q[i] as number), 0) }))
        .sort((a, b) => b.score - a.score)
        .slice(0, 10)
        .map((h) => h.id);

    let found = 0;
    for (let i = 0; i < 60; i++) {
      const q = unit(make("q", i * 17 + 3).vector);
      const truth = new Set(exact(q));
      for (const hit of await store.search(q, { limit: 10 })) if (truth.has(hit.id)) found++;
      const rare = await store.search(q, { limit: 10, filter: { agentId: "rare" } });
      assert.deepEqual(rare.map((h) => h.id), exact(q, "rare"), "a filter leaving few points is searched exactly");
    }
    const recall = found / 600;
    assert.ok(recall >= 0.95, `recall@10 ${recall}`);

    // every live point is still listed: its own vector finds it first
    for (const p of [...live.values()].filter((_, i) => i % 25 === 0)) {
      assert.equal((await store.search(p.vector, { limit: 1 }))[0]?.id, p.id);
    }
    assert.equal(await store.count(), live.size);

    // shrunk far below its training size, the store drops the index and scans exactly again
    await store.delete([...live.keys()].slice(1_000));
    assert.equal(store.stats().indexLists, 0);
    const kept = [...live.values()].slice(0, 1_000);
    for (const p of kept.filter((_, i) => i % 50 === 0)) assert.equal((await store.search(p.vector, { limit: 1 }))[0]?.id, p.id);
    await store.close();
  });
});
