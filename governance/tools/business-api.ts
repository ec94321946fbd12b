import { z } from "zod";
import { FleetError } from "../../protocol/index.js";
import type { ToolContext } from "../tool.js";
import { callSignal, failureReason, readText } from "./http-fetch.js";

/*
 * The client side of the business API (CRM, CMS, analytics, search console, revenue, keyword and ranking data) that the
 * business tools call: the stand-in (`fleet run standin`) or a service speaking the same JSON API, at `business.url`.
 * The URL is the operator's (config), never the model's, so these calls name no target for the allow list.
 */

const TIMEOUT_MS = 15_000;
const JsonObject = z.record(z.string(), z.unknown());

export interface BusinessApi {
  request(tool: string, method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE", path: string, ctx: ToolContext, options?: { query?: Record<string, string | number | undefined>; body?: unknown; key?: string | undefined }): Promise<Record<string, unknown>>;
}

export function businessApi(baseUrl: string | undefined): BusinessApi {
  return {
    async request(tool, method, path, ctx, options = {}) {
      if (!baseUrl) throw new FleetError("TOOL_UNAVAILABLE", `${tool} calls the business API, and business.url is not configured`);
      const url = new URL(path.replace(/^\//, ""), baseUrl.endsWith("/") ? baseUrl : `${baseUrl}/`);
      for (const [k, v] of Object.entries(options.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
      const signal = callSignal(ctx, TIMEOUT_MS);
      let res: Response;
      try {
        res = await fetch(url, {
          method,
          signal,
          headers: { accept: "application/json", ...(options.body !== undefined ? { "content-type": "application/json" } : {}), ...(options.key ? { "idempotency-key": options.key } : {}) },
          ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
        });
      } catch (err) {
        ctx.signal.throwIfAborted();
        throw new FleetError("TOOL_FAILED", `${tool}: the business API at ${baseUrl} did not answer: ${failureReason(err, signal, TIMEOUT_MS)}`, { cause: err });
      }
      const { text } = await readText(res, 4 * 1024 * 1024);
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        throw new FleetError("TOOL_FAILED", `${tool}: the business API answered HTTP ${res.status} with something that is not JSON`);
      }
      const parsed = JsonObject.safeParse(body);
      if (!res.ok) {
        const error = parsed.success && typeof parsed.data.error === "string" ? parsed.data.error : `HTTP ${res.status}`;
        throw new FleetError("TOOL_FAILED", `${tool}: ${error}`);
      }
      if (!parsed.success) throw new FleetError("TOOL_FAILED", `${tool}: the business API answered with JSON that is not an object`);
      return parsed.data;
    },
  };
}
