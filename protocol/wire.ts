import { headers as natsHeaders, NoRespondersError, RequestError, TimeoutError, type Msg, type MsgHdrs, type NatsConnection } from "@nats-io/nats-core";
import type { z } from "zod";
import { A2A_VERSION, type Message } from "./a2a.js";
import { codecForContentType, CONTENT_TYPES, decode, encode, type CodecName } from "./codec.js";
import { FleetError, type ErrorPayload } from "./errors.js";
import { OPERATIONS, replySchema, type OperationName } from "./operations.js";
import { HEADERS, type FleetNames } from "./subjects.js";
import { activeTraceparent } from "./trace-context.js";

/** Request/reply for the A2A operations: the headers every message carries, typed replies, typed errors. */

const shared: Partial<Record<CodecName, MsgHdrs>> = {};

/**
 * The headers every fleet message carries. Without a msgId they never change, so one instance per codec is shared
 * (building headers per message costs as much as encoding the payload); callers must not modify the result. That
 * includes js.publish's `msgID` option, which nats.js writes into the headers it is given: pass the id here instead.
 * Inside a traced span (telemetry on) they carry its `traceparent`, so the next process continues the trace.
 */
export function wireHeaders(codec: CodecName, msgId?: string): MsgHdrs {
  const traceparent = activeTraceparent();
  if (!msgId && !traceparent) return (shared[codec] ??= buildHeaders(codec));
  return buildHeaders(codec, msgId, traceparent);
}

function buildHeaders(codec: CodecName, msgId?: string, traceparent?: string): MsgHdrs {
  const h = natsHeaders();
  h.set(HEADERS.a2aVersion, A2A_VERSION);
  h.set(HEADERS.contentType, CONTENT_TYPES[codec]);
  if (msgId) h.set(HEADERS.msgId, msgId);
  if (traceparent) h.set(HEADERS.traceparent, traceparent);
  return h;
}

/**
 * Sends a one-way A2A Message to an agent's inbox. Headers carry only what differs from the binding's defaults
 * (A2A-Version 1.0, Content-Type msgpack): on the hot agent-to-agent path, headers cost as much as the payload itself.
 */
export function sendToInbox(nc: NatsConnection, names: FleetNames, agentId: string, message: Message, codec: CodecName = "msgpack"): void {
  const payload = encode(message, codec);
  if (codec === "msgpack") nc.publish(names.agentInbox(agentId), payload);
  else nc.publish(names.agentInbox(agentId), payload, { headers: wireHeaders(codec) });
}

/** Which codec a message was sent with, or an error when its headers ask for something we do not speak. */
export function negotiate(msg: { headers?: MsgHdrs | undefined }, fallback: CodecName): { ok: true; codec: CodecName } | { ok: false; error: FleetError } {
  const version = msg.headers?.get(HEADERS.a2aVersion);
  if (version && version !== A2A_VERSION) {
    return { ok: false, error: new FleetError("VERSION_NOT_SUPPORTED", `A2A-Version ${version} is not supported; this agent speaks ${A2A_VERSION}`) };
  }
  const contentType = msg.headers?.get(HEADERS.contentType) || undefined;
  const codec = codecForContentType(contentType, fallback);
  if (!codec) return { ok: false, error: new FleetError("CONTENT_TYPE_NOT_SUPPORTED", `Content-Type ${contentType} is not supported`) };
  return { ok: true, codec };
}

export function replyResult(msg: Msg, result: unknown, codec: CodecName): void {
  msg.respond(encode({ result }, codec), { headers: wireHeaders(codec) });
}

export function replyError(msg: Msg, error: FleetError, codec: CodecName): void {
  const payload: ErrorPayload = error.toPayload();
  msg.respond(encode({ error: payload }, codec), { headers: wireHeaders(codec) });
}

export interface RequestOptions {
  codec?: CodecName;
  timeoutMs?: number;
}

/** Calls an A2A operation on an agent; the reply is validated, an error reply is thrown as the FleetError it names. */
export async function requestOperation<Op extends OperationName>(
  nc: NatsConnection,
  names: FleetNames,
  agentId: string,
  op: Op,
  request: z.input<(typeof OPERATIONS)[Op]["request"]>,
  options: RequestOptions = {},
): Promise<z.infer<(typeof OPERATIONS)[Op]["result"]>> {
  const codec = options.codec ?? "msgpack";
  let reply: Msg;
  try {
    reply = await nc.request(names.agentOperation(agentId, op), encode(request, codec), {
      timeout: options.timeoutMs ?? 5_000,
      headers: wireHeaders(codec),
    });
  } catch (err) {
    throw requestFailure(err, agentId);
  }
  const replyCodec = codecForContentType(reply.headers?.get(HEADERS.contentType) || undefined, codec) ?? codec;
  const decoded = decode(replySchema(OPERATIONS[op].result), reply.data, { codec: replyCodec });
  if (!decoded.ok) throw decoded.error;
  if ("error" in decoded.value) throw FleetError.fromPayload(decoded.value.error);
  return decoded.value.result as z.infer<(typeof OPERATIONS)[Op]["result"]>;
}

/**
 * A request to any fleet service (router, memory search) with a typed reply: `{result}` validated against `result`,
 * `{error}` thrown as the FleetError it names. Transport failures (no responders, timeout) are thrown as they come, for
 * the caller to name.
 */
export async function requestTyped<S extends z.ZodType>(
  nc: NatsConnection,
  subject: string,
  body: unknown,
  result: S,
  options: { codec: CodecName; timeoutMs: number },
): Promise<z.infer<S>> {
  const reply = await nc.request(subject, encode(body, options.codec), { timeout: options.timeoutMs, headers: wireHeaders(options.codec) });
  const replyCodec = codecForContentType(reply.headers?.get(HEADERS.contentType) || undefined, options.codec) ?? options.codec;
  const decoded = decode(replySchema(result), reply.data, { codec: replyCodec });
  if (!decoded.ok) throw decoded.error;
  if ("error" in decoded.value) throw FleetError.fromPayload(decoded.value.error);
  // validated against replySchema(result) just above; the generic only loses the narrowing
  return (decoded.value as { result: z.infer<S> }).result;
}

function requestFailure(err: unknown, agentId: string): FleetError {
  const cause = err instanceof RequestError && err.cause ? err.cause : err;
  if (cause instanceof NoRespondersError || (err instanceof RequestError && err.isNoResponders())) {
    return new FleetError("AGENT_UNAVAILABLE", `no process serves agent "${agentId}"`, { cause: err });
  }
  if (cause instanceof TimeoutError) return new FleetError("TIMEOUT", `agent "${agentId}" did not answer in time`, { cause: err });
  return FleetError.from(err);
}
