import { Message as SdkMessage, Task as SdkTask, TaskArtifactUpdateEvent as SdkArtifactEvent, TaskStatusUpdateEvent as SdkStatusEvent, type StreamResponse } from "@a2a-js/sdk";
import {
  ContentTypeNotSupportedError,
  JsonRpcTransportError,
  RequestMalformedError,
  TaskNotCancelableError,
  TaskNotFoundError,
  UnsupportedOperationError,
  VersionNotSupportedError,
  type A2AError,
} from "@a2a-js/sdk/errors";
import { FleetError, issuesOf, Message, type FleetErrorCode, type Task, type TaskEvent } from "../../protocol/index.js";

/*
 * Between the SDK's objects (ts-proto: enums as numbers, parts as `$case` unions) and our wire types (ProtoJSON, zod):
 * both sides speak ProtoJSON, so every crossing goes through it. What comes in is parsed by our schema, never cast.
 */

/** ProtoJSON of one of our values: bytes become base64 (our msgpack carries them raw, JSON cannot). */
export function toProtoJson(value: unknown): unknown {
  if (value instanceof Uint8Array) return Buffer.from(value).toString("base64");
  if (Array.isArray(value)) return value.map(toProtoJson);
  if (value !== null && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toProtoJson(v)]));
  return value;
}

/** Raw parts' base64 back to bytes, as our Part schema has them. */
function withRawBytes(message: unknown): unknown {
  if (message === null || typeof message !== "object" || !("parts" in message) || !Array.isArray(message.parts)) return message;
  const parts: unknown[] = message.parts.map((p: unknown) =>
    p !== null && typeof p === "object" && "raw" in p && typeof p.raw === "string" ? { ...p, raw: new Uint8Array(Buffer.from(p.raw, "base64")) } : p,
  );
  return { ...message, parts };
}

/** The peer's message, as our schema has it; RequestMalformedError (-32602) naming each bad field otherwise. */
export function fleetMessage(message: SdkMessage | undefined): Message {
  if (!message) throw new RequestMalformedError("message is required");
  const parsed = Message.safeParse(withRawBytes(SdkMessage.toJSON(message)));
  if (!parsed.success) throw new RequestMalformedError(`message: ${issuesOf(parsed.error).map((i) => `${i.path}: ${i.message}`).join("; ")}`);
  return parsed.data;
}

export function sdkTask(task: Task): SdkTask {
  return SdkTask.fromJSON(toProtoJson(task));
}

/** One of an agent's events as the stream response the SDK frames (status and artifact updates). */
export function streamEvent(event: TaskEvent): StreamResponse {
  if (event.kind === "status-update") {
    return { payload: { $case: "statusUpdate", value: SdkStatusEvent.fromJSON(toProtoJson({ taskId: event.taskId, contextId: event.contextId, status: event.status })) } };
  }
  const value = SdkArtifactEvent.fromJSON(toProtoJson({ taskId: event.taskId, contextId: event.contextId, artifact: event.artifact, lastChunk: event.lastChunk ?? true }));
  return { payload: { $case: "artifactUpdate", value } };
}

/**
 * A fleet error carried to an HTTP caller: the specification's own error where there is one (so JSON-RPC and REST give
 * it its code and HTTP status), else a JSON-RPC error with our catalogue code (-32100 and below) and `fleet` kept for
 * the REST binding's status and body.
 */
export class FleetA2aError extends JsonRpcTransportError {
  constructor(readonly fleet: FleetError) {
    super({ jsonrpc: "2.0", id: null, error: { code: fleet.a2aCode, message: fleet.message, data: [{ reason: fleet.code, retryable: fleet.retryable, ...(fleet.retryAfterMs !== undefined ? { retryAfterMs: fleet.retryAfterMs } : {}) }] } });
  }
}

const SPEC_ERRORS: Partial<Record<FleetErrorCode, new (message: string) => A2AError>> = {
  TASK_NOT_FOUND: TaskNotFoundError,
  TASK_NOT_CANCELABLE: TaskNotCancelableError,
  UNSUPPORTED_OPERATION: UnsupportedOperationError,
  CONTENT_TYPE_NOT_SUPPORTED: ContentTypeNotSupportedError,
  VERSION_NOT_SUPPORTED: VersionNotSupportedError,
  MESSAGE_INVALID: RequestMalformedError,
  MESSAGE_MALFORMED: RequestMalformedError,
};

export function a2aError(err: unknown): A2AError {
  const fleet = FleetError.from(err);
  const Spec = SPEC_ERRORS[fleet.code];
  return Spec ? new Spec(fleet.message) : new FleetA2aError(fleet);
}

/** The HTTP status a fleet error stands for on the REST binding (and for refusals before either binding is reached). */
export function httpStatusOf(code: FleetErrorCode): number {
  switch (code) {
    case "UNAUTHENTICATED":
      return 401;
    case "PERMISSION_DENIED":
      return 403;
    case "RATE_LIMITED":
      return 429;
    case "MESSAGE_TOO_LARGE":
      return 413;
    case "AGENT_UNAVAILABLE":
    case "NATS_UNAVAILABLE":
      return 503;
    case "TIMEOUT":
      return 504;
    default:
      return 500;
  }
}
