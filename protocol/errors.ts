import { z } from "zod";
import { secrets } from "./secret-scrubber.js";

/**
 * The one catalogue of error codes. Each entry says whether retrying can help and, where the error answers an A2A
 * operation, the A2A / JSON-RPC code a client sees. README.md documents every code (a test keeps them in step).
 */
export const ERROR_CATALOGUE = {
  // A2A v1.0 errors (specification codes)
  TASK_NOT_FOUND: { a2aCode: -32001, retryable: false, description: "no task with this id" },
  TASK_NOT_CANCELABLE: { a2aCode: -32002, retryable: false, description: "the task is already in a terminal state" },
  UNSUPPORTED_OPERATION: { a2aCode: -32004, retryable: false, description: "the agent does not implement this operation" },
  CONTENT_TYPE_NOT_SUPPORTED: { a2aCode: -32005, retryable: false, description: "Content-Type is neither msgpack nor JSON" },
  VERSION_NOT_SUPPORTED: { a2aCode: -32009, retryable: false, description: "A2A-Version header names a version we do not speak" },
  // JSON-RPC codes reused for malformed input
  MESSAGE_MALFORMED: { a2aCode: -32700, retryable: false, description: "the payload is not valid msgpack/JSON" },
  MESSAGE_INVALID: { a2aCode: -32602, retryable: false, description: "the payload decodes but does not match the schema" },
  MESSAGE_TOO_LARGE: { a2aCode: -32600, retryable: false, description: "the payload exceeds the configured maximum" },
  INTERNAL: { a2aCode: -32603, retryable: true, description: "an unexpected failure inside the fleet" },
  // the fleet's own codes (-32100 and below)
  AGENT_UNAVAILABLE: { a2aCode: -32100, retryable: true, description: "no agent process answers on its subject" },
  TIMEOUT: { a2aCode: -32101, retryable: true, description: "a request got no reply in time" },
  NATS_UNAVAILABLE: { a2aCode: -32102, retryable: true, description: "no NATS server answers at the configured URL" },
  CONFLICT: { a2aCode: -32103, retryable: true, description: "a KV update lost a revision race" },
  JETSTREAM_NO_LEADER: { a2aCode: -32104, retryable: true, description: "a stream or bucket had no leader (a cluster election, a lost quorum) for longer than the retry window" },
  CONFIG_INVALID: { a2aCode: -32110, retryable: false, description: "the fleet config failed validation" },
  CONFIG_NOT_FOUND: { a2aCode: -32111, retryable: false, description: "the fleet config file does not exist" },
  NATS_SERVER_NOT_INSTALLED: { a2aCode: -32112, retryable: false, description: "nats-server is not on the PATH" },
  SUPERVISOR_INTENSITY: { a2aCode: -32120, retryable: false, description: "a child restarted too often; the supervisor gave up" },
  // the model router (-32130 and below)
  BUDGET_EXHAUSTED: { a2aCode: -32130, retryable: true, description: "the agent's or the fleet's daily cap is spent past the nano grace (details name the cap); agents hold the work until midnight" },
  PROVIDER_FAILED: { a2aCode: -32131, retryable: true, description: "every deployment along the tier's fallback chain failed" },
  PROVIDER_WAITING: { a2aCode: -32132, retryable: true, description: "premium has no fallback: the call is waiting to be retried" },
  CHECK_FAILED: { a2aCode: -32133, retryable: false, description: "the answer failed its checks up to the escalation ceiling" },
  ROUTER_UNAVAILABLE: { a2aCode: -32134, retryable: true, description: "no router process answers on its subject" },
  // memory (-32140 and below)
  MEMORY_TOO_LARGE: { a2aCode: -32140, retryable: false, description: "a memory write exceeds its cap (MEMORY.md lines, entry size)" },
  VECTOR_DIMENSION: { a2aCode: -32141, retryable: false, description: "a vector's dimension differs from its collection's" },
  KNOWLEDGE_INVALID: { a2aCode: -32142, retryable: false, description: "a reference knowledge file failed validation" },
  VECTOR_STORE_UNAVAILABLE: { a2aCode: -32143, retryable: true, description: "the vector store (Qdrant) does not answer" },
  // governance (-32150 and below)
  TOOL_NOT_FOUND: { a2aCode: -32150, retryable: false, description: "no tool of this name in the catalogue" },
  TOOL_NOT_ALLOWED: { a2aCode: -32151, retryable: false, description: "the agent's allow list does not include the tool" },
  TOOL_BLOCKED: { a2aCode: -32152, retryable: false, description: "the tool is BLOCK: it never runs" },
  PROPOSAL_REQUIRED: { a2aCode: -32153, retryable: false, description: "a PROPOSE or CONFIRM tool runs only through an executing proposal" },
  TOOL_FAILED: { a2aCode: -32154, retryable: true, description: "the tool ran and failed" },
  TOOL_OUTCOME_UNKNOWN: { a2aCode: -32155, retryable: false, description: "a call with this idempotency key started and never finished: it is not run again" },
  TOOL_UNAVAILABLE: { a2aCode: -32156, retryable: true, description: "no tool host serves the tool" },
  PROPOSAL_NOT_FOUND: { a2aCode: -32157, retryable: false, description: "no proposal with this id" },
  PROPOSAL_STATE: { a2aCode: -32158, retryable: false, description: "the proposal's state does not allow this (e.g. rollback after its window)" },
  APPROVER_NOT_ALLOWED: { a2aCode: -32159, retryable: false, description: "the person deciding is not on the channel's approver list" },
  SIGNATURE_INVALID: { a2aCode: -32160, retryable: false, description: "an inbound webhook's signature does not verify" },
  AUDIT_CHAIN_BROKEN: { a2aCode: -32161, retryable: false, description: "an audit record was changed, removed or inserted" },
  TOOL_IN_PROGRESS: { a2aCode: -32163, retryable: true, description: "a call with this idempotency key is still running on a tool host" },
  // pipelines (-32180 and below)
  PIPELINE_NOT_FOUND: { a2aCode: -32180, retryable: false, description: "a task names a pipeline the fleet's config does not have" },
  PIPELINE_STEP_FAILED: { a2aCode: -32181, retryable: false, description: "a pipeline's tool step failed its named check, or its forEach path is not a list" },
  // tool sources (-32190 and below)
  TOOL_SOURCE_UNAVAILABLE: { a2aCode: -32190, retryable: true, description: "the tool's source (an MCP server) is down or restarting; the call did not reach it" },
  TOOL_RESULT_INVALID: { a2aCode: -32191, retryable: false, description: "the tool's source answered with a result that is not a valid tool result" },
  PERMISSION_DENIED: { a2aCode: -32162, retryable: false, description: "the broker refused a publish or subscribe for this identity, or a payload named another caller than the subject proves" },
  // delivery by the bridges (-32170 and below)
  DELIVERY_FAILED: { a2aCode: -32170, retryable: true, description: "the channel did not take the message now (server unreachable, a temporary refusal, a send still running): it is retried" },
  DELIVERY_REFUSED: { a2aCode: -32171, retryable: false, description: "the channel refused the message for good (an SMTP 5xx, a recipient that is no address): it is dead-lettered" },
  DELIVERY_OUTCOME_UNKNOWN: { a2aCode: -32172, retryable: false, description: "a send started and its bridge stopped before knowing whether it was accepted: it is not sent again" },
  // the A2A HTTP gateway (-32210 and below)
  UNAUTHENTICATED: { a2aCode: -32210, retryable: false, description: "an A2A request over HTTP without a valid bearer token (HTTP 401)" },
  RATE_LIMITED: { a2aCode: -32211, retryable: true, description: "the peer sent more requests than its rate limit allows (HTTP 429; retryAfterMs says when)" },
  // peers: other companies' A2A agents this fleet calls (-32220 and below)
  PEER_UNAVAILABLE: { a2aCode: -32220, retryable: true, description: "the peer's A2A endpoint cannot be reached or answers 5xx/429; the call is retried with backoff" },
  PEER_TIMEOUT: { a2aCode: -32221, retryable: true, description: "the peer did not finish (or answer) within the peer's timeoutSeconds; the call is retried with backoff" },
  PEER_REFUSED: { a2aCode: -32222, retryable: false, description: "the peer refused the call (401/403, its card lacks the skill, or it answered with an A2A error)" },
  PEER_TASK_FAILED: { a2aCode: -32223, retryable: false, description: "the peer ended its task as failed, rejected or canceled, or asks for input or auth we cannot give" },
  PEER_SKILL_NOT_GRANTED: { a2aCode: -32224, retryable: false, description: "the config does not grant this skill of the peer (peers.<name>.skills)" },
} as const;

