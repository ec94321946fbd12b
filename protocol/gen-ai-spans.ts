import { context, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span, type Tracer } from "@opentelemetry/api";

/*
 * Spans after OpenTelemetry's GenAI semantic conventions: an agent's task is an `invoke_agent` span, each model call a
 * `chat` span, each tool call an `execute_tool` span; attributes by their convention names, ours under `natsfleet.`.
 */

export const GEN_AI = {
  operation: "gen_ai.operation.name",
  provider: "gen_ai.provider.name",
  requestModel: "gen_ai.request.model",
  responseModel: "gen_ai.response.model",
  maxTokens: "gen_ai.request.max_tokens",
  temperature: "gen_ai.request.temperature",
  inputTokens: "gen_ai.usage.input_tokens",
  outputTokens: "gen_ai.usage.output_tokens",
  agentId: "gen_ai.agent.id",
  agentName: "gen_ai.agent.name",
  agentDescription: "gen_ai.agent.description",
  conversationId: "gen_ai.conversation.id",
  toolName: "gen_ai.tool.name",
  toolType: "gen_ai.tool.type",
  toolCallId: "gen_ai.tool.call.id",
  errorType: "error.type",
} as const;

export type GenAiOperation = "invoke_agent" | "chat" | "execute_tool";

export interface GenAiSpanSpec {
  operation: GenAiOperation;
  /** what follows the operation in the span's name: the agent's name, the requested model, the tool's name */
  target: string;
  attributes: Attributes;
  /** the parent; the active context when absent */
  parent?: Context | undefined;
  /** CLIENT for `chat`, INTERNAL otherwise unless given: a tool host's run of a call is the SERVER side of it */
  kind?: SpanKind | undefined;
}

/** error.type: a FleetError's code (or a ProviderFailure's kind), else the error's class name. */
export function errorTypeOf(err: unknown): string {
  if (err && typeof err === "object") {
    const { code, kind, name } = err as { code?: unknown; kind?: unknown; name?: unknown };
    if (typeof code === "string") return code;
    if (typeof kind === "string") return kind;
    if (typeof name === "string" && name) return name;
  }
  return "_OTHER";
}

/** Marks the span failed with a low-cardinality `error.type`. */
export function failSpan(span: Span, errorType: string, message?: string): void {
  span.setAttribute(GEN_AI.errorType, errorType);
  span.setStatus({ code: SpanStatusCode.ERROR, ...(message ? { message } : {}) });
}

/**
 * Runs `fn` in a GenAI span, active for everything `fn` awaits (so a model call inside an agent's span is its child, and
 * carries its `traceparent` to the router). No tracer (telemetry off): `fn` runs alone. A throw ends the span failed.
 */
export async function inGenAiSpan<T>(tracer: Tracer | undefined, spec: GenAiSpanSpec, fn: (span: Span | undefined) => Promise<T>): Promise<T> {
  if (!tracer) return fn(undefined);
  const parent = spec.parent ?? context.active();
  const kind = spec.kind ?? (spec.operation === "chat" ? SpanKind.CLIENT : SpanKind.INTERNAL);
  const span = tracer.startSpan(`${spec.operation} ${spec.target}`, { kind, attributes: { [GEN_AI.operation]: spec.operation, ...spec.attributes } }, parent);
  try {
    return await context.with(trace.setSpan(parent, span), () => fn(span));
  } catch (err) {
    failSpan(span, errorTypeOf(err), err instanceof Error ? err.message.slice(0, 200) : undefined);
    throw err;
  } finally {
    span.end();
  }
}
