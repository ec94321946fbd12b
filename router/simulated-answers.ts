import { createHash } from "node:crypto";
import type { ChatMessage } from "../protocol/index.js";
import type { ProviderToolCall } from "./provider.js";

/*
 * What the simulated provider answers, made from the call alone (no model, no randomness): the same call always gets the
 * same answer, and every answer says it is a simulation.
 * - A structured answer is schema-conformant and drawn from the prompt: strings quote the request ("[simulated] …"), an
 *   enum takes the value the prompt mentions most (a triage of a "critical" finding says critical), the rest is the
 *   smallest value the schema accepts.
 * - A tool turn calls a tool only when the request names it (a task "restore demo-site with demo_site_restart: http://…"):
 *   its string arguments are filled from the request (a URL field gets the request's first URL); once tool results are
 *   in, the answer is text that reports them. Anything less explicit is answered in text, as before.
 */

const SNIPPET_CHARS = 160;
// A self-referencing schema would otherwise recurse forever; nothing real nests deeper than this.
const MAX_SCHEMA_DEPTH = 16;
const URL_PATTERN = /https?:\/\/[^\s"'<>)\]]+/;

/** The last user message: the request a step answers (its prompt's news, the task's text). */
export function requestText(messages: readonly ChatMessage[]): string {
  const lastUser = [...messages].reverse().find((message) => message.role === "user") ?? messages.at(-1);
  return lastUser?.content ?? "";
}

function lastUserIndex(messages: readonly ChatMessage[]): number {
  for (let i = messages.length - 1; i >= 0; i--) if (messages[i]?.role === "user") return i;
  return -1;
}

export function snippet(text: string, chars = SNIPPET_CHARS): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > chars ? `${flat.slice(0, chars)}…` : flat;
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
 * What a string answer quotes: the summaries the prompt's JSON carries (a triage of findings quotes the findings), else
 * the start of the prompt.
 */
function gist(prompt: string): string {
  const summaries = new Set<string>();
  for (const match of prompt.matchAll(/"(?:summary|title)"\s*:\s*"((?:[^"\\]|\\.)*)"/g)) {
    try {
      const value: unknown = JSON.parse(`"${match[1] ?? ""}"`);
      if (typeof value === "string" && value.trim() !== "") summaries.add(value);
    } catch {
      // not a JSON string after all: the snippet below will do
    }
  }
  return summaries.size > 0 ? snippet([...summaries].join("; ")) : snippet(prompt);
}

/** How often a word occurs in the text as a whole word, case-insensitively. */
function mentions(text: string, word: string): number {
  const escaped = word.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return text.match(new RegExp(`(?<![A-Za-z0-9_])${escaped}(?![A-Za-z0-9_])`, "gi"))?.length ?? 0;
}

/** The enum value the prompt mentions most (the first value when none is mentioned or strings are not the point). */
function mentionedValue(values: readonly unknown[], prompt: string): unknown {
  let best = values[0];
  let most = 0;
  for (const value of values) {
    if (typeof value !== "string") continue;
    const count = mentions(prompt, value);
    if (count > most) [best, most] = [value, count];
  }
  return best;
}

/**
 * A value the schema accepts, for the schemas structured output uses in practice: required properties filled by type,
 * strings from the prompt (within minLength/maxLength), the mentioned enum value, the first branch of a union,
 * 0 / false / [] (minItems respected) / null. Formats and patterns are not.
 */