export type FleetErrorCode = keyof typeof ERROR_CATALOGUE;
export const FleetErrorCode = z.enum(Object.keys(ERROR_CATALOGUE) as [FleetErrorCode, ...FleetErrorCode[]]);

/** How an error crosses the wire: the reply to a failed request, the reason of a dead letter. */
export const ErrorPayload = z.object({
  code: FleetErrorCode,
  a2aCode: z.number().int(),
  message: z.string(),
  retryable: z.boolean(),
  details: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  /** a retryable error may say when trying again makes sense (a premium provider's next attempt, the budget's midnight) */
  retryAfterMs: z.number().nonnegative().optional(),
});
export type ErrorPayload = z.infer<typeof ErrorPayload>;

export interface FieldIssue {
  path: string;
  message: string;
}

export class FleetError extends Error {
  override readonly name = "FleetError";
  readonly code: FleetErrorCode;
  readonly retryable: boolean;
  readonly details: FieldIssue[] | undefined;
  readonly retryAfterMs: number | undefined;

  constructor(code: FleetErrorCode, message: string, options: { cause?: unknown; details?: FieldIssue[]; retryAfterMs?: number } = {}) {
    super(message, { cause: options.cause });
    this.code = code;
    this.retryable = ERROR_CATALOGUE[code].retryable;
    this.details = options.details;
    this.retryAfterMs = options.retryAfterMs;
  }

