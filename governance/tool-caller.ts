import { NoRespondersError, RequestError, TimeoutError, type NatsConnection } from "@nats-io/nats-core";
import { FleetError, isPermissionViolation, requestTyped, ToolCallResult, type CodecName, type FleetNames, type ToolCallRequest } from "../protocol/index.js";

/** past a tool's own run time, the host may take this long to answer (its abort grace, the audit record, the reply) */
const ANSWER_GRACE_MS = 5_000;

/**
 * How long a caller waits for a tool's answer: its usual wait, or longer for a tool that may run longer (a peer's skill,
 * whose own timeout the tool host honours), so the caller does not give up on a call that is still within its time.
 */
export function toolCallWaitMs(usualMs: number, toolTimeoutMs: number | undefined): number {
  return toolTimeoutMs === undefined ? usualMs : Math.max(usualMs, toolTimeoutMs + ANSWER_GRACE_MS);
}

/**
 * Calls a tool on whichever tool host serves it (`<prefix>.tool.<name>.<caller>`, queue group "tools"): the one way
 * anything in the fleet runs a tool, so the broker's publish permissions on those subjects decide who may call what, as
 * whom. The caller is `options.as` (governance: `_governance`), else the request's agent. Transport failures are named:
 * a refusal by the broker is PERMISSION_DENIED, no host is TOOL_UNAVAILABLE, no answer in time is TIMEOUT (the call may
 * still be running: the idempotency key makes asking again safe).
 */
export async function callTool(
  nc: NatsConnection,
  names: FleetNames,
  tool: string,
  request: ToolCallRequest,
  options: { codec: CodecName; timeoutMs: number; as?: string },
): Promise<ToolCallResult> {
  const caller = options.as ?? request.agentId;
  if (caller === undefined) throw new FleetError("MESSAGE_INVALID", `a call of "${tool}" names no caller`);
  try {
    return await requestTyped(nc, names.tool(tool, caller), request, ToolCallResult, { codec: options.codec, timeoutMs: options.timeoutMs });
  } catch (err) {
    if (err instanceof FleetError) throw err;
    // the broker refused this identity the tool's subject: the third enforcement of the allow list, named as such
    if (isPermissionViolation(err)) throw new FleetError("PERMISSION_DENIED", `the broker refuses this process a call to "${tool}" as "${caller}"`, { cause: err });
    const cause = err instanceof RequestError && err.cause ? err.cause : err;
    if (cause instanceof NoRespondersError || (err instanceof RequestError && err.isNoResponders())) {
      throw new FleetError("TOOL_UNAVAILABLE", `no tool host serves "${tool}"`, { cause: err });
    }
    if (cause instanceof TimeoutError) throw new FleetError("TIMEOUT", `tool "${tool}" did not answer in ${options.timeoutMs} ms`, { cause: err });
    throw FleetError.from(err);
  }
}
