import { z } from "zod";
import { defineTool } from "../tool.js";
import { elementTexts, metaContent, tags } from "./html-text.js";
import { callSignal, failureReason, readText } from "./http-fetch.js";

/*
 * AUTO: the on-page SEO basics of one URL, judged by fixed rules (the ones an audit checklist names): the status, a
 * title of 10–60 characters, a meta description of 50–160, exactly one h1, a canonical link, no noindex, a language,
 * a viewport, and images with alt text. Each problem is an issue with its severity; a clean page has none.
 */

export interface SeoIssue {
  check: string;
  severity: "error" | "warning";
  message: string;
}

export function auditHtml(html: string, status: number): { facts: Record<string, unknown>; issues: SeoIssue[] } {
  const issues: SeoIssue[] = [];
  const issue = (check: string, severity: SeoIssue["severity"], message: string) => issues.push({ check, severity, message });
  if (status !== 200) issue("status", "error", `HTTP ${status}`);
  const title = elementTexts(html, "title")[0]?.trim();
  if (!title) issue("title", "error", "no <title>");
  else if (title.length < 10 || title.length > 60) issue("title", "warning", `title is ${title.length} characters (10–60 reads well in results)`);
  const description = metaContent(html, "description")?.trim();
  if (!description) issue("meta_description", "error", "no meta description");
  else if (description.length < 50 || description.length > 160) issue("meta_description", "warning", `meta description is ${description.length} characters (50–160)`);
  const h1 = elementTexts(html, "h1");
  if (h1.length !== 1) issue("h1", "warning", `${h1.length} <h1> elements (one expected)`);
  const canonical = tags(html, "link").find((l) => (l.rel ?? "").toLowerCase().split(/\s+/).includes("canonical"))?.href;
  if (!canonical) issue("canonical", "warning", "no canonical link");
  const robots = metaContent(html, "robots") ?? "";
  if (/noindex/i.test(robots)) issue("robots", "error", `meta robots says "${robots}": the page is kept out of search results`);
  const lang = tags(html, "html")[0]?.lang;
  if (!lang) issue("lang", "warning", "<html> has no lang");
  if (!metaContent(html, "viewport")) issue("viewport", "warning", "no viewport meta (mobile rendering)");
  const images = tags(html, "img");
  const withoutAlt = images.filter((i) => i.alt === undefined).length;
  if (withoutAlt > 0) issue("img_alt", "warning", `${withoutAlt} of ${images.length} images have no alt text`);
  return {
    facts: { title: title ?? null, metaDescription: description ?? null, h1, canonical: canonical ?? null, robots: robots || null, lang: lang ?? null, images: images.length },
    issues,
  };
}

export const seoAudit = defineTool({
  name: "seo_audit",
  description:
    "Audit one page's on-page SEO basics (status, title length, meta description, one h1, canonical, noindex, lang, viewport, image alt text) and list each problem with its severity.",
  risk: "AUTO",
  input: z.strictObject({
    url: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }),
    timeoutMs: z.number().int().min(1).max(60_000).default(15_000),
  }),
  targetFields: ["url"],
  handler: async (input, ctx) => {
    const signal = callSignal(ctx, input.timeoutMs);
    let res: Response;
    try {
      res = await fetch(input.url, { signal, redirect: "follow", headers: { accept: "text/html" } });
    } catch (err) {
      ctx.signal.throwIfAborted();
      return { url: input.url, status: null, reachable: false, error: failureReason(err, signal, input.timeoutMs) };
    }
    const { text } = await readText(res, 2 * 1024 * 1024);
    const { facts, issues } = auditHtml(text, res.status);
    return { url: input.url, finalUrl: res.url || input.url, status: res.status, reachable: true, ...facts, issues, errors: issues.filter((i) => i.severity === "error").length };
  },
});
