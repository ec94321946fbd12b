import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from "openai";
import { z } from "zod";
import { estimateInputTokens, estimateTextTokens, type ChatMessage, nowOf, type Clock } from "../protocol/index.js";
import { ProviderFailure, type ModelProvider, type ProviderAnswer, type ProviderCall, type ProviderFailureKind } from "./provider.js";

/*
 * One OpenAI-compatible endpoint (OpenAI itself, OpenRouter, vLLM, Ollama, LM Studio, ...) behind ModelProvider.
 *
 * The SDK makes exactly one attempt (`maxRetries: 0`): retries, fallback and cool-down are the router's, and an SDK
 * that quietly retried a 429 twice would hide the very signal the router routes on. Every way a call can go wrong ends
 * as a ProviderFailure whose kind the router acts on; the answer is read with zod, because a 200 from a third-party
 * server is still untrusted input.
 *
 * We call the SDK's generic `post` rather than `chat.completions.create`: our messages (in the wire shape `wireMessage`
 * gives them) and tool definitions go to the endpoint as the router received them (the typed params would need casts
 * for opaque tools), and the answer comes back typed `unknown`, which is the truth until zod has read it. Transport, auth
 * headers, timeouts and the error classes are the SDK's all the same.
 */

export interface OpenAIProviderOptions {
  deploymentId: string;
  /** the endpoint's API root, e.g. https://api.openai.com/v1 or http://127.0.0.1:11434/v1 */
  baseUrl: string;
  /** reads the clock for a Retry-After given as an HTTP date */
  clock?: Clock;
}

// Local servers ignore the key, but the SDK refuses to build a client without one.
const PLACEHOLDER_KEY = "no-key";

const ToolCall = z.object({
  id: z.string(),
  type: z.string(),
  function: z.object({ name: z.string(), arguments: z.string() }),
});

const Usage = z.object({
  prompt_tokens: z.number().int().nonnegative(),
  completion_tokens: z.number().int().nonnegative(),
  prompt_tokens_details: z.object({ cached_tokens: z.number().int().nonnegative().nullish() }).nullish(),
});

const ChatCompletion = z.object({
  model: z.string().optional(),
  choices: z
    .array(
      z.object({
        message: z.object({ content: z.string().nullish(), tool_calls: z.array(ToolCall).nullish() }),
      }),
    )
    .min(1),
  // Some compatible servers leave usage out or fill it oddly; a good answer is not thrown away for that (see below).
  usage: Usage.nullish().catch(undefined),
});

const EmbeddingResponse = z.object({
  data: z.array(z.object({ index: z.number().int().nonnegative(), embedding: z.array(z.number()) })),
});

export function openAIProvider(options: OpenAIProviderOptions): ModelProvider {
  const { deploymentId, baseUrl } = options;
  const clock = nowOf(options.clock);
  // one client per key: a client holds its key, and the fleet has a handful of keys (per tier, per agent), not many
  const clients = new Map<string, OpenAI>();

  function clientFor(apiKey: string | undefined): OpenAI {
    const key = apiKey ?? PLACEHOLDER_KEY;
    let client = clients.get(key);
    if (!client) {
      client = new OpenAI({
        apiKey: key,
        baseURL: baseUrl,
        maxRetries: 0,
        // The SDK would otherwise fill these from OPENAI_* variables and send them to whatever endpoint this is; config
        // is the only source of settings here.
        organization: null,
        project: null,
        adminAPIKey: null,
        webhookSecret: null,
        // it would log to the console; every failure is thrown to the router, which logs it once with context
        logLevel: "off",
      });
      clients.set(key, client);
    }
    return client;
  }

  async function attempt<T>(signal: AbortSignal | undefined, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      // A cancelled call is the caller's decision, not the deployment's failure: it must not count towards a cool-down.
      signal?.throwIfAborted();
      throw classify(err, deploymentId, clock);
    }
  }

  return {
    deploymentId,
    simulated: false,

    async complete(call: ProviderCall): Promise<ProviderAnswer> {
      const body: Record<string, unknown> = {
        model: call.model,
        messages: call.messages.map(wireMessage),
        // `max_tokens`, not `max_completion_tokens`: Ollama and LM Studio ignore the newer name, which would silently
        // lift the cap a budget reservation relies on; OpenAI's reasoning models refuse the old one loudly (a 400).
        max_tokens: call.maxOutputTokens,
      };
      if (call.temperature !== undefined) body.temperature = call.temperature;
      if (call.responseSchema) {
        body.response_format = {
          type: "json_schema",
          json_schema: { name: call.responseSchema.name, schema: call.responseSchema.schema, strict: true },
        };
      }
      if (call.tools && call.tools.length > 0) body.tools = call.tools;

      const raw = await attempt(call.signal, () =>
        clientFor(call.apiKey).post<unknown>("/chat/completions", {
          body,
          timeout: timeoutOf(call.timeoutMs),
          maxRetries: 0,
          signal: call.signal ?? null,
        }),
      );
      const parsed = ChatCompletion.safeParse(raw);
      if (!parsed.success) throw new ProviderFailure("malformed", deploymentId, `not a chat completion: ${whyUnreadable(raw, parsed.error)}`, { status: 200, cause: parsed.error });
      const message = parsed.data.choices[0]?.message;
      const toolCalls = message?.tool_calls ?? [];
      const text = message?.content;
      if (typeof text !== "string" && toolCalls.length === 0) {
        throw new ProviderFailure("malformed", deploymentId, "the answer has neither text nor tool calls", { status: 200 });
      }
      const answer: ProviderAnswer = {
        text: text ?? "",
        model: parsed.data.model ?? call.model,
        usage: parsed.data.usage
          ? {
              inputTokens: parsed.data.usage.prompt_tokens,
              outputTokens: parsed.data.usage.completion_tokens,
              cachedTokens: Math.min(parsed.data.usage.prompt_tokens_details?.cached_tokens ?? 0, parsed.data.usage.prompt_tokens),
            }
          : // Without a count from the endpoint the bill is estimated the way a reservation is, rather than billed as free.
            { inputTokens: estimateInputTokens(call.messages, call.tools), outputTokens: estimateTextTokens(text ?? JSON.stringify(toolCalls)), cachedTokens: 0 },
      };
      if (toolCalls.length > 0) answer.toolCalls = toolCalls;
      return answer;
    },

    async embed(texts: string[], model: string, apiKey?: string, timeoutMs = 30_000): Promise<number[][]> {
      const raw = await attempt(undefined, () =>
        clientFor(apiKey).post<unknown>("/embeddings", {
          // floats, explicitly: the SDK's own embeddings call asks for base64 by default, which not every server speaks
          body: { model, input: texts, encoding_format: "float" },
          timeout: timeoutOf(timeoutMs),
          maxRetries: 0,
        }),
      );
      const parsed = EmbeddingResponse.safeParse(raw);
      if (!parsed.success) throw new ProviderFailure("malformed", deploymentId, `not an embedding list: ${whyUnreadable(raw, parsed.error)}`, { status: 200, cause: parsed.error });
      const vectors = [...parsed.data.data].sort((a, b) => a.index - b.index).map((item) => item.embedding);
      if (vectors.length !== texts.length) {
        throw new ProviderFailure("malformed", deploymentId, `asked for ${texts.length} embeddings, got ${vectors.length}`, { status: 200 });
      }
      return vectors;
    },
  };
}

