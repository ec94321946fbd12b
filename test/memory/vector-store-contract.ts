import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import type { MemoryKind, MemoryPayload, MemoryPoint, SearchHit, VectorStore } from "../../memory/vector-store.js";
import { FleetError } from "../../protocol/index.js";

/**
 * What every VectorStore must do, registered as one describe block. `open` must give a fresh, empty store each call (its
 * own directory or collection); the suite closes each store after its test. `skip` names why the suite cannot run here.
 */
export function vectorStoreContract(name: string, open: () => Promise<VectorStore>, options: { skip?: string } = {}): void {
  describe(`VectorStore contract: ${name}`, options.skip ? { skip: options.skip } : {}, () => {
    const opened: VectorStore[] = [];
    const fresh = async () => {
      const store = await open();
      opened.push(store);
      return store;
    };
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((s) => s.close()));
    });

    it("finds nothing in an empty store", async () => {
      const store = await fresh();
      assert.deepEqual(await store.search([1, 0, 0, 0], { limit: 5 }), []);
      assert.equal(await store.count(), 0);
      assert.deepEqual(await store.list({}), []);
    });

    it("ranks hits by cosine similarity, best first, with their payloads", async () => {
      const store = await fresh();
      const a = point("a", [1, 0, 0, 0], { source: "task-7" });
      await store.upsert([point("c", [0, 1, 0, 0]), point("d", [-1, 0, 0, 0]), a, point("b", [0.8, 0.6, 0, 0])]);
      const hits = await store.search([3, 0, 0, 0], { limit: 4 });
      assert.deepEqual(ids(hits), ["a", "b", "c", "d"]);
      assertClose(scores(hits), [1, 0.8, 0, -1]);
      assert.deepEqual(hits[0]?.payload, a.payload);
      assert.equal(store.dimensions, 4);
    });

    it("replaces a point upserted again under the same id", async () => {
      const store = await fresh();
      await store.upsert([point("a", [1, 0, 0, 0], { text: "old" })]);
      await store.upsert([point("a", [0, 1, 0, 0], { text: "new" })]);
      assert.equal(await store.count(), 1);
      const [hit] = await store.search([0, 1, 0, 0], { limit: 3 });
      assert.equal(hit?.id, "a");
      assert.equal(hit?.payload.text, "new");
      assertClose([hit?.score ?? NaN], [1]);
    });

    it("filters by agentId, kind and updatedBefore in search, list and count", async () => {
      const store = await fresh();
      await store.upsert([
        point("p1", [1, 0, 0, 0], { agentId: "atlas", kind: "fact", updatedAt: 100 }),
        point("p2", [0.9, 0.1, 0, 0], { agentId: "atlas", kind: "lesson", updatedAt: 200 }),
        point("p3", [0.8, 0.2, 0, 0], { agentId: "scout", kind: "fact", updatedAt: 300 }),
        point("p4", [0.7, 0.3, 0, 0], { agentId: "scout", kind: "lesson", updatedAt: 400 }),
      ]);
      const cases = [
        [{ agentId: "atlas" }, ["p1", "p2"]],
        [{ kind: "fact" as const }, ["p1", "p3"]],
        [{ updatedBefore: 300 }, ["p1", "p2"]],
        [{ agentId: "scout", kind: "lesson" as const }, ["p4"]],
        [{ agentId: "atlas", updatedBefore: 150 }, ["p1"]],
        [{ updatedBefore: 100 }, []],
        [{ agentId: "nobody" }, []],
      ] as const;
      for (const [filter, expected] of cases) {
        const label = JSON.stringify(filter);
        assert.deepEqual(ids(await store.search([1, 0, 0, 0], { limit: 10, filter })), expected, `search ${label}`);
        assert.deepEqual(ids(await store.list(filter)).sort(), [...expected], `list ${label}`);
        assert.equal(await store.count(filter), expected.length, `count ${label}`);
      }
    });

    it("lists, counts and deletes", async () => {
      const store = await fresh();
      await store.upsert(["m1", "m2", "m3", "m4", "m5"].map((id, i) => point(id, [1, i, 0, 0])));
      assert.equal(await store.count(), 5);
      assert.deepEqual(ids(await store.list({})).sort(), ["m1", "m2", "m3", "m4", "m5"]);
      assert.equal((await store.list({}, 2)).length, 2);
      await store.delete(["m1", "m3", "absent"]);
      assert.equal(await store.count(), 3);
      assert.deepEqual(ids(await store.list({})).sort(), ["m2", "m4", "m5"]);
      assert.deepEqual(ids(await store.search([1, 0, 0, 0], { limit: 10 })).sort(), ["m2", "m4", "m5"]);
      await store.delete([]);
      assert.equal(await store.count(), 3);
    });

    it("refuses a vector of the wrong dimension with VECTOR_DIMENSION, before writing anything", async () => {
      const store = await fresh();
      await store.upsert([point("a", [1, 0, 0, 0])]);
      await assert.rejects(store.upsert([point("x", [0, 0, 1, 0]), point("y", [0, 1, 0])]), isCode("VECTOR_DIMENSION"));
      assert.equal(await store.count(), 1);
      assert.deepEqual(ids(await store.search([0, 0, 1, 0], { limit: 5 })), ["a"]);
      await assert.rejects(store.search([1, 0, 0, 0, 0], { limit: 5 }), isCode("VECTOR_DIMENSION"));
      assert.equal(store.dimensions, 4);
    });

    it("refuses a zero or non-finite vector and an invalid payload with MESSAGE_INVALID", async () => {
      const store = await fresh();
      await assert.rejects(store.upsert([point("z", [0, 0, 0, 0])]), isCode("MESSAGE_INVALID"));
      await assert.rejects(store.upsert([point("n", [1, Number.NaN, 0, 0])]), isCode("MESSAGE_INVALID"));
      const bad = { ...point("k", [1, 0, 0, 0]), payload: { ...base, kind: "rumour" } } as unknown as MemoryPoint;
      await assert.rejects(store.upsert([bad]), isCode("MESSAGE_INVALID"));
      assert.equal(await store.count(), 0);
    });

    it("returns at most `limit` hits", async () => {
      const store = await fresh();
      await store.upsert(Array.from({ length: 12 }, (_, i) => point(`l${i}`, [1, i / 10, (i % 3) / 5, 0])));
      const hits = await store.search([1, 0, 0, 0], { limit: 5 });
      assert.equal(hits.length, 5);
      const s = scores(hits);
      assert.deepEqual(s, [...s].sort((x, y) => y - x));
      assert.deepEqual(await store.search([1, 0, 0, 0], { limit: 0 }), []);
      assert.equal((await store.search([1, 0, 0, 0], { limit: 50 })).length, 12);
    });
  });
}

const base: MemoryPayload = { agentId: "atlas", kind: "fact", text: "the memory's text", updatedAt: 1_000 };

export function point(id: string, vector: number[], payload: Partial<MemoryPayload> & { kind?: MemoryKind } = {}): MemoryPoint {
  return { id, vector, payload: { ...base, text: `memory ${id}`, ...payload } };
}

const ids = (hits: SearchHit[]) => hits.map((h) => h.id);
const scores = (hits: SearchHit[]) => hits.map((h) => h.score);

function assertClose(actual: number[], expected: number[]): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((x, i) => assert.ok(Math.abs(x - (expected[i] as number)) < 1e-4, `score ${i}: ${x} is not ${expected[i]}`));
}

function isCode(code: string): (err: unknown) => boolean {
  return (err) => err instanceof FleetError && err.code === code;
}
