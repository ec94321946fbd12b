import { estimateInputTokens } from "../protocol/index.js";
import { localEmbedding } from "./local-embedding.js";
import type { ModelProvider, ProviderAnswer, ProviderCall } from "./provider.js";

/*
 * The provider of a fleet with no model configured: it calls nothing, so the fleet runs end to end on a laptop with no
 * key, and it says so (`simulated: true`, answers starting "[simulated]") so nobody mistakes its output for a model's.
 * Tokens are estimated the same way a budget reservation is, so the cost report of a simulated day is a fair preview
 * of a real one. Everything is a pure function of the call: the same call always gets the same answer.
 */

/** What a simulated answer is billed as: a typical short completion, so the simulated bill is not absurdly low. */
const SIMULATED_OUTPUT_TOKENS = 120;
const SNIPPET_CHARS = 80;
// A self-referencing schema would otherwise recurse forever; nothing real nests deeper than this.
const MAX_SCHEMA_DEPTH = 16;

export function simulatedProvider(deploymentId = "simulated"): ModelProvider {
  return {
    deploymentId,
    simulated: true,
    async complete(call: ProviderCall): Promise<ProviderAnswer> {
      call.signal?.throwIfAborted();
      const text = call.responseSchema
        ? JSON.stringify(minimalValue(call.responseSchema.schema, call.responseSchema.schema, 0))
        : `[simulated] no model was called (${call.model}); a real answer to "${snippet(call)}" would be here.`;
      return {
        text,
        model: call.model,
        usage: {
          inputTokens: estimateInputTokens(call.messages, call.tools),
          outputTokens: Math.min(call.maxOutputTokens, SIMULATED_OUTPUT_TOKENS),
          cachedTokens: 0,
        },
      };
    },
    async embed(texts: string[]): Promise<number[][]> {
      return texts.map((text) => localEmbedding(text));
    },
  };
}

function snippet(call: ProviderCall): string {
  const lastUser = [...call.messages].reverse().find((message) => message.role === "user") ?? call.messages.at(-1);
  const text = (lastUser?.content ?? "").replace(/\s+/g, " ").trim();
  return text.length > SNIPPET_CHARS ? `${text.slice(0, SNIPPET_CHARS)}…` : text;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function numberField(schema: Record<string, unknown>, key: string): number | undefined {
  const value = schema[key];
  return typeof value === "number" ? value : undefined;
}

/** Follows a local `#/$defs/...` (or `#/definitions/...`) reference; anything else is beyond a simulation. */
function resolveRef(ref: string, root: Record<string, unknown>): Record<string, unknown> | undefined {
  if (!ref.startsWith("#/")) return undefined;
  let node: unknown = root;
  for (const part of ref.slice(2).split("/")) {
    if (!isRecord(node)) return undefined;
    node = node[part.replace(/~1/g, "/").replace(/~0/g, "~")];
  }
  return isRecord(node) ? node : undefined;
}

/**
 * The smallest value the schema accepts, for the schemas structured output uses in practice: required properties
 * filled by type, "" / 0 / false / [] / null, the first enum value, the first branch of a union. Lengths and minimums
 * are respected so that a validator on the caller's side passes; formats and patterns are not.
 */
function minimalValue(schema: unknown, root: Record<string, unknown>, depth: number): unknown {
  if (!isRecord(schema) || depth > MAX_SCHEMA_DEPTH) return null;
  if ("const" in schema) return schema.const;
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0];
  if (typeof schema.$ref === "string") return minimalValue(resolveRef(schema.$ref, root), root, depth + 1);
  for (const key of ["anyOf", "oneOf", "allOf"]) {
    const branches = schema[key];
    if (Array.isArray(branches) && branches.length > 0) return minimalValue(branches[0], root, depth + 1);
  }
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") ?? schema.type[0] : schema.type;
  switch (type) {
    case "object": {
      const value: Record<string, unknown> = {};
      const properties = isRecord(schema.properties) ? schema.properties : {};
      const required = Array.isArray(schema.required) ? schema.required : [];
      for (const name of required) {
        if (typeof name === "string") value[name] = minimalValue(properties[name], root, depth + 1);
      }
      return value;
    }
    case "array": {
      const count = Math.max(0, numberField(schema, "minItems") ?? 0);
      return Array.from({ length: count }, () => minimalValue(schema.items, root, depth + 1));
    }
    case "string":
      return "x".repeat(Math.max(0, numberField(schema, "minLength") ?? 0));
    case "integer":
    case "number": {
      const minimum = numberField(schema, "minimum");
      const exclusive = numberField(schema, "exclusiveMinimum");
      let value = 0;
      if (minimum !== undefined && minimum > value) value = minimum;
      if (exclusive !== undefined && exclusive >= value) value = type === "integer" ? Math.floor(exclusive) + 1 : exclusive + 1;
      return type === "integer" ? Math.ceil(value) : value;
    }
    case "boolean":
      return false;
    default:
      return null;
  }
}
