import { z } from "zod";
import { defineTool, type ToolDefinition } from "../tool.js";
import { callSignal, failureReason } from "./http-fetch.js";
import { ToolState } from "./tool-state.js";

/*
 * AUTO: an HTTP check that is also a record. Each call appends its result to the URL's history in KV toolstate (the last
 * seven days, at most MAX_SAMPLES checks) and answers with the availability over the last 24 hours and 7 days — the
 * share of checks in the window that found the target up — and the current streak: up or down since when, over how many
 * checks. Time is the tool host's clock (ctx.now), so a simulated clock drives it in tests.
 */

const HOUR_MS = 3600_000;
const DAY_MS = 24 * HOUR_MS;
const KEEP_MS = 7 * DAY_MS;
const MAX_SAMPLES = 10_080;

const Sample = z.object({ at: z.number(), up: z.boolean(), status: z.number().nullable(), ms: z.number() });
type Sample = z.infer<typeof Sample>;
const History = z.object({ url: z.string(), samples: z.array(Sample) });

export interface Availability {
  checks: number;
  up: number;
  /** percent of the window's checks that were up; null without checks */
  percent: number | null;
}

function availability(samples: readonly Sample[], since: number): Availability {
  const inWindow = samples.filter((s) => s.at >= since);
  const up = inWindow.filter((s) => s.up).length;
  return { checks: inWindow.length, up, percent: inWindow.length === 0 ? null : Math.round((10_000 * up) / inWindow.length) / 100 };
}

function streak(samples: readonly Sample[]): { state: "up" | "down"; since: string; checks: number } | null {
  const last = samples.at(-1);
  if (!last) return null;
  let first = samples.length - 1;
  while (first > 0 && samples[first - 1]?.up === last.up) first--;
  return { state: last.up ? "up" : "down", since: new Date(samples[first]?.at ?? last.at).toISOString(), checks: samples.length - first };
}

export function uptimeCheck(deps: { state: ToolState }): ToolDefinition {
  return defineTool({
    name: "uptime_check",
    description:
      "Check that a URL answers (2xx/3xx), record the result in its uptime history, and report availability over the last 24 h and 7 days and the current up/down streak.",
    risk: "AUTO",
    input: z.strictObject({
      url: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }),
      method: z.enum(["GET", "HEAD"]).default("GET"),
      timeoutMs: z.number().int().min(1).max(60_000).default(10_000),
    }),
    targetFields: ["url"],
    handler: async (input, ctx) => {
      const signal = callSignal(ctx, input.timeoutMs);
      const started = performance.now();
      let check: { up: boolean; status: number | null; error?: string };
      try {
        // redirects are not followed: a site redirecting to a login page or a parking page is up only as far as a 3xx says
        const res = await fetch(input.url, { method: input.method, signal, redirect: "manual" });
        await res.body?.cancel().catch(() => undefined);
        check = { up: res.status >= 200 && res.status < 400, status: res.status };
      } catch (err) {
        ctx.signal.throwIfAborted();
        check = { up: false, status: null, error: failureReason(err, signal, input.timeoutMs) };
      }
      const latencyMs = Math.round(performance.now() - started);
      const at = ctx.now();
      return deps.state.update("uptime_check", ToolState.key("uptime", input.url), History, (current) => {
        const samples = [...(current?.samples ?? []).filter((s) => s.at >= at - KEEP_MS && s.at <= at), { at, up: check.up, status: check.status, ms: latencyMs }].slice(-MAX_SAMPLES);
        return {
          next: { url: input.url, samples },
          result: {
            url: input.url,
            up: check.up,
            status: check.status,
            latencyMs,
            ...(check.error ? { error: check.error } : {}),
            at: new Date(at).toISOString(),
            availability: { last24h: availability(samples, at - DAY_MS), last7d: availability(samples, at - KEEP_MS) },
            streak: streak(samples),
          },
        };
      });
    },
  });
}
