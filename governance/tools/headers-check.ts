import { z } from "zod";
import { defineTool } from "../tool.js";
import { callSignal, failureReason } from "./http-fetch.js";

/*
 * AUTO: the security headers of a URL's response, each judged ok, missing or weak with the reason, as a security audit
 * reads them. HSTS is judged only over https (browsers ignore it over http, so its absence there is "n/a", not a fault).
 */

const SIX_MONTHS_S = 15_552_000;

export type HeaderState = "ok" | "missing" | "weak" | "n/a";
export interface HeaderVerdict {
  header: string;
  state: HeaderState;
  value?: string;
  why?: string;
}

/** CSP directives by name; a directive named twice counts once (the first, as browsers do). */
function cspDirectives(csp: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const part of csp.split(";")) {
    const [name, ...values] = part.trim().split(/\s+/);
    if (name && !out.has(name.toLowerCase())) out.set(name.toLowerCase(), values);
  }
  return out;
}

export function judgeHeaders(headers: Headers, https: boolean): HeaderVerdict[] {
  const get = (name: string) => headers.get(name) ?? undefined;
  const verdicts: HeaderVerdict[] = [];
  const add = (header: string, state: HeaderState, value: string | undefined, why?: string) =>
    verdicts.push({ header, state, ...(value !== undefined ? { value } : {}), ...(why ? { why } : {}) });

  const hsts = get("strict-transport-security");
  if (!https) add("Strict-Transport-Security", "n/a", hsts, "only honoured over https");
  else if (!hsts) add("Strict-Transport-Security", "missing", undefined, "browsers may be downgraded to http");
  else {
    const maxAge = Number(/max-age\s*=\s*"?(\d+)"?/i.exec(hsts)?.[1] ?? NaN);
    if (!Number.isFinite(maxAge)) add("Strict-Transport-Security", "weak", hsts, "no valid max-age");
    else if (maxAge < SIX_MONTHS_S) add("Strict-Transport-Security", "weak", hsts, `max-age ${maxAge} s is under six months (${SIX_MONTHS_S})`);
    else add("Strict-Transport-Security", "ok", hsts);
  }

  const csp = get("content-security-policy");
  const directives = cspDirectives(csp ?? "");
  if (!csp) add("Content-Security-Policy", "missing", undefined, "nothing limits where scripts may come from");
  else {
    const scripts = directives.get("script-src") ?? directives.get("default-src");
    const problems: string[] = [];
    if (!scripts) problems.push("neither script-src nor default-src is set");
    else {
      if (scripts.includes("'unsafe-inline'") && !scripts.some((s) => /^'(nonce-|sha256-|sha384-|sha512-|strict-dynamic)/.test(s))) problems.push("scripts allow 'unsafe-inline'");
      if (scripts.includes("'unsafe-eval'")) problems.push("scripts allow 'unsafe-eval'");
      if (scripts.some((s) => s === "*" || s === "http:" || s === "https:" || s === "data:")) problems.push("scripts may come from any host");
    }
    if (problems.length > 0) add("Content-Security-Policy", "weak", csp, problems.join("; "));
    else add("Content-Security-Policy", "ok", csp);
  }

  const nosniff = get("x-content-type-options");
  if (!nosniff) add("X-Content-Type-Options", "missing", undefined, "browsers may sniff content types");
  else if (nosniff.trim().toLowerCase() !== "nosniff") add("X-Content-Type-Options", "weak", nosniff, 'the only valid value is "nosniff"');
  else add("X-Content-Type-Options", "ok", nosniff);

  // framing is controlled by CSP frame-ancestors (which supersedes it) or by X-Frame-Options
  const xfo = get("x-frame-options");
  const ancestors = directives.get("frame-ancestors");
  const framing = "X-Frame-Options / frame-ancestors";
  if (ancestors) {
    if (ancestors.includes("*")) add(framing, "weak", `frame-ancestors ${ancestors.join(" ")}`, "any site may frame the page");
    else add(framing, "ok", `frame-ancestors ${ancestors.join(" ")}`);
  } else if (!xfo) add(framing, "missing", undefined, "the page may be framed by any site (clickjacking)");
  else if (/^(deny|sameorigin)$/i.test(xfo.trim())) add(framing, "ok", xfo);
  else add(framing, "weak", xfo, "only DENY and SAMEORIGIN are honoured (ALLOW-FROM is obsolete)");

  const referrer = get("referrer-policy");
  if (!referrer) add("Referrer-Policy", "missing", undefined, "the browser default applies");
  else {
    // the last policy a browser understands wins; judge that one
    const policy = referrer.split(",").map((p) => p.trim().toLowerCase()).filter(Boolean).at(-1) ?? "";
    if (policy === "unsafe-url" || policy === "no-referrer-when-downgrade") add("Referrer-Policy", "weak", referrer, `${policy} sends full URLs to other sites`);
    else add("Referrer-Policy", "ok", referrer);
  }

  const permissions = get("permissions-policy");
  if (!permissions) add("Permissions-Policy", "missing", undefined, "powerful features (camera, geolocation, …) are not restricted");
  else add("Permissions-Policy", "ok", permissions);
  return verdicts;
}

export const headersCheck = defineTool({
  name: "headers_check",
  description:
    "Fetch a URL and judge its security headers (HSTS, Content-Security-Policy, X-Content-Type-Options, X-Frame-Options/frame-ancestors, Referrer-Policy, Permissions-Policy): each ok, missing or weak, with why.",
  risk: "AUTO",
  input: z.strictObject({
    url: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }),
    timeoutMs: z.number().int().min(1).max(60_000).default(10_000),
  }),
  targetFields: ["url"],
  handler: async (input, ctx) => {
    const signal = callSignal(ctx, input.timeoutMs);
    let res: Response;
    try {
      res = await fetch(input.url, { signal, redirect: "follow" });
    } catch (err) {
      ctx.signal.throwIfAborted();
      return { url: input.url, status: null, reachable: false, error: failureReason(err, signal, input.timeoutMs) };
    }
    await res.body?.cancel().catch(() => undefined);
    // the headers that count are the final response's: the one a browser renders
    const https = new URL(res.url || input.url).protocol === "https:";
    const headers = judgeHeaders(res.headers, https);
    return {
      url: input.url,
      finalUrl: res.url || input.url,
      status: res.status,
      reachable: true,
      headers,
      missing: headers.filter((h) => h.state === "missing").map((h) => h.header),
      weak: headers.filter((h) => h.state === "weak").map((h) => h.header),
    };
  },
});
