import { z } from "zod";
import type { RecordedRequest, ScriptedAnswer } from "./openai-server.js";

/*
 * A scripted provider's answer to a structured-output request: the smallest JSON value its response_format schema
 * accepts (required properties only, the first enum value, empty arrays, short strings). Long runs (bench/fleet-day) send
 * hundreds of calls with a dozen schemas; scripting each in advance would tie the run to an order it does not have.
 */

const JsonSchemaFormat = z.object({
  response_format: z.object({ type: z.literal("json_schema"), json_schema: z.object({ schema: z.unknown() }) }),
});

const Node = z.looseObject({
  type: z.union([z.string(), z.array(z.string())]).optional(),
  enum: z.array(z.unknown()).optional(),
  const: z.unknown().optional(),
  properties: z.record(z.string(), z.unknown()).optional(),
  required: z.array(z.string()).optional(),
  minItems: z.number().optional(),
  items: z.unknown().optional(),
  anyOf: z.array(z.unknown()).optional(),
  oneOf: z.array(z.unknown()).optional(),
});

/** The smallest value the (JSON) schema accepts; `text` fills the strings so a report reads as something. */
export function minimalInstance(schema: unknown, text = "all clear"): unknown {
  const parsed = Node.safeParse(schema);
  if (!parsed.success) return null;
  const node = parsed.data;
  if (node.const !== undefined) return node.const;
  if (node.enum && node.enum.length > 0) return node.enum[0];
  const alternative = node.anyOf?.[0] ?? node.oneOf?.[0];
  if (alternative !== undefined) return minimalInstance(alternative, text);
  const type = Array.isArray(node.type) ? (node.type.find((t) => t !== "null") ?? "null") : (node.type ?? (node.properties ? "object" : "string"));
  switch (type) {
    case "object": {
      const out: Record<string, unknown> = {};
      for (const key of node.required ?? []) out[key] = minimalInstance(node.properties?.[key], text);
      return out;
    }
    case "array":
      return Array.from({ length: node.minItems ?? 0 }, () => minimalInstance(node.items, text));
    case "string":
      return text;
    case "number":
    case "integer":
      return 0;
    case "boolean":
      return false;
    default:
      return null;
  }
}

/** For `OpenAIServer.answerWith`: a structured request gets its schema's smallest instance; others the default answer. */
export function answerBySchema(request: RecordedRequest): ScriptedAnswer | undefined {
  const format = JsonSchemaFormat.safeParse(request.body);
  if (!format.success) return undefined;
  return { content: JSON.stringify(minimalInstance(format.data.response_format.json_schema.schema)) };
}
