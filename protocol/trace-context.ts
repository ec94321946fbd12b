import { context, isSpanContextValid, ROOT_CONTEXT, trace, TraceFlags, type Context, type SpanContext } from "@opentelemetry/api";

/*
 * W3C trace context over NATS: the `traceparent` header (HEADERS.traceparent) carries the active span from one process to
 * the next (an agent's model call to the router, a delegated task to its agent). Only `@opentelemetry/api` is used here:
 * with telemetry off no context manager is registered, the active context is always the root, and no header is written.
 */

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The span context a `traceparent` value names; undefined for an absent, malformed or all-zero one. */
export function parseTraceparent(value: string | undefined): SpanContext | undefined {
  const m = value ? TRACEPARENT.exec(value.trim()) : null;
  if (!m || m[1] === "ff") return undefined;
  const spanContext: SpanContext = { traceId: m[2]!, spanId: m[3]!, traceFlags: parseInt(m[4]!, 16) & TraceFlags.SAMPLED, isRemote: true };
  return isSpanContextValid(spanContext) ? spanContext : undefined;
}

export function formatTraceparent(spanContext: SpanContext): string {
  return `00-${spanContext.traceId}-${spanContext.spanId}-0${(spanContext.traceFlags & TraceFlags.SAMPLED).toString(16)}`;
}

/** The `traceparent` of the span active here, if any. */
export function activeTraceparent(): string | undefined {
  const spanContext = trace.getSpanContext(context.active());
  return spanContext && isSpanContextValid(spanContext) ? formatTraceparent(spanContext) : undefined;
}

/** The context to start a span in for a message that carried `traceparent`: the remote parent, else a new trace. */
export function contextOfTraceparent(value: string | undefined): Context {
  const remote = parseTraceparent(value);
  return remote ? trace.setSpanContext(ROOT_CONTEXT, remote) : ROOT_CONTEXT;
}

/** Runs `fn` with the remote parent active (nothing changes when the message carried none). */
export function withTraceparent<T>(value: string | undefined, fn: () => T): T {
  const remote = parseTraceparent(value);
  return remote ? context.with(trace.setSpanContext(ROOT_CONTEXT, remote), fn) : fn();
}
