import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ChatMessage } from "../../protocol/index.js";
import { cosineSimilarity, localEmbedding } from "../../router/local-embedding.js";
import type { ProviderCall } from "../../router/provider.js";
import { simulatedProvider } from "../../router/simulated-provider.js";
import { estimateInputTokens } from "../../protocol/index.js";

const MESSAGES: ChatMessage[] = [
  { role: "system", content: "You triage incoming tickets." },
  { role: "user", content: "Customer reports the nightly export is missing two columns." },
];

function call(extra: Partial<ProviderCall> = {}): ProviderCall {
  return { model: "sim-model", messages: MESSAGES, maxOutputTokens: 1024, timeoutMs: 1_000, ...extra };
}

describe("simulatedProvider", () => {
  it("is labelled simulated and answers deterministically, saying so in the text", async () => {
    const provider = simulatedProvider();
    assert.equal(provider.simulated, true);
    assert.equal(provider.deploymentId, "simulated");
    assert.equal(simulatedProvider("sim-nano").deploymentId, "sim-nano");
    const first = await provider.complete(call());
    const second = await simulatedProvider().complete(call());
    assert.deepEqual(first, second);
    assert.ok(first.text.startsWith("[simulated]"));
    assert.match(first.text, /nightly export/);
    assert.equal(first.model, "sim-model");
  });

  it("estimates input tokens like a budget reservation, and output capped by maxOutputTokens", async () => {
    const provider = simulatedProvider();
    const normal = await provider.complete(call());
    assert.deepEqual(normal.usage, { inputTokens: estimateInputTokens(MESSAGES), outputTokens: 120, cachedTokens: 0 });
    const capped = await provider.complete(call({ maxOutputTokens: 16 }));
    assert.equal(capped.usage.outputTokens, 16);
  });

  it("answers a response schema with a value that satisfies it, drawn from the prompt", async () => {
    const schema = {
      type: "object",
      properties: {
        verdict: { type: "string", enum: ["ship", "hold"] },
        title: { type: "string" },
        code: { type: "string", minLength: 3, maxLength: 5 },
        score: { type: "number" },
        priority: { type: "integer", minimum: 1 },
        urgent: { type: "boolean" },
        tags: { type: "array", items: { type: "string" } },
        owner: { type: ["string", "null"] },
        kind: { const: "ticket" },
        detail: { $ref: "#/$defs/detail" },
        choice: { anyOf: [{ type: "integer" }, { type: "string" }] },
        optional: { type: "string" },
      },
      required: ["verdict", "title", "code", "score", "priority", "urgent", "tags", "owner", "kind", "detail", "choice"],
      additionalProperties: false,
      $defs: { detail: { type: "object", properties: { steps: { type: "array", minItems: 1, items: { type: "boolean" } } }, required: ["steps"] } },
    };
    const answer = await simulatedProvider().complete(call({ responseSchema: { name: "triage", schema } }));
    const quote = "[simulated] Customer reports the nightly export is missing two columns.";
    assert.deepEqual(JSON.parse(answer.text), {
      verdict: "ship",
      title: quote,
      code: "[simu",
      score: 0,
      priority: 1,
      urgent: false,
      tags: [],
      owner: quote,
      kind: "ticket",
      detail: { steps: [false] },
      choice: 0,
    });
  });

  it("picks the enum value the prompt mentions and quotes the summaries its JSON carries", async () => {
    const schema = {
      type: "object",
      properties: { severity: { type: "string", enum: ["info", "warning", "critical"] }, summary: { type: "string" } },
      required: ["severity", "summary"],
    };
    const findings = [{ subject: "demo-site", severity: "critical", summary: "http://127.0.0.1:8080/ is down (503)" }];
    const messages: ChatMessage[] = [{ role: "user", content: `Our site checks found these problems:\n${JSON.stringify(findings)}\nWrite a summary.` }];
    const answer = await simulatedProvider().complete(call({ messages, responseSchema: { name: "triage", schema } }));
    assert.deepEqual(JSON.parse(answer.text), { severity: "critical", summary: "[simulated] http://127.0.0.1:8080/ is down (503)" });
  });

  it("calls a tool the request names, with its URL, and then reports what the tool said", async () => {
    const tools = [
      { type: "function", function: { name: "http_check", parameters: { type: "object", properties: { url: { type: "string" } }, required: ["url"] } } },
      { type: "function", function: { name: "demo_site_restart", parameters: { type: "object", properties: { url: { type: "string" } }, required: ["url"] } } },
    ];
    const request: ChatMessage = { role: "user", content: "Restore demo-site with demo_site_restart: http://127.0.0.1:8080/ is down (503)" };
    const first = await simulatedProvider().complete(call({ messages: [MESSAGES[0] as ChatMessage, request], tools }));
    assert.equal(first.toolCalls?.length, 1);
    assert.equal(first.toolCalls?.[0]?.function.name, "demo_site_restart");
    assert.deepEqual(JSON.parse(first.toolCalls?.[0]?.function.arguments ?? ""), { url: "http://127.0.0.1:8080/" });
    const id = first.toolCalls?.[0]?.id ?? "";
    const after = await simulatedProvider().complete(
      call({
        messages: [MESSAGES[0] as ChatMessage, request, { role: "assistant", content: "", toolCalls: [{ id, name: "demo_site_restart", arguments: "{}" }] }, { role: "tool", toolCallId: id, content: "proposal p-1 submitted" }],
        tools,
      }),
    );
    assert.equal(after.toolCalls, undefined);
    assert.match(after.text, /^\[simulated\].*demo_site_restart: proposal p-1 submitted/);
    // a request that names no tool gets text, as a model that needs no tool would answer
    const plain = await simulatedProvider().complete(call({ tools }));
    assert.equal(plain.toolCalls, undefined);
    assert.ok(plain.text.startsWith("[simulated]"));
  });

  it("survives a self-referencing schema", async () => {
    const schema = { type: "object", properties: { next: { $ref: "#" } }, required: ["next"] };
    const answer = await simulatedProvider().complete(call({ responseSchema: { name: "chain", schema } }));
    assert.doesNotThrow(() => JSON.parse(answer.text));
  });

  it("rejects with the caller's reason when already cancelled", async () => {
    const controller = new AbortController();
    controller.abort(new Error("stopping"));
    await assert.rejects(simulatedProvider().complete(call({ signal: controller.signal })), /stopping/);
  });

  it("embeds locally: deterministic, unit length, similar texts close and different texts far", async () => {
    const provider = simulatedProvider();
    const [a, b, c] = await provider.embed(
      ["Summarise the Q3 revenue report for the board", "summarise the  Q3 revenue report for the board!", "Restart the staging database cluster"],
      "any-model",
    );
    assert.ok(a && b && c);
    assert.equal(a.length, 256);
    assert.deepEqual(a, localEmbedding("Summarise the Q3 revenue report for the board"));
    assert.ok(Math.abs(Math.hypot(...a) - 1) < 1e-9);
    assert.ok(cosineSimilarity(a, b) > 0.9, `near-duplicates: ${cosineSimilarity(a, b)}`);
    assert.ok(cosineSimilarity(a, c) < 0.5, `unrelated: ${cosineSimilarity(a, c)}`);
    assert.ok(Math.abs(cosineSimilarity(a, a) - 1) < 1e-9);
  });
});

describe("localEmbedding and cosineSimilarity", () => {
  it("ignores case and whitespace layout", () => {
    assert.deepEqual(localEmbedding("Hello   World\n"), localEmbedding("hello world"));
  });

  it("gives an empty text a zero vector that is similar to nothing", () => {
    const empty = localEmbedding("   ");
    assert.ok(empty.every((value) => value === 0));
    assert.equal(cosineSimilarity(empty, localEmbedding("anything")), 0);
  });

  it("honours the dimensions and refuses to compare vectors of different lengths", () => {
    assert.equal(localEmbedding("short text", 64).length, 64);
    assert.throws(() => cosineSimilarity(localEmbedding("a", 64), localEmbedding("a")), RangeError);
    assert.throws(() => localEmbedding("a", 0), RangeError);
  });

  it("is not fooled by vectors that are not unit length", () => {
    assert.ok(Math.abs(cosineSimilarity([3, 4], [6, 8]) - 1) < 1e-12);
    assert.ok(Math.abs(cosineSimilarity([1, 0], [0, 5])) < 1e-12);
  });
});
