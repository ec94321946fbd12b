import { FleetError } from "../../protocol/index.js";
import type { ToolContext } from "../tool.js";

/*
 * What the HTTP-reading tools share: the call's own timeout joined with the host's signal, a readable reason for a failed
 * request, and a body read with a size limit (a page or feed that never ends must not fill the tool host's memory).
 */

export const DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024;

/** The call's own timeout and the host's signal, whichever fires first. */
export function callSignal(ctx: ToolContext, timeoutMs: number): AbortSignal {
  return AbortSignal.any([ctx.signal, AbortSignal.timeout(timeoutMs)]);
}

/** Why a request failed, as an agent reads it: "timed out after …", "ECONNREFUSED: …". */
export function failureReason(err: unknown, signal: AbortSignal, timeoutMs: number): string {
  if (signal.aborted) return `timed out after ${timeoutMs} ms`;
  const cause = err instanceof Error && err.cause instanceof Error ? err.cause : undefined;
  const code = cause && "code" in cause && typeof cause.code === "string" ? `${cause.code}: ` : "";
  return `${code}${err instanceof Error ? err.message : String(err)}${cause ? ` (${cause.message})` : ""}`;
}

/** The body as text, at most `maxBytes` of it; `truncated` says whether there was more. */
export async function readText(res: Response, maxBytes = DEFAULT_MAX_BODY_BYTES): Promise<{ text: string; truncated: boolean }> {
  if (!res.body) return { text: "", truncated: false };
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let truncated = false;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (size + value.byteLength > maxBytes) {
      chunks.push(value.subarray(0, maxBytes - size));
      truncated = true;
      await reader.cancel().catch(() => undefined);
      break;
    }
    chunks.push(value);
    size += value.byteLength;
  }
  return { text: Buffer.concat(chunks).toString("utf8"), truncated };
}

/**
 * A GET whose failure to connect is the tool's failure to answer (the host's own abort is re-thrown; anything else is
 * TOOL_FAILED naming the reason), for tools whose question has no answer without the document (a feed, an advisory list).
 */
export async function fetchOrFail(tool: string, url: string, ctx: ToolContext, timeoutMs: number, init: RequestInit = {}): Promise<Response> {
  const signal = callSignal(ctx, timeoutMs);
  try {
    return await fetch(url, { redirect: "follow", ...init, signal });
  } catch (err) {
    ctx.signal.throwIfAborted();
    throw new FleetError("TOOL_FAILED", `${tool}: ${url}: ${failureReason(err, signal, timeoutMs)}`, { cause: err });
  }
}
