import { formatSSEErrorEvent, formatSSEEvent, SSE_HEADERS } from "@a2a-js/sdk";
import { A2AError, ERROR_INFO_TYPE, restStatusFor, toRestErrorBody } from "@a2a-js/sdk/errors";
import { JsonRpcTransportHandler } from "@a2a-js/sdk/server";
import type { FastifyReply } from "fastify";
import type { Logger } from "pino";
import { FleetError } from "../../protocol/index.js";
import { a2aError, FleetA2aError, httpStatusOf } from "./a2a-convert.js";

/*
 * How an answer leaves over each HTTP binding: JSON-RPC envelopes and HTTP+JSON `google.rpc.Status`-shaped errors (both
 * built by the SDK's own error mappers), and server-sent events for the streaming operations (the SDK's SSE framing).
 */

export type Binding = "jsonrpc" | "rest";

export const A2A_JSON = "application/a2a+json";
const SSE_KEEPALIVE_MS = 15_000;

/** google.rpc.Code names by HTTP status, for the error body's `status` (our own code is the details' `reason`). */
const RPC_STATUS: Record<number, string> = {
  400: "INVALID_ARGUMENT",
  401: "UNAUTHENTICATED",
  403: "PERMISSION_DENIED",
  404: "NOT_FOUND",
  413: "INVALID_ARGUMENT",
  429: "RESOURCE_EXHAUSTED",
  500: "INTERNAL",
  503: "UNAVAILABLE",
  504: "DEADLINE_EXCEEDED",
};

/** The REST binding's error body and status for anything thrown: the spec's errors by the SDK, ours by the catalogue. */
export function restError(err: unknown): { status: number; body: unknown } {
  if (err instanceof FleetA2aError) {
    const status = httpStatusOf(err.fleet.code);
    const info = { "@type": ERROR_INFO_TYPE, reason: err.fleet.code, domain: "natsfleet.dev", metadata: { a2aCode: String(err.fleet.a2aCode), retryable: String(err.fleet.retryable) } };
    return { status, body: { error: { code: status, status: RPC_STATUS[status] ?? "UNKNOWN", message: err.fleet.message, details: [info] } } };
  }
  const status = restStatusFor(err);
  return { status, body: toRestErrorBody(err, status) };
}

export function jsonRpcError(err: unknown, id: string | number | null = null): unknown {
  return { jsonrpc: "2.0", id, error: JsonRpcTransportHandler.mapToJSONRPCError(err) };
}

/**
 * A refusal before the request reaches an agent (token, grant, rate, size, version), in the binding's own shape. The
 * HTTP status says what kind of refusal it is; a JSON-RPC caller also finds the code in the envelope.
 */
export function refuse(reply: FastifyReply, binding: Binding, error: FleetError | A2AError, jsonRpcStatus?: number): FastifyReply {
  const err = error instanceof FleetError ? a2aError(error) : error;
  const status = error instanceof FleetError ? httpStatusOf(error.code) : restStatusFor(error);
  if (error instanceof FleetError && error.code === "UNAUTHENTICATED") void reply.header("www-authenticate", 'Bearer realm="natsfleet"');
  if (error instanceof FleetError && error.retryAfterMs !== undefined) void reply.header("retry-after", String(Math.ceil(error.retryAfterMs / 1000)));
  if (binding === "jsonrpc") return reply.code(jsonRpcStatus ?? status).type("application/json").send(jsonRpcError(err));
  const rest = restError(err);
  return reply.code(rest.status).type(A2A_JSON).send(rest.body);
}

/**
 * Streams `events` as SSE. The first event is awaited before anything is written, so an error up front (task not found,
 * a refused message) is an ordinary error response; one later is an SSE `error` event. A caller that goes away stops
 * the generator (and with it the agent's event subscription).
 */
export async function streamSse<T>(
  reply: FastifyReply,
  events: AsyncGenerator<T, void, undefined>,
  frame: { event: (e: T) => unknown; error: (err: unknown) => unknown; failed: (err: unknown) => void },
  log: Logger,
): Promise<void> {
  let first: IteratorResult<T, void>;
  try {
    first = await events.next();
  } catch (err) {
    frame.failed(err);
    return;
  }
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { ...SSE_HEADERS });
  let gone = false;
  // a comment line now and then keeps proxies from closing a stream that waits on a long task (clients skip comments)
  const keepAlive = setInterval(() => res.write(": keep-alive\n\n"), SSE_KEEPALIVE_MS);
  res.on("close", () => {
    gone = true;
    clearInterval(keepAlive);
    void events.return(undefined);
  });
  try {
    if (!first.done) res.write(formatSSEEvent(frame.event(first.value)));
    while (!gone && !first.done) {
      const next = await events.next();
      if (next.done) break;
      res.write(formatSSEEvent(frame.event(next.value)));
    }
  } catch (err) {
    log.warn({ err }, "a2a stream ended with an error");
    if (!res.writableEnded) res.write(formatSSEErrorEvent(frame.error(err)));
  } finally {
    clearInterval(keepAlive);
    if (!res.writableEnded) res.end();
  }
}
