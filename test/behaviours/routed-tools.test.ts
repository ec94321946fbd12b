import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino } from "pino";
import type { ActInput, HostedAgent, Outcome, StepToolResult, StepTools } from "../../actors/index.js";
import { routedModelStep } from "../../behaviours/index.js";
import { connectNats, FleetNames, type ModelToolCall } from "../../protocol/index.js";
import { RouterClient, type RunningRouter } from "../../router/index.js";
import { NatsServer } from "../helpers/nats-server.js";
import { OpenAIServer } from "../helpers/openai-server.js";
import { routerFleetConfig, startTestRouter, usageRecords } from "../helpers/router-fleet.js";

/**
 * An agent's model step with tools: the behaviour against a real router (in this process, on a real nats-server) whose
 * tiers point at a scripted OpenAI server, and a fake StepTools (our own interface) that records the calls and answers
 * what the test says. Governance itself is tested with the real StepTools in test/e2e/model-tools.test.ts.
 */

const SHIP: HostedAgent = {
  id: "ship",
  name: "Ship",
  role: "devops",
  defaultTier: "workhorse",
  cycleMinutes: 30,
  skills: [{ id: "health", name: "Health", description: "Checks hosts", tags: ["health"] }],
};

const DEFINITIONS = [{ type: "function", function: { name: "http_check", description: "Fetch a URL", parameters: { type: "object", properties: { url: { type: "string" } } } } }];

class FakeStepTools implements StepTools {
  readonly calls: { call: ModelToolCall; taskId: string | undefined }[] = [];
  constructor(
    private readonly answer: (call: ModelToolCall) => StepToolResult,
    private readonly offered: unknown[] = DEFINITIONS,
  ) {}
  definitions(): unknown[] {
    return this.offered;
  }
  async run(call: ModelToolCall, taskId?: string): Promise<StepToolResult> {
    this.calls.push({ call, taskId });
    return this.answer(call);
  }
}