  get a2aCode(): number {
    return ERROR_CATALOGUE[this.code].a2aCode;
  }

  /** The error as it crosses the wire: secrets the message or details might quote (a URL with a token) are scrubbed. */
  toPayload(): ErrorPayload {
    const payload: ErrorPayload = { code: this.code, a2aCode: this.a2aCode, message: secrets.scrub(this.message), retryable: this.retryable };
    if (this.details) payload.details = this.details.map((d) => ({ path: d.path, message: secrets.scrub(d.message) }));
    if (this.retryAfterMs !== undefined) payload.retryAfterMs = this.retryAfterMs;
    return payload;
  }

  static fromPayload(payload: ErrorPayload): FleetError {
    return new FleetError(payload.code, payload.message, {
      ...(payload.details ? { details: payload.details } : {}),
      ...(payload.retryAfterMs !== undefined ? { retryAfterMs: payload.retryAfterMs } : {}),
    });
  }

  /**
   * Wraps anything thrown into a FleetError, keeping the original as the cause. A refusal by the broker becomes
   * PERMISSION_DENIED with a plain message: the broker's own text names internal subjects (`$JS.API…`, `$KV…`) that are
   * nobody's business outside the process (the cause keeps them for the log).
   */
  static from(err: unknown, fallback: FleetErrorCode = "INTERNAL"): FleetError {
    if (err instanceof FleetError) return err;
    if (isBrokerRefusal(err)) return new FleetError("PERMISSION_DENIED", "the broker refused an operation this request needed", { cause: err });
    const message = err instanceof Error ? err.message : String(err);
    return new FleetError(fallback, message, { cause: err });
  }
}

/**
 * Whether the broker refused a publish or subscribe somewhere in this error's causes. By name, so that the catalogue
 * needs no NATS client (protocol/connect.ts's isPermissionViolation checks the class).
 */
function isBrokerRefusal(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; e instanceof Error && depth < 8; depth++) {
    if (e.name === "PermissionViolationError" || /^permissions violation/i.test(e.message)) return true;
    e = e.cause;
  }
  return false;
}

/** Turns zod's issues into the `path: reason` pairs every error message and reply uses. */
export function issuesOf(error: z.ZodError): FieldIssue[] {
  return error.issues.map((issue) => ({ path: formatPath(issue.path), message: issue.message }));
}

export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else out += out === "" ? String(key) : `.${String(key)}`;
  }
  return out === "" ? "(root)" : out;
}

const BAD_INPUT: ReadonlySet<FleetErrorCode> = new Set<FleetErrorCode>([
  "MESSAGE_MALFORMED",
  "MESSAGE_INVALID",
  "MESSAGE_TOO_LARGE",
  "UNSUPPORTED_OPERATION",
  "CONTENT_TYPE_NOT_SUPPORTED",
  "VERSION_NOT_SUPPORTED",
]);

/** The sender's fault: worth a warning and a dead letter, unlike an ordinary error answer such as TASK_NOT_FOUND. */
export function isBadInput(error: FleetError): boolean {
  return BAD_INPUT.has(error.code);
}