/**
 * One message in the Chat Completions shape. A plain message goes as it always did; an assistant's tool calls go as
 * `tool_calls` (content null when it said nothing: that is how the API itself returns such a turn, and some compatible
 * servers refuse an empty string beside tool calls), and a tool message names the call it answers in `tool_call_id`.
 */
function wireMessage(message: ChatMessage): Record<string, unknown> {
  const wire: Record<string, unknown> = { role: message.role, content: message.content };
  if (message.name !== undefined) wire.name = message.name;
  if (message.toolCalls && message.toolCalls.length > 0) {
    if (message.content === "") wire.content = null;
    wire.tool_calls = message.toolCalls.map((c) => ({ id: c.id, type: "function", function: { name: c.name, arguments: c.arguments } }));
  }
  if (message.toolCallId !== undefined) wire.tool_call_id = message.toolCallId;
  return wire;
}

function timeoutOf(timeoutMs: number): number {
  return Math.max(1, Math.ceil(timeoutMs));
}

/** Why an answer was unreadable, short enough for a log line: a body that is not JSON arrives from the SDK as a string. */
function whyUnreadable(raw: unknown, error: z.ZodError): string {
  if (typeof raw === "string") return `a non-JSON body (${JSON.stringify(raw.slice(0, 120))})`;
  return error.issues
    .slice(0, 3)
    .map((issue) => `${issue.path.join(".") || "(root)"}: ${issue.message}`)
    .join("; ");
}

/** Every way the SDK can fail, as the kind the router acts on. */
function classify(err: unknown, deploymentId: string, clock: () => number = Date.now): ProviderFailure {
  if (err instanceof ProviderFailure) return err;
  const message = err instanceof Error ? err.message : String(err);
  // order matters: the timeout and abort errors are subclasses of APIConnectionError, which is one of APIError
  if (err instanceof APIConnectionTimeoutError) return new ProviderFailure("timeout", deploymentId, message, { cause: err });
  // only reached when the caller's signal did not fire, so something under the SDK aborted the request
  if (err instanceof APIUserAbortError) return new ProviderFailure("network", deploymentId, message, { cause: err });
  if (err instanceof APIConnectionError) return new ProviderFailure("network", deploymentId, message, { cause: err });
  if (err instanceof APIError && typeof err.status === "number") {
    const status = err.status;
    const retryAfterMs = err.headers ? retryAfter(err.headers, clock) : undefined;
    const details = { status, cause: err, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
    return new ProviderFailure(kindOfStatus(status), deploymentId, message, details);
  }
  // The SDK parses a body labelled JSON with JSON.parse and lets its SyntaxError through unwrapped; anything else
  // thrown while reading an answer is the answer's fault too.
  return new ProviderFailure("malformed", deploymentId, `unreadable answer: ${message}`, { cause: err });
}

function kindOfStatus(status: number): ProviderFailureKind {
  if (status === 429) return "rate_limit";
  // the server gave up waiting for our request: a timeout, not a refusal of what we asked
  if (status === 408) return "timeout";
  if (status >= 500) return "server_error";
  if (status === 401 || status === 403) return "auth";
  if (status >= 400) return "bad_request";
  // a 1xx/3xx the fetch layer did not resolve: not an answer the API allows
  return "malformed";
}

/** `retry-after-ms` (OpenAI's own, more precise) or the standard `retry-after` in seconds or as an HTTP date. */
function retryAfter(headers: Headers, clock: () => number): number | undefined {
  const ms = Number.parseFloat(headers.get("retry-after-ms") ?? "");
  if (Number.isFinite(ms) && ms >= 0) return Math.ceil(ms);
  const value = headers.get("retry-after")?.trim();
  if (!value) return undefined;
  if (/^\d+(\.\d+)?$/.test(value)) return Math.ceil(Number(value) * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - clock());
}