export function promptedValue(schema: unknown, root: Record<string, unknown>, prompt: string, depth = 0): unknown {
  if (!isRecord(schema) || depth > MAX_SCHEMA_DEPTH) return null;
  if ("const" in schema) return schema.const;
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return mentionedValue(schema.enum, prompt);
  if (typeof schema.$ref === "string") return promptedValue(resolveRef(schema.$ref, root), root, prompt, depth + 1);
  for (const key of ["anyOf", "oneOf", "allOf"]) {
    const branches = schema[key];
    if (Array.isArray(branches) && branches.length > 0) return promptedValue(branches[0], root, prompt, depth + 1);
  }
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") ?? schema.type[0] : schema.type;
  switch (type) {
    case "object": {
      const value: Record<string, unknown> = {};
      const properties = isRecord(schema.properties) ? schema.properties : {};
      const required = Array.isArray(schema.required) ? schema.required : [];
      for (const name of required) {
        if (typeof name === "string") value[name] = promptedValue(properties[name], root, prompt, depth + 1);
      }
      return value;
    }
    case "array": {
      const count = Math.max(0, numberField(schema, "minItems") ?? 0);
      return Array.from({ length: count }, () => promptedValue(schema.items, root, prompt, depth + 1));
    }
    case "string": {
      const min = Math.max(0, numberField(schema, "minLength") ?? 0);
      const max = numberField(schema, "maxLength") ?? Number.POSITIVE_INFINITY;
      const text = `[simulated] ${gist(prompt)}`;
      const fitted = text.length > max ? text.slice(0, Math.max(0, max)) : text;
      return fitted.length < min ? fitted.padEnd(min, "x") : fitted;
    }
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

interface OfferedFunction {
  name: string;
  parameters: Record<string, unknown>;
}

function offeredFunctions(tools: readonly unknown[]): OfferedFunction[] {
  const out: OfferedFunction[] = [];
  for (const tool of tools) {
    if (!isRecord(tool) || !isRecord(tool.function) || typeof tool.function.name !== "string") continue;
    out.push({ name: tool.function.name, parameters: isRecord(tool.function.parameters) ? tool.function.parameters : {} });
  }
  return out;
}

/**
 * The tool call a simulated step makes: only on the step's first turn (no tool result after the request yet), and only
 * for a tool the request names, whose required arguments the request can fill. Undefined otherwise.
 */
export function simulatedToolCalls(messages: readonly ChatMessage[], tools: readonly unknown[] | undefined): ProviderToolCall[] | undefined {
  if (!tools || tools.length === 0) return undefined;
  const lastUser = lastUserIndex(messages);
  if (lastUser < 0 || messages.slice(lastUser + 1).some((m) => m.role === "tool" || m.role === "assistant")) return undefined;
  const request = messages[lastUser]?.content ?? "";
  const named = offeredFunctions(tools)
    .map((fn) => ({ fn, at: request.search(new RegExp(`(?<![A-Za-z0-9_])${fn.name}(?![A-Za-z0-9_])`)) }))
    .filter((n) => n.at >= 0)
    .sort((a, b) => a.at - b.at)[0];
  if (!named) return undefined;
  const args = argumentsFrom(named.fn.parameters, request);
  if (!args) return undefined;
  const argumentsText = JSON.stringify(args);
  const id = `call_sim_${createHash("sha256").update(`${named.fn.name}\u0000${argumentsText}\u0000${request}`).digest("hex").slice(0, 16)}`;
  return [{ id, type: "function", function: { name: named.fn.name, arguments: argumentsText } }];
}

/** The arguments a request can fill: URL-ish fields get its first URL, a host field that URL's host; undefined when a required one stays empty. */
function argumentsFrom(parameters: Record<string, unknown>, request: string): Record<string, unknown> | undefined {
  const properties = isRecord(parameters.properties) ? parameters.properties : {};
  const required = new Set(Array.isArray(parameters.required) ? parameters.required.filter((r): r is string => typeof r === "string") : []);
  const url = URL_PATTERN.exec(request)?.[0]?.replace(/[.,;:]+$/, "");
  const args: Record<string, unknown> = {};
  for (const [name, schema] of Object.entries(properties)) {
    const isString = isRecord(schema) && (schema.type === "string" || (Array.isArray(schema.type) && schema.type.includes("string")));
    let value: string | undefined;
    if (isString && url && /url|uri|href|site|endpoint/i.test(name)) value = url;
    else if (isString && url && /host/i.test(name)) value = new URL(url).hostname;
    if (value !== undefined) args[name] = value;
    else if (required.has(name)) return undefined;
  }
  return args;
}

/** The text a simulated step ends with once its tool calls are answered: what the tools said, labelled. */
export function afterToolsText(messages: readonly ChatMessage[], model: string): string | undefined {
  const lastUser = lastUserIndex(messages);
  const results = messages.slice(lastUser + 1).filter((m) => m.role === "tool");
  if (results.length === 0) return undefined;
  const calls = new Map(messages.slice(lastUser + 1).flatMap((m) => (m.toolCalls ?? []).map((c) => [c.id, c.name] as const)));
  const said = results.map((r) => `${calls.get(r.toolCallId ?? "") ?? "tool"}: ${snippet(r.content, 240)}`);
  return `[simulated] no model was called (${model}); this step's tool calls: ${said.join(" | ")}`;
}
