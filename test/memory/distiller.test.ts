import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { connectNats, decode, ensureFleetResources, FleetError, FleetNames } from "../../protocol/index.js";
import { localEmbedding, RouterClient, type RunningRouter } from "../../router/index.js";
import { AgentMemory } from "../../memory/agent-memory.js";
import { distillDay, distillKey, DistillRecord, mergeInsights, type DistillerDeps, type Insight } from "../../memory/distiller.js";
import { EmbeddedVectorStore } from "../../memory/embedded-vector-store.js";
import { SessionLog } from "../../memory/session-log.js";
import type { VectorStore } from "../../memory/vector-store.js";
import { NatsServer } from "../helpers/nats-server.js";
import { OpenAIServer } from "../helpers/openai-server.js";
import { routerFleetConfig, startTestRouter } from "../helpers/router-fleet.js";

const at = (iso: string) => Date.parse(iso);
const DAY = "2026-11-22";
const DAY_MS = 86_400_000;

/**
 * Distillation end to end: a real nats-server (the session log, MEMORY.md and the run record in JetStream and KV), the
 * real router over NATS with its capable tier (and embeddings) on a scripted OpenAI server, and the embedded vector store
 * in a temporary directory. Only the model's answers are scripted.
 */
describe("distillDay", () => {
  let nats: NatsServer;
  let openai: OpenAIServer;
  let nc: NatsConnection;
  let fleets = 0;
  const routers: RunningRouter[] = [];
  const stores: VectorStore[] = [];
  const dirs: string[] = [];

  before(async () => {
    [nats, openai] = await Promise.all([NatsServer.start(), OpenAIServer.start()]);
    nc = await connectNats({ servers: nats.url, name: "distiller-test" });
  });
  after(async () => {
    for (const r of routers) await r.stop();
    for (const s of stores) await s.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    await nc.close();
    await Promise.all([nats.stop(), openai.close()]);
  });

  /** Each test gets its own prefix (streams, buckets, the router's cache), router and store. */
  async function fleet(routing = "") {
    const prefix = `ds${++fleets}`;
    const names = new FleetNames(prefix);
    const { jsm, kv } = await ensureFleetResources(nc, names);
    const config = routerFleetConfig({
      baseUrl: openai.baseUrl,
      prefix,
      routing: `  classifier: false\n  embeddings: { baseUrl: "${openai.baseUrl}", model: m-embed }\n${routing}`,
    });
    routers.push(await startTestRouter(nc, config));
    const dir = mkdtempSync(join(tmpdir(), "fleet-distil-"));
    dirs.push(dir);
    const store = await EmbeddedVectorStore.open({ dir });
    stores.push(store);
    const clock = { now: () => at("2026-11-22T22:00:00Z") };
    const log = new SessionLog({ js: jetstream(nc), jsm, names, timeZone: "Europe/Berlin", codec: "msgpack" });
    const memory = new AgentMemory({ kv: kv.memory, maxLines: 100 });
    const deps: DistillerDeps = {
      log,
      memory,
      store,
      router: new RouterClient(nc, names, { timeoutMs: 20_000 }),
      kv: kv.memory,
      maxLines: 100,
      staleDays: 90,
      clock,
    };
    openai.clear();
    const record = async (agentId = "scout", day = DAY) => {
      const entry = await kv.memory.get(distillKey(agentId, day));
      const decoded = entry ? decode(DistillRecord, entry.value) : undefined;
      return decoded?.ok ? decoded.value : undefined;
    };
    return { deps, log, memory, store, record };
  }

  const answer = (model: string, insights: Array<Omit<Insight, "replaces"> & { replaces?: string | null }>) =>
    openai.script(model, { content: JSON.stringify({ insights: insights.map((i) => ({ replaces: null, ...i })) }) });
  const chatCalls = () => openai.requests.filter((r) => r.path.endsWith("/chat/completions")).map((r) => r.model);
  const embedCalls = () => openai.requests.filter((r) => r.path.endsWith("/embeddings")).length;

  async function logDay(log: SessionLog, agentId = "scout", texts = ["Checked the pricing pages of three competitors", "Competitor X now charges $12/month"]) {
    for (const [i, text] of texts.entries()) await log.append({ agentId, kind: "finding", text, at: at(`${DAY}T${10 + i}:00:00Z`) });
  }

  it("turns a day's log into MEMORY.md lines and semantic points; a day with no log is recorded as nothing to distil", async () => {
    const { deps, log, memory, store, record } = await fleet();
    await logDay(log);
    answer("m-capable", [
      { text: "Competitor X charges $12/month for the basic plan", kind: "fact" },
      { text: "Pricing pages change on the first of the month; check them then", kind: "lesson" },
    ]);
    const result = await distillDay(deps, "scout", DAY);
    assert.equal(result.status, "applied");
    assert.equal(result.modelCalled, true);
    assert.equal(result.entries, 2);
    assert.deepEqual((await memory.read("scout")).lines, [
      "Competitor X charges $12/month for the basic plan",
      "Pricing pages change on the first of the month; check them then",
    ]);
    const points = await store.list({ agentId: "scout" });
    assert.deepEqual(points.map((p) => [p.payload.kind, p.payload.source]).sort(), [["fact", DAY], ["lesson", DAY]]);
    assert.deepEqual(chatCalls(), ["m-capable"], "one call, at the capable tier");

    const sent = openai.requests.find((r) => r.model === "m-capable")?.body as { response_format?: { type: string }; messages: Array<{ content: string }> };
    assert.equal(sent.response_format?.type, "json_schema");
    assert.match(sent.messages.at(-1)?.content ?? "", /Competitor X now charges \$12\/month/);
    assert.equal((await record())?.status, "applied");

    const quiet = await distillDay(deps, "ship", DAY);
    assert.deepEqual([quiet.status, quiet.modelCalled], ["empty", false]);
    assert.equal((await record("ship"))?.status, "empty");
    assert.deepEqual(chatCalls(), ["m-capable"], "nothing to distil: no model call");
  });

  it("asks for the tier memory.distillTier names instead of capable", async () => {
    const { deps, log, memory } = await fleet();
    await logDay(log, "ship", ["Renewed the TLS certificate of shop.example"]);
    answer("m-workhorse", [{ text: "shop.example's certificate renews on the 1st", kind: "fact" }]);
    const result = await distillDay({ ...deps, tier: "workhorse" }, "ship", DAY);
    assert.equal(result.status, "applied");
    assert.deepEqual(chatCalls(), ["m-workhorse"], "one call, at the configured tier");
    assert.deepEqual((await memory.read("ship")).lines, ["shop.example's certificate renews on the 1st"]);
  });

  it("re-running the same day asks no model and changes nothing", async () => {
    const { deps, log, memory, store } = await fleet();
    await logDay(log);
    answer("m-capable", [{ text: "Competitor X charges $12/month", kind: "fact" }]);
    await distillDay(deps, "scout", DAY);
    const before = { memory: await memory.read("scout"), points: await store.count({ agentId: "scout" }), requests: openai.requests.length };

    const again = await distillDay(deps, "scout", DAY);
    assert.deepEqual([again.status, again.alreadyDone, again.modelCalled], ["applied", true, false]);
    assert.deepEqual(again.added, ["Competitor X charges $12/month"], "the rerun reports what the day did");
    assert.deepEqual(await memory.read("scout"), before.memory, "same lines, same revision");
    assert.equal(await store.count({ agentId: "scout" }), before.points);
    assert.equal(openai.requests.length, before.requests, "no chat and no embedding call");
  });

  it("a failure after the plan leaves nothing half-applied: the retry re-applies the stored plan without a model call", async () => {
    const { deps, log, memory, store, record } = await fleet();
    await logDay(log);
    answer("m-capable", [{ text: "Competitor X charges $12/month", kind: "fact" }, { text: "Competitor Y has no free tier", kind: "fact" }]);
    let failWrites = 1;
    const flaky: DistillerDeps = {
      ...deps,
      memory: {
        read: (agentId) => memory.read(agentId),
        write: (agentId, lines, revision, replaced) => {
          if (failWrites-- > 0) return Promise.reject(new FleetError("NATS_UNAVAILABLE", "the memory bucket did not answer"));
          return memory.write(agentId, lines, revision, replaced);
        },
      },
    };
    await assert.rejects(distillDay(flaky, "scout", DAY), (err: FleetError) => err.code === "NATS_UNAVAILABLE");
    const failed = await record();
    assert.equal(failed?.status, "failed");
    assert.match(failed?.error?.message ?? "", /did not answer/);
    assert.deepEqual(failed?.plan?.lines, ["Competitor X charges $12/month", "Competitor Y has no free tier"], "the plan is kept for the retry");
    assert.deepEqual((await memory.read("scout")).lines, []);

    const retried = await distillDay(flaky, "scout", DAY);
    assert.deepEqual([retried.status, retried.modelCalled], ["applied", false]);
    assert.deepEqual(chatCalls(), ["m-capable"], "the model was asked once");
    assert.deepEqual((await memory.read("scout")).lines, ["Competitor X charges $12/month", "Competitor Y has no free tier"]);
    assert.equal(await store.count({ agentId: "scout" }), 2, "the points upserted twice are the same two points");
    assert.equal((await record())?.attempts, 2);
  });

  it("an insight that contradicts a line replaces it in place and the replacement is recorded", async () => {
    const { deps, log, memory } = await fleet();
    const first = await memory.read("scout");
    await memory.write("scout", ["The pricing page is at /pricing", "Competitor X charges $10/month", "Atlas wants reports by 09:00"], first.revision);
    await logDay(log);
    answer("m-capable", [
      { text: "Competitor X charges $12/month", kind: "fact", replaces: "Competitor X charges $10/month" },
      { text: "Competitor Z launched a free plan", kind: "insight", replaces: "a line that is not in MEMORY.md" },
    ]);
    deps.clock.now = () => at("2026-11-22T22:05:00Z");
    const result = await distillDay(deps, "scout", DAY);
    const expected = ["The pricing page is at /pricing", "Competitor X charges $12/month", "Atlas wants reports by 09:00", "Competitor Z launched a free plan"];
    const after = await memory.read("scout");
    assert.deepEqual(after.lines, expected, "replaced in place; an unmatched `replaces` is just added");
    const replacement = { old: "Competitor X charges $10/month", new: "Competitor X charges $12/month", at: at("2026-11-22T22:05:00Z") };
    assert.deepEqual(result.replaced, [replacement]);
    assert.deepEqual(after.replaced.at(-1), replacement, "MEMORY.md's history records the replacement");
    assert.deepEqual(result.added, ["Competitor Z launched a free plan"]);

    // the next day's answer repeats both: already present, so nothing changes and nothing is recorded again
    await log.append({ agentId: "scout", kind: "note", text: "Rechecked competitor X", at: at("2026-11-23T10:00:00Z") });
    answer("m-capable", [{ text: "Competitor X charges $12/month", kind: "fact", replaces: "Competitor X charges $10/month" }]);
    const next = await distillDay(deps, "scout", "2026-11-23");
    assert.deepEqual([next.added, next.replaced], [[], []]);
    assert.deepEqual(await memory.read("scout"), after);
  });

  it("MEMORY.md never exceeds its 100-line cap: the oldest untouched lines go, and the result says which", async () => {
    const { deps, log, memory } = await fleet();
    const lines = Array.from({ length: 99 }, (_, i) => `old fact number ${i}`);
    await memory.write("scout", lines, (await memory.read("scout")).revision);
    await logDay(log);
    answer("m-capable", [
      { text: "fresh fact about line zero", kind: "fact", replaces: "old fact number 0" },
      { text: "new fact B", kind: "fact" },
      { text: "new fact C", kind: "decision" },
      { text: "new fact D", kind: "lesson" },
      { text: "old fact number 50", kind: "fact" },
      { text: "Old fact number 1.", kind: "fact" },
    ]);
    const result = await distillDay(deps, "scout", DAY);
    const after = (await memory.read("scout")).lines;
    assert.equal(after.length, 100);
    assert.deepEqual(result.dropped, ["old fact number 2", "old fact number 3"]);
    assert.deepEqual(after.slice(0, 2), ["fresh fact about line zero", "old fact number 1"], "lines just replaced or restated are kept");
    assert.deepEqual(after.slice(-3), ["new fact B", "new fact C", "new fact D"]);
    assert.equal(after.filter((l) => l === "old fact number 50").length, 1, "an insight already present adds nothing");

    const again = mergeInsights(after, result.insights, 100, 0);
    assert.deepEqual([again.lines, again.added, again.replaced, again.dropped], [after, [], [], []], "the merge is a no-op on its own result");
  });

  it("an answer that is not JSON escalates one tier up, and the distillation succeeds there", async () => {
    const { deps, log, memory } = await fleet();
    await logDay(log);
    openai.script("m-capable", { content: "Here are today's insights: competitor X is pricier now." });
    answer("m-workhorse", [{ text: "Competitor X charges $12/month", kind: "fact" }]);
    const result = await distillDay(deps, "scout", DAY);
    assert.equal(result.status, "applied");
    assert.deepEqual(chatCalls(), ["m-capable", "m-workhorse"]);
    assert.deepEqual((await memory.read("scout")).lines, ["Competitor X charges $12/month"]);
  });

  it("an answer that fails at the escalation ceiling, or breaks the schema, fails the day with nothing applied; a rerun succeeds", async () => {
    const { deps, log, memory, store, record } = await fleet("  escalationCeiling: capable");
    await memory.write("scout", ["Competitor X charges $10/month"], (await memory.read("scout")).revision);
    const before = await memory.read("scout");
    await logDay(log);

    openai.script("m-capable", { content: '{"insights": "none"}' });
    await assert.rejects(distillDay(deps, "scout", DAY), (err: FleetError) => err.code === "CHECK_FAILED");
    assert.deepEqual(await memory.read("scout"), before, "MEMORY.md unchanged");
    assert.equal(await store.count(), 0);
    const failed = await record();
    assert.deepEqual([failed?.status, failed?.plan, failed?.error?.code], ["failed", undefined, "CHECK_FAILED"]);

    // JSON the router accepts, but an empty line is not an insight: our own validation refuses it
    answer("m-capable", [{ text: "  ", kind: "fact" }]);
    await assert.rejects(distillDay(deps, "scout", DAY), /breaks its schema at insights\.0\.text/);
    assert.deepEqual(await memory.read("scout"), before);
    assert.equal((await record())?.attempts, 2);

    // the router cached the refused answer (it passed the router's check); the retry names its attempt, so it is asked anew
    answer("m-capable", [{ text: "Competitor X charges $12/month", kind: "fact", replaces: "Competitor X charges $10/month" }]);
    const result = await distillDay(deps, "scout", DAY);
    assert.deepEqual([result.status, result.modelCalled], ["applied", true]);
    assert.deepEqual(chatCalls(), ["m-capable", "m-capable", "m-capable"], "no cached answer on the retry");
    assert.deepEqual((await memory.read("scout")).lines, ["Competitor X charges $12/month"]);
    assert.equal((await record())?.status, "applied");
  });

  it("prunes this agent's semantic memories not refreshed for staleDays, and no one else's", async () => {
    const { deps, log, store } = await fleet();
    const now = deps.clock.now();
    const point = (id: string, agentId: string, ageDays: number) => ({
      id,
      vector: localEmbedding(id),
      payload: { agentId, kind: "fact" as const, text: `memory ${id}`, updatedAt: now - ageDays * DAY_MS, source: "test" },
    });
    await store.upsert([
      point("00000000-0000-4000-8000-000000000001", "scout", 120),
      point("00000000-0000-4000-8000-000000000002", "scout", 91),
      point("00000000-0000-4000-8000-000000000003", "scout", 30),
      point("00000000-0000-4000-8000-000000000004", "atlas", 200),
    ]);
    await logDay(log);
    answer("m-capable", [{ text: "Competitor X charges $12/month", kind: "fact" }]);
    const result = await distillDay(deps, "scout", DAY);
    assert.equal(result.pruned, 2);
    const left = (await store.list({})).map((p) => p.payload.text).sort();
    assert.deepEqual(left, ["Competitor X charges $12/month", "memory 00000000-0000-4000-8000-000000000003", "memory 00000000-0000-4000-8000-000000000004"]);
    assert.ok(embedCalls() >= 1, "the insights were embedded through the router");
  });
});