describe("routed behaviour: the model step calls tools", () => {
  let nats: NatsServer;
  let openai: OpenAIServer;
  let nc: NatsConnection;
  let router: RunningRouter;
  let client: RouterClient;
  const names = new FleetNames("steptools");
  const log = pino({ level: "silent" });

  before(async () => {
    [nats, openai] = await Promise.all([NatsServer.start(), OpenAIServer.start()]);
    nc = await connectNats({ servers: nats.url, name: "routed-tools-test" });
    router = await startTestRouter(nc, routerFleetConfig({ baseUrl: openai.baseUrl, prefix: "steptools", routing: "  classifier: false\n  localClassifier: { enabled: false }" }));
    client = new RouterClient(nc, names, { timeoutMs: 20_000 });
  });
  after(async () => {
    await router?.stop();
    await nc?.close();
    await Promise.all([nats?.stop(), openai?.close()]);
  });

  function task(text: string): { input: ActInput; taskId: string } {
    const taskId = randomUUID();
    const item = { taskId, contextId: randomUUID(), message: { messageId: randomUUID(), role: "ROLE_USER" as const, parts: [{ text }] } };
    return { taskId, input: { agentId: "ship", trigger: "task", plan: { kind: "work", item, skillId: "health" } } };
  }

  const act = (tools: StepTools | undefined, input: ActInput, maxToolRounds?: number): Promise<Outcome> =>
    routedModelStep(SHIP, client, undefined, { tools, ...(maxToolRounds !== undefined ? { maxToolRounds } : {}) }).act(input, { signal: new AbortController().signal, log });

  /** The chat bodies the scripted server received since `from`, as the model saw them. */
  const bodies = (from: number) => openai.requests.slice(from).filter((r) => r.path.endsWith("/chat/completions")).map((r) => Object(r.body));

  /** The artifact's text and data part of a successful outcome. */
  function answerOf(outcome: Outcome): { text: string; data: Record<string, unknown> } {
    assert.ok(outcome.ok, `the task failed: ${"reason" in outcome ? outcome.reason : ""}`);
    const parts = outcome.artifacts[0]?.parts ?? [];
    const text = parts.find((p) => "text" in p);
    const data = parts.find((p) => "data" in p);
    assert.ok(text && "text" in text && data && "data" in data);
    return { text: text.text, data: Object(data.data) };
  }

  it("the model calls a tool, gets its result and answers; every round is a billed call of the task", async () => {
    const from = openai.requests.length;
    const tools = new FakeStepTools(() => ({ outcome: "ok", content: '{"status":204,"ok":true}' }));
    openai.script(
      "m-workhorse",
      { toolCalls: [{ id: "call_1", name: "http_check", arguments: { url: "http://127.0.0.1:9/health" } }] },
      { content: "The health endpoint answers 204: it is up." },
    );
    const { input, taskId } = task("health of the status page");
    const answer = answerOf(await act(tools, input));

    assert.equal(answer.text, "The health endpoint answers 204: it is up.");
    assert.deepEqual(answer.data.toolCalls, [{ name: "http_check", outcome: "ok" }]);
    assert.deepEqual(tools.calls, [{ call: { id: "call_1", name: "http_check", arguments: '{"url":"http://127.0.0.1:9/health"}' }, taskId }]);

    const [first, second] = bodies(from);
    assert.deepEqual(first.tools, DEFINITIONS);
    assert.deepEqual(second.tools, DEFINITIONS, "the tools stay on offer after a result");
    assert.deepEqual(second.messages.slice(-2), [
      { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "http_check", arguments: '{"url":"http://127.0.0.1:9/health"}' } }] },
      { role: "tool", content: '{"status":204,"ok":true}', tool_call_id: "call_1" },
    ]);

    const usage = (await usageRecords(nc, names)).filter((u) => u.taskId === taskId);
    assert.deepEqual(usage.map((u) => [u.agentId, u.ok]), [["ship", true], ["ship", true]]);
    assert.ok(Math.abs(Number(answer.data.costUsd) - usage.reduce((sum, u) => sum + u.costUsd, 0)) < 1e-12, "the artifact's cost is every round's");
  });

  it("a refused call is fed back to the model, which may answer anyway: the task does not fail", async () => {
    const from = openai.requests.length;
    const refusal = 'TOOL_NOT_ALLOWED: this agent is not allowed "dns_lookup"';
    const tools = new FakeStepTools((call) => (call.name === "dns_lookup" ? { outcome: "refused", content: refusal } : { outcome: "proposed", content: "proposal p-1 submitted" }));
    openai.script(
      "m-workhorse",
      { toolCalls: [{ id: "c1", name: "dns_lookup", arguments: { host: "example.com" } }, { id: "c2", name: "channel_post", arguments: { channel: "console", text: "hi" } }] },
      { content: "I may not look the name up; I proposed a post instead." },
    );
    const answer = answerOf(await act(tools, task("health of example.com").input));
    assert.equal(answer.text, "I may not look the name up; I proposed a post instead.");
    assert.deepEqual(answer.data.toolCalls, [
      { name: "dns_lookup", outcome: "refused" },
      { name: "channel_post", outcome: "proposed" },
    ]);
    const followUp = bodies(from)[1].messages.slice(-2);
    assert.deepEqual(followUp, [
      { role: "tool", content: refusal, tool_call_id: "c1" },
      { role: "tool", content: "proposal p-1 submitted", tool_call_id: "c2" },
    ]);
  });

  it("tool rounds that outgrow the step's budget are folded into a summary; the last two rounds go as they were", async () => {
    const from = openai.requests.length;
    const tools = new FakeStepTools((call) => ({ outcome: "ok", content: `result of ${call.id}: ${"lorem ipsum dolor sit amet ".repeat(80)}` }));
    const round = (n: number) => ({ toolCalls: [{ id: `call_${n}`, name: "http_check", arguments: { url: `http://127.0.0.1:9/${n}` } }] });
    openai.script("m-workhorse", round(1), round(2), round(3), round(4), { content: "All four endpoints answered." });
    const step = routedModelStep(SHIP, client, undefined, { tools, maxToolRounds: 5, maxStepInputTokens: 1_500 });
    const answer = answerOf(await step.act(task("health of four endpoints").input, { signal: new AbortController().signal, log }));
    assert.equal(answer.text, "All four endpoints answered.");
    const last = bodies(from).at(-1).messages as Array<{ role: string; content: string | null; tool_calls?: Array<{ id: string }>; tool_call_id?: string }>;
    const summaries = last.filter((m) => m.role === "system" && String(m.content).startsWith("Summary of earlier conversation: "));
    assert.equal(summaries.length, 1, "one summary stands for the older rounds");
    assert.deepEqual(last.filter((m) => m.tool_calls).map((m) => m.tool_calls?.[0]?.id), ["call_3", "call_4"], "the last two rounds, as they were");
    assert.deepEqual(last.filter((m) => m.role === "tool").map((m) => m.tool_call_id), ["call_3", "call_4"], "each kept result after its call");
    assert.equal(last.filter((m) => m.role === "user").length, 1, "the task stays");
    assert.equal(tools.calls.length, 4);
  });

  it("a model that keeps calling tools past the round limit fails the task with the reason", async () => {
    const from = openai.requests.length;
    const tools = new FakeStepTools(() => ({ outcome: "ok", content: '{"status":503}' }));
    const again = { toolCalls: [{ name: "http_check", arguments: { url: "http://127.0.0.1:9/" } }] };
    openai.script("m-workhorse", again, again, again);
    const outcome = await act(tools, task("health, keep checking").input, 2);
    assert.equal(outcome.ok, false);
    assert.ok(!outcome.ok && !("retry" in outcome), "a model that will not stop is no passing trouble");
    assert.match(!outcome.ok ? outcome.reason : "", /still asked for tools \(http_check\) after 2 rounds of tool calls/);
    assert.equal(tools.calls.length, 2, "the third round's calls are not run");
    assert.equal(bodies(from).length, 3);
  });

  it("with nothing to offer, a step sends no tools and is one plain call, as before", async () => {
    const from = openai.requests.length;
    openai.script("m-workhorse", { content: "All good." });
    const answer = answerOf(await act(new FakeStepTools(() => ({ outcome: "ok", content: "" }), []), task("health of the api").input));
    assert.equal(answer.text, "All good.");
    assert.equal(answer.data.toolCalls, undefined);
    const sent = bodies(from);
    assert.equal(sent.length, 1);
    assert.equal(sent[0].tools, undefined);
  });
});
