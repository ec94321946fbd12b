import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { ChatMessage } from "../../protocol/index.js";
import { localEmbedding } from "../../router/local-embedding.js";
import { openAIProvider } from "../../router/openai-provider.js";
import { ProviderFailure, type ModelProvider, type ProviderCall, type ProviderFailureKind } from "../../router/provider.js";
import { OpenAIServer } from "../helpers/openai-server.js";

const MESSAGES: ChatMessage[] = [
  { role: "system", content: "You are terse." },
  { role: "user", content: "Summarise the quarterly report in one line." },
];

function call(model: string, extra: Partial<ProviderCall> = {}): ProviderCall {
  return { model, messages: MESSAGES, maxOutputTokens: 256, timeoutMs: 5_000, ...extra };
}

async function failureOf(promise: Promise<unknown>): Promise<ProviderFailure> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof ProviderFailure, `expected a ProviderFailure, got ${String(err)}`);
    return err;
  }
  assert.fail("the call succeeded");
}

describe("openAIProvider against a real OpenAI-compatible server", () => {
  let server: OpenAIServer;
  let provider: ModelProvider;

  before(async () => {
    server = await OpenAIServer.start();
    provider = openAIProvider({ deploymentId: "local-a", baseUrl: server.baseUrl });
  });
  after(async () => {
    await server.close();
  });

  it("maps the answer and its usage, cached tokens included", async () => {
    server.script("op-usage", { content: "Revenue up 4%.", usage: { prompt_tokens: 120, completion_tokens: 7, cached_tokens: 64 } });
    const answer = await provider.complete(call("op-usage", { temperature: 0.2 }));
    assert.deepEqual(answer, { text: "Revenue up 4%.", model: "op-usage", usage: { inputTokens: 120, outputTokens: 7, cachedTokens: 64 } });
    assert.equal(provider.simulated, false);
    assert.equal(provider.deploymentId, "local-a");

    const sent = server.requests.find((r) => r.model === "op-usage");
    assert.equal(sent?.path, "/v1/chat/completions");
    assert.deepEqual(sent?.body, { model: "op-usage", messages: MESSAGES, max_tokens: 256, temperature: 0.2 });
  });

  it("sends the given key as a bearer token, and a placeholder without one", async () => {
    await provider.complete(call("op-auth-key", { apiKey: "sk-agent-orion" }));
    await provider.complete(call("op-auth-key"));
    const headers = server.requests.filter((r) => r.model === "op-auth-key").map((r) => r.authorization);
    assert.equal(headers.length, 2);
    assert.equal(headers[0], "Bearer sk-agent-orion");
    assert.ok(headers[1]?.startsWith("Bearer "));
    assert.notEqual(headers[1], "Bearer sk-agent-orion");
  });

  it("asks for structured output as a strict json_schema response format and passes tools through", async () => {
    const schema = { type: "object", properties: { verdict: { type: "string" } }, required: ["verdict"], additionalProperties: false };
    const tools = [{ type: "function", function: { name: "lookup", parameters: { type: "object", properties: {} } } }];
    server.script("op-schema", { content: '{"verdict":"ship"}' });
    const answer = await provider.complete(call("op-schema", { responseSchema: { name: "verdict", schema }, tools }));
    assert.equal(answer.text, '{"verdict":"ship"}');
    const sent = server.requests.find((r) => r.model === "op-schema");
    assert.ok(sent && typeof sent.body === "object" && sent.body !== null);
    assert.deepEqual(Reflect.get(sent.body, "response_format"), { type: "json_schema", json_schema: { name: "verdict", schema, strict: true } });
    assert.deepEqual(Reflect.get(sent.body, "tools"), tools);
  });

  it("makes one attempt only: the SDK does not retry behind the router's back", async () => {
    server.script("op-once", { status: 500 }, { status: 500 }, { status: 500 });
    await failureOf(provider.complete(call("op-once")));
    assert.equal(server.requests.filter((r) => r.model === "op-once").length, 1);
  });

  const statusCases: { name: string; status: number; kind: ProviderFailureKind; fallsBack: boolean; coolsDown: boolean }[] = [
    { name: "500", status: 500, kind: "server_error", fallsBack: true, coolsDown: true },
    { name: "503", status: 503, kind: "server_error", fallsBack: true, coolsDown: true },
    { name: "401", status: 401, kind: "auth", fallsBack: true, coolsDown: false },
    { name: "403", status: 403, kind: "auth", fallsBack: true, coolsDown: false },
    { name: "400", status: 400, kind: "bad_request", fallsBack: false, coolsDown: false },
    { name: "404", status: 404, kind: "bad_request", fallsBack: false, coolsDown: false },
    { name: "408", status: 408, kind: "timeout", fallsBack: true, coolsDown: true },
  ];
  for (const c of statusCases) {
    it(`classifies a ${c.name} as ${c.kind}`, async () => {
      const model = `op-status-${c.status}`;
      server.script(model, { status: c.status, content: `scripted ${c.status}` });
      const failure = await failureOf(provider.complete(call(model)));
      assert.equal(failure.kind, c.kind);
      assert.equal(failure.status, c.status);
      assert.equal(failure.deploymentId, "local-a");
      assert.equal(failure.fallsBack, c.fallsBack);
      assert.equal(failure.coolsDown, c.coolsDown);
      assert.match(failure.message, new RegExp(`scripted ${c.status}`));
    });
  }

  it("classifies a 429 as rate_limit and keeps its Retry-After", async () => {
    server.script("op-429", { status: 429, headers: { "retry-after": "7" } });
    const failure = await failureOf(provider.complete(call("op-429")));
    assert.equal(failure.kind, "rate_limit");
    assert.equal(failure.retryAfterMs, 7_000);
    assert.equal(failure.fallsBack, true);
  });

  it("prefers retry-after-ms and reads a Retry-After given as an HTTP date against the injected clock", async () => {
    const now = Date.parse("2030-01-01T00:00:00Z");
    const clocked = openAIProvider({ deploymentId: "local-clock", baseUrl: server.baseUrl, clock: { now: () => now } });
    server.script(
      "op-429-forms",
      { status: 429, headers: { "retry-after-ms": "1500", "retry-after": "9" } },
      { status: 429, headers: { "retry-after": new Date(now + 30_000).toUTCString() } },
      { status: 429 },
    );
    assert.equal((await failureOf(clocked.complete(call("op-429-forms")))).retryAfterMs, 1_500);
    assert.equal((await failureOf(clocked.complete(call("op-429-forms")))).retryAfterMs, 30_000);
    assert.equal((await failureOf(clocked.complete(call("op-429-forms")))).retryAfterMs, undefined);
  });

  it("times out a hanging provider within about timeoutMs", async () => {
    server.script("op-hang", { hang: true });
    const started = performance.now();
    const failure = await failureOf(provider.complete(call("op-hang", { timeoutMs: 300 })));
    const elapsed = performance.now() - started;
    assert.equal(failure.kind, "timeout");
    assert.equal(failure.fallsBack, true);
    assert.ok(elapsed >= 250 && elapsed < 2_000, `timed out after ${elapsed} ms`);
  });

  it("times out a provider whose answer comes too late", async () => {
    server.script("op-slow", { delayMs: 1_500 });
    const failure = await failureOf(provider.complete(call("op-slow", { timeoutMs: 200 })));
    assert.equal(failure.kind, "timeout");
  });

  it("counts a body that is not JSON as malformed, whatever its content type says", async () => {
    server.script(
      "op-bad-json",
      { rawBody: '{"choices": [ {"message": ' },
      { rawBody: "upstream said hello", headers: { "content-type": "text/plain" } },
    );
    const labelledJson = await failureOf(provider.complete(call("op-bad-json")));
    assert.equal(labelledJson.kind, "malformed");
    assert.ok(labelledJson.cause instanceof SyntaxError);
    const plainText = await failureOf(provider.complete(call("op-bad-json")));
    assert.equal(plainText.kind, "malformed");
    assert.match(plainText.message, /non-JSON body/);
    assert.equal(labelledJson.fallsBack && plainText.fallsBack, true);
  });

  it("counts a 200 without choices, or without text, as malformed", async () => {
    server.script(
      "op-no-choices",
      { rawBody: JSON.stringify({ id: "x", object: "chat.completion", model: "op-no-choices" }) },
      { rawBody: JSON.stringify({ choices: [] }) },
      { rawBody: JSON.stringify({ choices: [{ message: { role: "assistant", content: null } }] }) },
      { rawBody: JSON.stringify({ choices: [{ message: { role: "assistant", content: 42 } }] }) },
    );
    for (let i = 0; i < 4; i++) assert.equal((await failureOf(provider.complete(call("op-no-choices")))).kind, "malformed");
  });

  it("returns tool calls, and estimates usage when the endpoint reports none", async () => {
    const toolCalls = [{ id: "call_1", type: "function", function: { name: "lookup", arguments: '{"q":"revenue"}' } }];
    server.script("op-tools", { rawBody: JSON.stringify({ choices: [{ message: { role: "assistant", content: null, tool_calls: toolCalls } }] }) });
    const answer = await provider.complete(call("op-tools"));
    assert.equal(answer.text, "");
    assert.deepEqual(answer.toolCalls, toolCalls);
    assert.equal(answer.model, "op-tools");
    assert.ok(answer.usage.inputTokens > 0 && answer.usage.outputTokens > 0);
  });

  it("reports a refused connection as network", async () => {
    const gone = await OpenAIServer.start();
    const baseUrl = gone.baseUrl;
    await gone.close();
    const failure = await failureOf(openAIProvider({ deploymentId: "gone", baseUrl }).complete(call("op-gone")));
    assert.equal(failure.kind, "network");
    assert.equal(failure.deploymentId, "gone");
  });

  it("rejects with the caller's reason, not a ProviderFailure, when the caller cancels", async () => {
    server.script("op-cancel", { hang: true });
    const controller = new AbortController();
    const pending = provider.complete(call("op-cancel", { signal: controller.signal }));
    setTimeout(() => controller.abort(new Error("router stopping")), 50);
    await assert.rejects(pending, (err: unknown) => err instanceof Error && !(err instanceof ProviderFailure) && err.message === "router stopping");
  });

  it("embeds in order, as floats", async () => {
    const texts = ["alpha report", "beta summary", "gamma"];
    const vectors = await provider.embed(texts, "op-embed", "sk-embed");
    assert.deepEqual(vectors, texts.map((text) => localEmbedding(text)));
    const sent = server.requests.find((r) => r.model === "op-embed");
    assert.equal(sent?.path, "/v1/embeddings");
    assert.equal(sent?.authorization, "Bearer sk-embed");
    assert.deepEqual(sent?.body, { model: "op-embed", input: texts, encoding_format: "float" });
  });

  it("classifies embedding failures the same way", async () => {
    server.script("op-embed-bad", { status: 502 }, { rawBody: JSON.stringify({ data: [] }) }, { hang: true });
    assert.equal((await failureOf(provider.embed(["x"], "op-embed-bad"))).kind, "server_error");
    assert.equal((await failureOf(provider.embed(["x"], "op-embed-bad"))).kind, "malformed");
    assert.equal((await failureOf(provider.embed(["x"], "op-embed-bad", undefined, 200))).kind, "timeout");
  });
});
