import type { ChatMessage, TokenUsage } from "../protocol/index.js";

/**
 * What the router asks of a model endpoint, and nothing more: the router owns retries, fallback, caching and billing,
 * so a provider makes exactly one attempt and reports how it went. Real endpoints and the simulated one implement the
 * same interface, so the router never knows (beyond the `simulated` label) which one it is talking to.
 */

export interface ProviderCall {
  model: string;
  messages: ChatMessage[];
  maxOutputTokens: number;
  temperature?: number;
  /** structured output: asked for as a strict JSON-schema response format; validating the answer is the caller's job */
  responseSchema?: { name: string; schema: Record<string, unknown> };
  /** tool definitions, passed to the endpoint untouched */
  tools?: unknown[];
  /** the whole attempt, connection to last byte; past it the call fails with kind "timeout" */
  timeoutMs: number;
  /** the key for this call (the tier's or the agent's own); absent for endpoints that need none */
  apiKey?: string;
  /** cancels the call; a cancelled call rejects with the signal's reason, not with a ProviderFailure */
  signal?: AbortSignal;
}

/** A tool call the model asked for, in the OpenAI wire shape. */
export interface ProviderToolCall {
  id: string;
  type: string;
  function: { name: string; arguments: string };
}

export interface ProviderAnswer {
  text: string;
  usage: TokenUsage;
  /** the model that answered, as the endpoint names it (may differ from the one asked for, e.g. a dated snapshot) */
  model: string;
  /** present when the model answered a tool-calling turn with calls instead of (or besides) text */
  toolCalls?: ProviderToolCall[];
}

export interface ModelProvider {
  /** the deployment this provider talks to: the key its health and its failures are recorded under */
  readonly deploymentId: string;
  /** true when no model is called and tokens and cost are estimates */
  readonly simulated: boolean;
  complete(call: ProviderCall): Promise<ProviderAnswer>;
  embed(texts: string[], model: string, apiKey?: string, timeoutMs?: number): Promise<number[][]>;
}

export type ProviderFailureKind = "rate_limit" | "server_error" | "timeout" | "malformed" | "auth" | "bad_request" | "network";

/**
 * One failed attempt at one deployment. Router-internal: the router decides from `fallsBack` and `coolsDown` what to do
 * next and maps whatever finally escapes to a FleetError (PROVIDER_FAILED / PROVIDER_WAITING).
 */
export class ProviderFailure extends Error {
  override readonly name = "ProviderFailure";
  readonly kind: ProviderFailureKind;
  readonly deploymentId: string;
  /** the HTTP status, when the endpoint answered at all */
  readonly status: number | undefined;
  /** how long the endpoint asked us to stay away (Retry-After), when it said */
  readonly retryAfterMs: number | undefined;

  constructor(
    kind: ProviderFailureKind,
    deploymentId: string,
    message: string,
    options: { status?: number; retryAfterMs?: number; cause?: unknown } = {},
  ) {
    super(`${deploymentId}: ${kind}: ${message}`, { cause: options.cause });
    this.kind = kind;
    this.deploymentId = deploymentId;
    this.status = options.status;
    this.retryAfterMs = options.retryAfterMs;
  }

  /**
   * Whether the next deployment along the chain may serve the same request.
   *
   * Transient kinds obviously do. `auth` does too: a refused key belongs to one endpoint (or to one agent's key for one
   * tier), and the next deployment has its own base URL and its own key, so trying it is the only way the step can
   * still succeed; retrying the same deployment would be pointless, which is the caller's business, not this flag's.
   * `bad_request` does not: the request itself was refused (a bad schema, bad tool definitions, too many tokens), the
   * next endpoint speaks the same API and would most likely refuse it the same way, and falling back would only bury a
   * caller's bug under a chain of identical refusals.
   */
  get fallsBack(): boolean {
    return this.kind !== "bad_request";
  }

  /**
   * Whether this failure says something about the deployment's health and so counts towards its cool-down. A refused
   * key says nothing about the endpoint when the key is one agent's own (cooling the deployment down would punish
   * every other agent), and a refused request is the caller's fault; everything else is the endpoint failing.
   */
  get coolsDown(): boolean {
    return this.kind !== "auth" && this.kind !== "bad_request";
  }
}
