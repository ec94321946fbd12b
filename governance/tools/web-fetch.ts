import { z } from "zod";
import { defineTool } from "../tool.js";
import { elementTexts, plainText } from "./html-text.js";
import { callSignal, failureReason, readText } from "./http-fetch.js";

/*
 * AUTO: a page's readable text, for research: status, content type, title and the text (HTML reduced to its words, JSON
 * and plain text as they are), cut to maxChars. A page that is down is an answer with the reason.
 */

export const webFetch = defineTool({
  name: "web_fetch",
  description: "Fetch a URL (on the target allow list) and return its status, title and readable text (HTML reduced to text), cut to maxChars.",
  risk: "AUTO",
  input: z.strictObject({
    url: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }),
    maxChars: z.number().int().min(100).max(100_000).default(20_000),
    timeoutMs: z.number().int().min(1).max(60_000).default(15_000),
  }),
  targetFields: ["url"],
  handler: async (input, ctx) => {
    const signal = callSignal(ctx, input.timeoutMs);
    let res: Response;
    try {
      res = await fetch(input.url, { signal, redirect: "follow", headers: { accept: "text/html, application/json;q=0.9, text/plain;q=0.8, */*;q=0.1" } });
    } catch (err) {
      ctx.signal.throwIfAborted();
      return { url: input.url, status: null, ok: false, error: failureReason(err, signal, input.timeoutMs) };
    }
    const contentType = res.headers.get("content-type") ?? "";
    const body = await readText(res, 2 * 1024 * 1024);
    const html = /html|xml/i.test(contentType) || /^\s*</.test(body.text);
    const text = html ? plainText(body.text) : body.text;
    const title = html ? elementTexts(body.text, "title")[0] : undefined;
    return {
      url: input.url,
      finalUrl: res.url || input.url,
      status: res.status,
      ok: res.ok,
      contentType,
      ...(title !== undefined ? { title } : {}),
      text: text.slice(0, input.maxChars),
      truncated: body.truncated || text.length > input.maxChars,
    };
  },
});
