import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { z } from "zod";
import { answerBySchema, minimalInstance, OpenAIServer } from "../../harness/index.js";

describe("the scripted provider's structured answers", () => {
  it("gives the smallest value a schema accepts: required properties, first enum value, empty arrays", () => {
    const schema = {
      type: "object",
      properties: {
        summary: { type: "string" },
        severity: { type: "string", enum: ["info", "warning", "critical"] },
        sites: { type: "array", items: { type: "string" } },
        count: { type: "integer" },
        optional: { type: "string" },
      },
      required: ["summary", "severity", "sites", "count"],
      additionalProperties: false,
    };
    assert.deepEqual(minimalInstance(schema), { summary: "all clear", severity: "info", sites: [], count: 0 });
    assert.deepEqual(minimalInstance({ type: "array", items: { type: "number" }, minItems: 2 }), [0, 0]);
  });

  it("answers a json_schema request over HTTP with that instance, and leaves other requests to the default", async () => {
    const server = await OpenAIServer.start();
    try {
      server.answerWith(answerBySchema);
      const post = async (body: unknown) => {
        const res = await fetch(`${server.baseUrl}/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
        return z.object({ choices: z.array(z.object({ message: z.object({ content: z.string() }) })) }).parse(await res.json()).choices[0]?.message.content;
      };
      const schema = { type: "object", properties: { plan: { type: "array", items: { type: "object" } } }, required: ["plan"] };
      const structured = await post({ model: "m", messages: [{ role: "user", content: "plan" }], response_format: { type: "json_schema", json_schema: { name: "p", schema, strict: true } } });
      assert.deepEqual(JSON.parse(structured ?? "null"), { plan: [] });
      assert.equal(await post({ model: "m", messages: [{ role: "user", content: "hi" }] }), "ok from m");
      // a queued script still comes first
      server.script("m", { content: "scripted" });
      assert.equal(await post({ model: "m", messages: [{ role: "user", content: "plan" }], response_format: { type: "json_schema", json_schema: { name: "p", schema } } }), "scripted");
    } finally {
      await server.close();
    }
  });
});
