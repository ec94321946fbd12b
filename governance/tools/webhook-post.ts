import { z } from "zod";
import { FleetError } from "../../protocol/index.js";
import { defineTool, type ToolContext } from "../tool.js";
import { callSignal, failureReason, readText } from "./http-fetch.js";

/*
 * PROPOSE: POST a JSON body to a URL on the target allow list. What "undo" means for a webhook is the receiver's to say,
 * so a call must name the receiver's undo URL: the rollback POSTs {action: "undo", body, response, idempotencyKey} there
 * (also an allowed target). A receiver without an undo endpoint cannot take a PROPOSE call; that effect is irreversible,
 * and such a webhook belongs behind a CONFIRM tool of its own. Both requests carry the call's idempotency key
 * (`Idempotency-Key`), so a receiver can recognise a repeat after a lost answer.
 */

const RESPONSE_CHARS = 2_000;

const WebhookOutput = z.object({ url: z.string(), status: z.number(), response: z.unknown() });

async function post(url: string, body: unknown, key: string | undefined, ctx: ToolContext, timeoutMs: number, what: string) {
  const signal = callSignal(ctx, timeoutMs);
  let res: Response;
  try {
    res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...(key ? { "idempotency-key": key } : {}) },
      body: JSON.stringify(body),
      signal,
      // a redirect would carry the body to a host nobody checked
      redirect: "manual",
    });
  } catch (err) {
    ctx.signal.throwIfAborted();
    throw new FleetError("TOOL_FAILED", `webhook_post: ${what} ${url}: ${failureReason(err, signal, timeoutMs)}`, { cause: err });
  }
  const { text } = await readText(res, 64 * 1024);
  if (res.status < 200 || res.status >= 300) throw new FleetError("TOOL_FAILED", `webhook_post: ${what} ${url} answered HTTP ${res.status}: ${text.slice(0, 200)}`);
  let response: unknown = text.slice(0, RESPONSE_CHARS);
  if ((res.headers.get("content-type") ?? "").includes("json")) {
    try {
      response = JSON.parse(text);
    } catch {
      // kept as text: the receiver said JSON and sent something else
    }
  }
  return { url, status: res.status, response };
}

export const webhookPost = defineTool({
  name: "webhook_post",
  description:
    "POST a JSON body to a webhook on the target allow list; reversible: the receiver's undoUrl gets {action: \"undo\", body, response, idempotencyKey} when the call is rolled back.",
  risk: "PROPOSE",
  input: z.strictObject({
    url: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }),
    body: z.record(z.string(), z.unknown()),
    /** where the receiver undoes this call; required, since a PROPOSE effect must be reversible */
    undoUrl: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }),
    timeoutMs: z.number().int().min(1).max(60_000).default(10_000),
  }),
  targetFields: ["url", "undoUrl"],
  handler: (input, ctx) => post(input.url, input.body, ctx.idempotencyKey, ctx, input.timeoutMs, "POST to"),
  rollback: async (input, output, ctx) => {
    // the recorded output comes back from KV: data to check, not a value to trust
    const done = WebhookOutput.parse(output);
    const undo = await post(input.undoUrl, { action: "undo", body: input.body, response: done.response, idempotencyKey: ctx.idempotencyKey ?? null }, ctx.idempotencyKey ? `${ctx.idempotencyKey}.undo` : undefined, ctx, input.timeoutMs, "undo at");
    return { undone: input.url, ...undo };
  },
});
