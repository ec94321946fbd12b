import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { FleetError, HEADERS, type CompleteRequest } from "../../protocol/index.js";
import { RouterClient } from "../../router/index.js";
import { usageRecords, type RouterFleetOptions } from "../helpers/router-fleet.js";
import { routerTestBed } from "../helpers/router-test-bed.js";

/**
 * The router end to end: a real nats-server, a real HTTP server speaking the OpenAI API with scripted answers, the
 * router service in this process, and agents' requests through RouterClient over NATS.
 */
describe("model router", () => {
  const bed = routerTestBed("router-test", "rt");
  /** Each test gets its own prefix (streams, buckets, subjects) and its own router. */
  const fleet = (options: Omit<RouterFleetOptions, "baseUrl" | "prefix"> = {}, env: Record<string, string> = {}) => bed.fleet(options, { env });

  const ask = (agentId: string, title: string, extra: Partial<CompleteRequest> = {}): CompleteRequest => ({
    agentId,
    title,
    messages: [{ role: "user", content: title }],
    ...extra,
  });

  const modelsAsked = () => bed.openai.requests.filter((r) => r.path.endsWith("/chat/completions")).map((r) => r.model);

  it("decides by explicit tier, alias, pattern rule, classifier and default, and says why", async () => {
    const { client } = await fleet({
      // the local classifier off: this is the order without it (the next test puts it in)
      routing: `  localClassifier: { enabled: false }\n  rules:\n    - { contains: ["health check", "status"], tier: nano }\n    - { contains: ["strategic"], tier: premium }`,
    });
    const explicit = await client.route({ agentId: "scout", title: "anything", tier: "power" });
    assert.deepEqual([explicit.tier, explicit.reason], ["power", "explicit"]);
    const alias = await client.route({ agentId: "scout", title: "anything", alias: "heavy" });
    assert.deepEqual([alias.tier, alias.reason], ["power", "alias"]);
    const rule = await client.route({ agentId: "scout", title: "Run the Health Check on api.example.com" });
    assert.deepEqual([rule.tier, rule.reason], ["nano", "rule"]);
    assert.match(rule.detail, /health check/);

    bed.openai.script("m-nano", { content: "capable" });
    const classified = await client.route({ agentId: "ship", title: "write the changelog for the release" });
    assert.deepEqual([classified.tier, classified.reason], ["capable", "classifier"]);
    const again = await client.route({ agentId: "ship", title: "Write the changelog for the release" });
    assert.equal(again.reason, "classifier");
    assert.match(again.detail, /cached/);
    assert.equal(modelsAsked().filter((m) => m === "m-nano").length, 1, "the classifier's answer is cached per title");

    bed.openai.script("m-nano", { content: "I am not sure" });
    const fallback = await client.route({ agentId: "ship", title: "something nobody has a rule for" });
    assert.deepEqual([fallback.tier, fallback.reason], ["workhorse", "default"]);

    await assert.rejects(client.route({ agentId: "scout", title: "x", alias: "gigantic" }), (err: FleetError) => err.code === "MESSAGE_INVALID");
  });

  it("a failed check escalates that one step one tier up (by price), and nothing else is re-run", async () => {
    const { client, names } = await fleet({ routing: "  classifier: false" });
    const schema = { type: "object", properties: { ok: { type: "boolean" } }, required: ["ok"], additionalProperties: false };
    bed.openai.script("m-capable", { content: "Sure! Here is what you asked for." });
    bed.openai.script("m-workhorse", { content: '{"ok": "yes"}' });
    bed.openai.script("m-power", { content: '{"ok": true}' });
    const reply = await client.complete(ask("scout", "summarise the findings", { responseSchema: { name: "verdict", schema } }));
    assert.equal(reply.servedTier, "power");
    assert.deepEqual(reply.parsed, { ok: true });
    assert.deepEqual(reply.escalations.map((e) => `${e.from}→${e.to}`), ["capable→workhorse", "workhorse→power"]);
    assert.match(reply.escalations[0]?.reason ?? "", /not JSON/);
    assert.match(reply.escalations[1]?.reason ?? "", /breaks the schema at ok/);
    assert.deepEqual(modelsAsked(), ["m-capable", "m-workhorse", "m-power"], "one call per tier, none repeated");
    const sent = bed.openai.requests[0]?.body as { response_format?: { type: string } };
    assert.equal(sent.response_format?.type, "json_schema");

    const usage = (await usageRecords(bed.nc, names)).filter((u) => u.callId === reply.callId);
    assert.deepEqual(usage.map((u) => [u.servedTier, u.escalations]), [["capable", 0], ["workhorse", 1], ["power", 2]]);
    assert.equal(reply.costUsd, usage.reduce((sum, u) => sum + u.costUsd, 0));
  });

  it("stops escalating at the ceiling with CHECK_FAILED", async () => {
    const { client } = await fleet({ routing: "  classifier: false\n  escalationCeiling: workhorse" });
    bed.openai.script("m-capable", { content: "" });
    bed.openai.script("m-workhorse", { content: "" });
    await assert.rejects(client.complete(ask("scout", "x", { checks: ["non-empty"] })), (err: FleetError) => err.code === "CHECK_FAILED");
    assert.deepEqual(modelsAsked(), ["m-capable", "m-workhorse"]);
  });

  it("a failed provider falls back only upward in cost, even where tier names suggest otherwise", async () => {
    const { client } = await fleet({ routing: "  classifier: false" });
    // ship's default is workhorse ($1.37/M); capable ($0.50/M) is cheaper, so it is skipped: power is next
    bed.openai.script("m-workhorse", { status: 503 });
    const reply = await client.complete(ask("ship", "restart the web service"));
    assert.equal(reply.servedTier, "power");
    assert.deepEqual(reply.fallbacks.map((f) => `${f.from}→${f.to}`), ["workhorse→power"]);
    assert.deepEqual(modelsAsked(), ["m-workhorse", "m-power"]);
  });

  it("a hanging provider times out and the step falls back", async () => {
    const { client } = await fleet({ routing: "  classifier: false", tierExtra: { capable: "    timeoutSeconds: 0.5" } });
    bed.openai.script("m-capable", { hang: true });
    const started = Date.now();
    const reply = await client.complete(ask("scout", "find the pricing page"));
    assert.equal(reply.servedTier, "workhorse");
    assert.match(reply.fallbacks[0]?.reason ?? "", /timeout/);
    assert.ok(Date.now() - started < 5_000);
  });

  it("premium never falls back: the call waits, the operator sees it waiting, and it is retried on the schedule", async () => {
    const { client, names } = await fleet({ routing: "  classifier: false" });
    bed.openai.script("m-premium", { status: 500 }, { status: 429 });
    const seen: Array<{ waiting: number; retryAfterMs: number }> = [];
    const waitingClient = new RouterClient(bed.nc, names, {
      timeoutMs: 20_000,
      onWaiting: (_callId, retryAfterMs) => {
        void client.usage().then((u) => seen.push({ waiting: u.waiting.length, retryAfterMs }));
      },
    });
    const reply = await waitingClient.complete(ask("atlas", "quarterly strategy", { tier: "premium" }));
    assert.equal(reply.servedTier, "premium");
    assert.deepEqual(reply.fallbacks, []);
    assert.deepEqual(modelsAsked(), ["m-premium", "m-premium", "m-premium"], "retried at premium, never anything else");
    assert.equal(seen.length, 2);
    assert.ok(seen.every((s) => s.waiting === 1 && s.retryAfterMs <= 200));
    assert.equal((await client.usage()).waiting.length, 0, "the wait is cleared once premium answers");
  });

  it("a deployment that keeps failing cools down on its own; the tier's other deployment serves", async () => {
    const base = bed.openai.baseUrl;
    // the titles ("question 3") say nothing of a tier: the local classifier is off, so scout's default (capable) serves
    const { client } = await fleet({
      routing: "  classifier: false\n  localClassifier: { enabled: false }",
      tierExtra: { capable: `    deployments:\n      - { id: cap-a, baseUrl: ${base}, model: m-cap-a }\n      - { id: cap-b, baseUrl: ${base}, model: m-cap-b }` },
    });
    bed.openai.script("m-cap-a", { status: 500 }, { status: 500 }, { status: 500 });
    for (let i = 0; i < 5; i++) {
      const reply = await client.complete(ask("scout", `question ${i}`));
      assert.equal(reply.deploymentId, "cap-b");
      assert.equal(reply.servedTier, "capable");
    }
    assert.equal(modelsAsked().filter((m) => m === "m-cap-a").length, 3, "after three failures cap-a is not asked again");
  });

  it("the budget downgrades at 80 %, runs only nano at 100 %, and refuses past the nano grace", async () => {
    const { client } = await fleet({ routing: "  classifier: false\n  localClassifier: { enabled: false }", scoutCapUsd: 0.01 });
    // 80,000 input tokens at capable ($0.10/M) = $0.008 = 80 % of scout's $0.01 cap
    bed.openai.script("m-capable", { content: "a", usage: { prompt_tokens: 80_000, completion_tokens: 0 } });
    assert.equal((await client.complete(ask("scout", "one"))).servedTier, "capable");
    const downgraded = await client.route({ agentId: "scout", title: "two" });
    assert.deepEqual([downgraded.budgetState, downgraded.requestedTier, downgraded.tier], ["downgraded", "capable", "nano"]);
    // 40,000 at nano ($0.07/M) = $0.0028: $0.0108, past the cap
    bed.openai.script("m-nano", { content: "b", usage: { prompt_tokens: 40_000, completion_tokens: 0 } });
    assert.equal((await client.complete(ask("scout", "two"))).servedTier, "nano");
    const nanoOnly = await client.route({ agentId: "scout", title: "three", tier: "premium" });
    assert.deepEqual([nanoOnly.budgetState, nanoOnly.tier, nanoOnly.fallbackChain], ["nanoOnly", "nano", []]);
    // the grace is 10 % of the cap: $0.011; one more nano call takes spend past it
    bed.openai.script("m-nano", { content: "c", usage: { prompt_tokens: 10_000, completion_tokens: 0 } });
    assert.equal((await client.complete(ask("scout", "three", { tier: "premium" }))).servedTier, "nano");
    // the refusal names the spent cap by its config path: the agent's work waits for it, not the fleet's
    await assert.rejects(
      client.complete(ask("scout", "four")),
      (err: FleetError) => err.code === "BUDGET_EXHAUSTED" && (err.retryAfterMs ?? 0) > 0 && err.details?.[0]?.path === "agents.scout.dailyCapUsd",
    );
    const usage = await client.usage("scout");
    assert.equal(usage.agents.scout?.state, "nanoOnly");
    assert.ok(Math.abs((usage.agents.scout?.spentUsd ?? 0) - 0.0115) < 1e-9);
    // other agents still run: their own caps are untouched and the fleet's cap is far away
    assert.equal((await client.complete(ask("ship", "check disk"))).servedTier, "workhorse");
  });

  it("a pure step (JSON in, JSON out, no tools) asked twice is answered from the cache, with no model call; nothing else is", async () => {
    const { client, names } = await fleet({ routing: "  classifier: false\n  localClassifier: { enabled: false }" });
    const schema = { type: "object", properties: { changed: { type: "boolean" } }, required: ["changed"], additionalProperties: false };
    const pure = (agentId: string, content: string, extra: Partial<CompleteRequest> = {}) =>
      ask(agentId, "compare pricing", { kind: "research", tier: "capable", messages: [{ role: "user", content }], responseSchema: { name: "verdict", schema }, ...extra });
    bed.openai.script("m-capable", ...Array.from({ length: 6 }, () => ({ content: '{"changed": false}' })));
    const input = '{"site": "acme.com", "plan": "starter", "price": 29}';
    const first = await client.complete(pure("scout", input));
    const second = await client.complete(pure("scout", input));
    assert.equal(first.cacheHit, false);
    assert.equal(second.cacheHit, true, "the same input again");
    assert.deepEqual(second.parsed, { changed: false });
    assert.equal(modelsAsked().length, 1);
    const number = await client.complete(pure("scout", '{"site": "acme.com", "plan": "starter", "price": 39}'));
    assert.equal(number.cacheHit, false, "a changed number misses");
    const name = await client.complete(pure("scout", '{"site": "acme.org", "plan": "starter", "price": 29}'));
    assert.equal(name.cacheHit, false, "a changed name misses");
    const other = await client.complete(pure("ship", input));
    assert.equal(other.cacheHit, false, "the cache is scoped per agent");
    const tools = await client.complete(pure("scout", input, { tools: [{ type: "function" }] }));
    assert.equal(tools.cacheHit, false, "tool-calling turns are never cached");
    const chat = await client.complete(ask("scout", "what does the pricing page say?", { kind: "research" }));
    const chatAgain = await client.complete(ask("scout", "what does the pricing page say?", { kind: "research" }));
    assert.equal(chatAgain.cacheHit || chat.cacheHit, false, "a chat step (no responseSchema) is never served from the cache");
    const usage = await usageRecords(bed.nc, names);
    assert.deepEqual(usage.map((u) => u.cacheHit), [false, true, false, false, false, false, false, false]);
  });

  it("each agent's own key goes to the provider, so the spend is attributable there too", async () => {
    const { client } = await fleet(
      { routing: "  classifier: false", tierExtra: { capable: "    apiKeyEnv: FLEET_KEY" }, scoutExtra: "    apiKeys: { capable: SCOUT_KEY }" },
      { FLEET_KEY: "fleet-secret", SCOUT_KEY: "scout-secret" },
    );
    await client.complete(ask("scout", "a"));
    await client.complete(ask("atlas", "b", { tier: "capable" }));
    assert.deepEqual(bed.openai.requests.map((r) => r.authorization), ["Bearer scout-secret", "Bearer fleet-secret"]);
  });

  it("bad input gets a typed error and is dead-lettered with its reason", async () => {
    const { names } = await fleet();
    const reply = await bed.nc.request(names.router("complete", "scout"), new TextEncoder().encode("{not msgpack"), { timeout: 5_000 });
    assert.match(new TextDecoder().decode(reply.data), /MESSAGE_/);
    const client = new RouterClient(bed.nc, names);
    await assert.rejects(client.complete(ask("nobody", "x")), (err: FleetError) => err.code === "MESSAGE_INVALID");
    await assert.rejects(client.complete(ask("scout", "x", { checks: ["telepathy"] })), (err: FleetError) => err.code === "MESSAGE_INVALID");
    const jsm = await jetstreamManager(bed.nc);
    const dead = await jsm.streams.getMessage(names.stream("DLQ"), { last_by_subj: names.dlq("router") });
    assert.ok(dead, "a dead letter from the router");
    assert.equal(dead.header.get(HEADERS.dlqSubject), names.router("complete", "scout"));
    assert.ok(dead.header.get(HEADERS.dlqCode).startsWith("MESSAGE_"));
  });
});
