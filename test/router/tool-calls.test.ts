import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FleetError, type ChatMessage, type CompleteRequest } from "../../protocol/index.js";
import { usageRecords } from "../helpers/router-fleet.js";
import { routerTestBed } from "../helpers/router-test-bed.js";

/**
 * Tool calling through the router: a real nats-server, the router in this process, and a real HTTP server speaking the
 * OpenAI API whose scripted answers call tools, reached through the real SDK. What the model sees on the follow-up is
 * asserted on the request body the server recorded.
 */

const HTTP_CHECK = {
  type: "function",
  function: {
    name: "http_check",
    description: "Fetch a URL and report its status.",
    parameters: { type: "object", properties: { url: { type: "string" } }, required: ["url"], additionalProperties: false },
  },
};

describe("model router: tool-calling turns", () => {
  const bed = routerTestBed("router-tools-test", "rtt");
  const fleet = () => bed.fleet({ routing: "  classifier: false\n  localClassifier: { enabled: false }" });

  const chatBodies = () => bed.openai.requests.filter((r) => r.path.endsWith("/chat/completions")).map((r) => r.body);
  const system: ChatMessage = { role: "system", content: "You are Ship. Check hosts." };
  const user: ChatMessage = { role: "user", content: "Is the status page up?" };
  const ask = (messages: ChatMessage[], extra: Partial<CompleteRequest> = {}): CompleteRequest => ({
    agentId: "ship",
    taskId: "task-1",
    kind: "health",
    title: "is the status page up",
    messages,
    tools: [HTTP_CHECK],
    checks: ["non-empty", "no-refusal"],
    ...extra,
  });

  it("a tool call with no text reaches the reply unescalated, and the follow-up carries the calls and their results", async () => {
    const { client, names } = await fleet();
    bed.openai.script("m-workhorse", { toolCalls: [{ id: "call_a", name: "http_check", arguments: { url: "http://127.0.0.1:1/health" } }] });
    const first = await client.complete(ask([system, user]));
    assert.deepEqual(first.toolCalls, [{ id: "call_a", name: "http_check", arguments: '{"url":"http://127.0.0.1:1/health"}' }]);
    assert.equal(first.text, "");
    assert.deepEqual(first.escalations, [], "non-empty and no-refusal wait for the text answer");
    assert.equal(first.servedTier, "workhorse");
    assert.equal(first.cacheHit, false);

    bed.openai.script("m-workhorse", { content: "The status page answers 204." });
    const conversation: ChatMessage[] = [
      system,
      user,
      { role: "assistant", content: first.text, toolCalls: first.toolCalls },
      { role: "tool", toolCallId: "call_a", content: '{"status":204,"ok":true}' },
    ];
    const second = await client.complete(ask(conversation));
    assert.equal(second.text, "The status page answers 204.");
    assert.equal(second.toolCalls, undefined);

    const bodies = chatBodies();
    assert.equal(bodies.length, 2, "one model call per turn, no escalation");
    assert.deepEqual(Reflect.get(Object(bodies[0]), "tools"), [HTTP_CHECK]);
    assert.deepEqual(Reflect.get(Object(bodies[1]), "messages"), [
      { role: "system", content: "You are Ship. Check hosts." },
      { role: "user", content: "Is the status page up?" },
      {
        role: "assistant",
        content: null,
        tool_calls: [{ id: "call_a", type: "function", function: { name: "http_check", arguments: '{"url":"http://127.0.0.1:1/health"}' } }],
      },
      { role: "tool", content: '{"status":204,"ok":true}', tool_call_id: "call_a" },
    ]);

    // both turns are billed and attributed like any call
    const usage = (await usageRecords(bed.nc, names)).filter((u) => u.taskId === "task-1");
    assert.deepEqual(usage.map((u) => [u.agentId, u.servedTier, u.ok, u.cacheHit, u.escalations]), [
      ["ship", "workhorse", true, false, 0],
      ["ship", "workhorse", true, false, 0],
    ]);
  });

  it("an assistant turn with text beside its calls keeps the text; the schema check waits for the final answer too", async () => {
    const { client } = await fleet();
    const schema = { type: "object", properties: { up: { type: "boolean" } }, required: ["up"], additionalProperties: false };
    bed.openai.script("m-workhorse", { content: "Let me look.", toolCalls: [{ name: "http_check", arguments: { url: "http://a.localhost" } }, { name: "http_check", arguments: "{not json" }] });
    const reply = await client.complete(ask([system, user], { responseSchema: { name: "verdict", schema } }));
    assert.equal(reply.text, "Let me look.");
    assert.equal(reply.toolCalls?.length, 2);
    assert.equal(reply.toolCalls?.[1]?.arguments, "{not json", "arguments are passed on as the model wrote them");
    assert.deepEqual(reply.escalations, []);
    assert.equal(reply.parsed, undefined);

    bed.openai.script("m-workhorse", { content: "ok" });
    await client.complete(ask([system, user, { role: "assistant", content: reply.text, toolCalls: reply.toolCalls }]));
    const sent = Reflect.get(Object(chatBodies()[1]), "messages");
    assert.ok(Array.isArray(sent));
    assert.equal(Reflect.get(Object(sent[2]), "content"), "Let me look.", "text beside tool calls is sent as text, not null");
  });

  it("tool turns are never cached: neither those offering tools nor those carrying tool results", async () => {
    const { client } = await fleet();
    const withResult: ChatMessage[] = [
      system,
      user,
      { role: "assistant", content: "", toolCalls: [{ id: "c1", name: "http_check", arguments: "{}" }] },
      { role: "tool", toolCallId: "c1", content: '{"status":200}' },
    ];
    for (let i = 0; i < 2; i++) {
      assert.equal((await client.complete(ask([system, user]))).cacheHit, false);
      assert.equal((await client.complete(ask(withResult, { tools: [] }))).cacheHit, false);
    }
    assert.equal(chatBodies().length, 4);
  });

  it("a conversation that puts tool fields on the wrong role is refused before any model call", async () => {
    const { client } = await fleet();
    await assert.rejects(
      client.complete(ask([system, { role: "user", content: "hi", toolCallId: "c1" }])),
      (err: FleetError) => err.code === "MESSAGE_INVALID",
    );
    await assert.rejects(
      client.complete(ask([system, { role: "tool", content: "x", toolCalls: [{ id: "c1", name: "http_check", arguments: "{}" }] }])),
      (err: FleetError) => err.code === "MESSAGE_INVALID",
    );
    assert.equal(chatBodies().length, 0);
  });
});

describe("token estimates of tool turns", () => {
  it("count the tool definitions and the calls' arguments, so a reservation covers them", async () => {
    const { estimateInputTokens } = await import("../../protocol/index.js");
    const plain = [{ role: "user" as const, content: "check the site" }];
    const tools = [{ type: "function", function: { name: "http_check", description: "Fetch a URL and report its status", parameters: { type: "object", properties: { url: { type: "string" } } } } }];
    const withCall = [...plain, { role: "assistant" as const, content: "", toolCalls: [{ id: "c1", name: "http_check", arguments: JSON.stringify({ url: "http://127.0.0.1:8080/health/a/long/path" }) }] }];
    assert.ok(estimateInputTokens(plain, tools) > estimateInputTokens(plain) + 10, "definitions counted");
    assert.ok(estimateInputTokens(withCall) > estimateInputTokens([...plain, { role: "assistant" as const, content: "" }]) + 5, "arguments counted");
  });
});
