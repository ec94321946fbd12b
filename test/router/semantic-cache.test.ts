import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Kvm, type KV } from "@nats-io/kv";
import { connectNats, type ChatMessage, type Clock } from "../../protocol/index.js";
import { localEmbedding } from "../../router/local-embedding.js";
import { SemanticCache, requestHash, scopePrefix, type CacheableRequest } from "../../router/semantic-cache.js";
import { NatsServer } from "../helpers/nats-server.js";

const SYSTEM = "You are atlas, a research agent in a fleet. Keep notes short, cite sources, answer in plain English. Never invent facts.";
const TTL = 24 * 3_600_000;
const THRESHOLD = 0.97; // the config default

function ask(question: string, extra: Partial<CacheableRequest> = {}, system = SYSTEM): CacheableRequest {
  const messages: ChatMessage[] = [
    { role: "system", content: system },
    { role: "user", content: question },
  ];
  return { messages, ...extra };
}

function answer(text: string) {
  return { text, usage: { inputTokens: 120, outputTokens: 30, cachedTokens: 0 }, model: "sim-workhorse", servedTier: "workhorse" as const };
}

const HEALTH = "Check the health of the payments service and report any errors.";
const atlas = { agentId: "atlas", kind: "research" };

/** The router's semantic cache on a real KV bucket, with the local trigram embedding the fleet uses without a model. */
describe("SemanticCache", () => {
  let server: NatsServer;
  const closers: (() => Promise<void>)[] = [];
  before(async () => {
    server = await NatsServer.start();
  });
  after(async () => {
    for (const close of closers) await close();
    await server.stop();
  });

  async function bucket(name: string): Promise<KV> {
    const nc = await connectNats({ servers: server.url, name });
    closers.push(() => nc.close());
    return new Kvm(nc).create(name, { history: 1 });
  }

  function cache(kv: KV, options: { clock?: Clock; maxEntriesPerScope?: number; reloadMs?: number } = {}): SemanticCache {
    return new SemanticCache({ kv, similarity: THRESHOLD, ttlMs: TTL, embed: async (text) => localEmbedding(text), ...options });
  }

  async function keys(kv: KV, filter = ">"): Promise<string[]> {
    const found: string[] = [];
    for await (const key of await kv.keys(filter)) found.push(key);
    return found.sort();
  }

  it("answers the same request exactly, under a key scoped by agent and kind", async () => {
    const kv = await bucket("cache-exact");
    const c = cache(kv);
    assert.equal(await c.lookup(atlas, ask(HEALTH)), undefined);
    assert.equal(await c.store(atlas, ask(HEALTH), answer("all green")), true);
    const hit = await c.lookup(atlas, ask(HEALTH));
    assert.ok(hit);
    assert.equal(hit.exact, true);
    assert.equal(hit.similarity, 1);
    assert.equal(hit.answer.text, "all green");
    assert.equal(hit.answer.servedTier, "workhorse");
    assert.deepEqual(hit.answer.usage, { inputTokens: 120, outputTokens: 30, cachedTokens: 0 });
    const [key, ...rest] = await keys(kv);
    assert.equal(rest.length, 0);
    assert.match(key!, /^atlas\.research\.[0-9a-f]{32}$/);
  });

  it("a near-duplicate question hits above the threshold; a different question, or the same one in another context, misses", async () => {
    const kv = await bucket("cache-similar");
    const c = cache(kv);
    await c.store(atlas, ask(HEALTH), answer("all green"));

    const near = await c.lookup(atlas, ask(HEALTH.slice(0, -1))); // the trailing full stop dropped
    assert.ok(near, "a near-duplicate wording hits");
    assert.equal(near.exact, false);
    assert.ok(near.similarity >= THRESHOLD && near.similarity < 1, `similarity ${near.similarity}`);
    assert.equal(near.answer.text, "all green");

    assert.equal(await c.lookup(atlas, ask("Check the health of the billing service and report any errors.")), undefined);
    assert.equal(await c.lookup(atlas, ask("Write a haiku about autumn leaves.")), undefined);
    // the question alone is compared: a long shared system prompt must not make different questions look alike
    await c.store(atlas, ask("What is the capital of France?"), answer("Paris"));
    assert.equal(await c.lookup(atlas, ask("What is the capital of Spain?")), undefined);
    // a different context (here a system prompt with another number) is a different question, however similar
    assert.equal(await c.lookup(atlas, ask(HEALTH.slice(0, -1), {}, SYSTEM.replace("atlas", "atlas (disk 91%)"))), undefined);
  });

  it("keeps scopes apart: another agent or another kind never sees the entry", async () => {
    const kv = await bucket("cache-scopes");
    const c = cache(kv);
    await c.store(atlas, ask(HEALTH), answer("atlas research"));
    assert.equal(await c.lookup({ agentId: "scout", kind: "research" }, ask(HEALTH)), undefined);
    assert.equal(await c.lookup({ agentId: "atlas", kind: "health-check" }, ask(HEALTH)), undefined);
    assert.equal(await c.lookup({ agentId: "atlas", kind: "general" }, ask(HEALTH.slice(0, -1))), undefined);

    // a free-text kind becomes a safe key token, and two kinds that sanitise alike stay apart
    const odd = { agentId: "atlas", kind: "health check.v2 > *" };
    const alike = { agentId: "atlas", kind: "health check.v2 * >" };
    await c.store(odd, ask(HEALTH), answer("odd kind"));
    assert.equal((await c.lookup(odd, ask(HEALTH)))?.answer.text, "odd kind");
    assert.equal(await c.lookup(alike, ask(HEALTH)), undefined);
    assert.match(scopePrefix(odd), /^atlas\.[A-Za-z0-9_-]+$/);
    assert.equal(scopePrefix({ agentId: "atlas", kind: "" }), "atlas.general");
  });

  it("never stores nor answers a tool-calling turn", async () => {
    const kv = await bucket("cache-tools");
    const c = cache(kv);
    const tools = [{ type: "function", function: { name: "http_get" } }];
    assert.equal(await c.store(atlas, ask(HEALTH, { tools }), answer("called a tool")), false);
    assert.deepEqual(await keys(kv), []);
    await c.store(atlas, ask(HEALTH), answer("all green"));
    assert.equal(await c.lookup(atlas, ask(HEALTH, { tools })), undefined, "the same words with tools do not hit");
    assert.equal(c.stats().lookups, 0, "a tool-calling turn is not counted as a lookup");
    // an empty tools list is no tool call
    assert.equal((await c.lookup(atlas, ask(HEALTH, { tools: [] })))?.exact, true);
  });

  it("ignores an entry older than the TTL (the bucket keeps it longer)", async () => {
    const kv = await bucket("cache-ttl");
    let now = 1_700_000_000_000;
    const c = cache(kv, { clock: { now: () => now } });
    await c.store(atlas, ask(HEALTH), answer("all green"));
    now += TTL;
    assert.ok(await c.lookup(atlas, ask(HEALTH)), "still fresh at exactly the TTL");
    assert.ok(await c.lookup(atlas, ask(HEALTH.slice(0, -1))));
    now += 1;
    assert.equal(await c.lookup(atlas, ask(HEALTH)), undefined);
    assert.equal(await c.lookup(atlas, ask(HEALTH.slice(0, -1))), undefined);
    // a router with a fresh index does not load it either
    assert.equal(await cache(kv, { clock: { now: () => now } }).lookup(atlas, ask(HEALTH.slice(0, -1))), undefined);
  });

  it("a different responseSchema or parameter never hits, even with the very same messages", async () => {
    const kv = await bucket("cache-params");
    const c = cache(kv);
    const verdict = { name: "verdict", schema: { type: "object", properties: { ok: { type: "boolean" } } } };
    const report = { name: "report", schema: { type: "object", properties: { errors: { type: "array" } } } };
    await c.store(atlas, ask(HEALTH, { responseSchema: verdict }), answer('{"ok":true}'));
    assert.equal(await c.lookup(atlas, ask(HEALTH, { responseSchema: report })), undefined);
    assert.equal(await c.lookup(atlas, ask(HEALTH)), undefined);
    assert.equal(await c.lookup(atlas, ask(HEALTH.slice(0, -1), { responseSchema: report })), undefined);
    assert.equal(await c.lookup(atlas, ask(HEALTH, { responseSchema: verdict, temperature: 0.9 })), undefined);
    assert.equal(await c.lookup(atlas, ask(HEALTH, { responseSchema: verdict, maxOutputTokens: 64 })), undefined);
    // the schema's key order is not a difference; the near-duplicate with the same schema still hits
    const reordered = { schema: { properties: { ok: { type: "boolean" } }, type: "object" }, name: "verdict" };
    assert.equal((await c.lookup(atlas, ask(HEALTH, { responseSchema: reordered })))?.exact, true);
    assert.equal((await c.lookup(atlas, ask(HEALTH.slice(0, -1), { responseSchema: verdict })))?.exact, false);
  });

  it("a second router finds what the first stored: exactly at once, by similarity after its reload interval", async () => {
    let now = 1_700_000_000_000;
    const first = cache(await bucket("cache-shared"), { clock: { now: () => now }, reloadMs: 60_000 });
    const second = cache(await bucket("cache-shared"), { clock: { now: () => now }, reloadMs: 60_000 });
    await first.store(atlas, ask(HEALTH), answer("all green"));
    assert.equal((await second.lookup(atlas, ask(HEALTH)))?.exact, true);
    assert.equal((await second.lookup(atlas, ask(HEALTH.slice(0, -1))))?.answer.text, "all green", "its index loads lazily from KV");

    // the second router's index is loaded now: a later store by the first is found by similarity once it reloads
    const question = "List the open incidents for the payments team and their owners.";
    await first.store(atlas, ask(question), answer("two incidents"));
    assert.equal(await second.lookup(atlas, ask(question.slice(0, -1))), undefined);
    now += 60_000;
    assert.equal((await second.lookup(atlas, ask(question.slice(0, -1))))?.answer.text, "two incidents");
  });

  it("ignores a corrupt entry instead of failing the call", async () => {
    const kv = await bucket("cache-corrupt");
    const c = cache(kv);
    const key = `${scopePrefix(atlas)}.${requestHash(ask(HEALTH))}`;
    await kv.put(key, new Uint8Array([0xc1, 0xff, 0x00, 0x13]));
    await kv.put(`${scopePrefix(atlas)}.${"0".repeat(32)}`, new TextEncoder().encode('{"context":1}'));
    assert.equal(await c.lookup(atlas, ask(HEALTH)), undefined);
    assert.equal(await c.lookup(atlas, ask(HEALTH.slice(0, -1))), undefined);
    await c.store(atlas, ask(HEALTH), answer("all green"));
    assert.equal((await c.lookup(atlas, ask(HEALTH)))?.answer.text, "all green", "the next store overwrites it");
  });

  it("bounds a scope's entries, dropping the oldest", async () => {
    const kv = await bucket("cache-bound");
    let now = 1_700_000_000_000;
    const c = cache(kv, { clock: { now: () => now }, maxEntriesPerScope: 3 });
    for (let i = 1; i <= 5; i++) {
      now += 1_000;
      await c.store(atlas, ask(`Question number ${i}: what changed?`), answer(`answer ${i}`));
    }
    assert.equal((await keys(kv, "atlas.research.>")).length, 3);
    assert.equal(await c.lookup(atlas, ask("Question number 1: what changed?")), undefined);
    assert.equal((await c.lookup(atlas, ask("Question number 5: what changed?")))?.answer.text, "answer 5");
  });

  it("reports its hit rate over cacheable lookups", async () => {
    const kv = await bucket("cache-stats");
    const c = cache(kv);
    assert.deepEqual(c.stats(), { lookups: 0, hits: 0, exactHits: 0, hitRate: 0 });
    await c.store(atlas, ask(HEALTH), answer("all green"));
    await c.lookup(atlas, ask(HEALTH)); // exact
    await c.lookup(atlas, ask(HEALTH.slice(0, -1))); // similar
    await c.lookup(atlas, ask("Write a haiku about autumn leaves.")); // miss
    await c.lookup(atlas, ask("What is the capital of France?")); // miss
    await c.lookup(atlas, ask(HEALTH, { tools: [{}] })); // not a lookup
    assert.deepEqual(c.stats(), { lookups: 4, hits: 2, exactHits: 1, hitRate: 0.5 });
  });
});
