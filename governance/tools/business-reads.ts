import { z } from "zod";
import { defineTool, type ToolDefinition } from "../tool.js";
import type { BusinessApi } from "./business-api.js";

/*
 * AUTO: the reads of the business API that the reference agents name: the CRM (contacts, lead scores), analytics,
 * search console, revenue, the CMS's pages, keyword data and search rankings. Each is one GET; the answer is the API's.
 */

const Site = z.string().regex(/^[a-z0-9.-]{1,253}$/, "must be a site's host name, e.g. docs.dcode.dev");
const Days = (fallback: number) => z.number().int().min(1).max(90).default(fallback);

export function businessReads(api: BusinessApi): ToolDefinition[] {
  return [
    defineTool({
      name: "crm_read",
      description: "Read the CRM: one contact by id (with its activity), or the contacts filtered by stage (lead, qualified, customer, churned) and/or a text query.",
      risk: "AUTO",
      input: z.strictObject({
        id: z.string().regex(/^[\w-]{1,64}$/).optional(),
        stage: z.enum(["lead", "qualified", "customer", "churned"]).optional(),
        query: z.string().min(1).max(200).optional(),
      }),
      handler: (input, ctx) =>
        input.id ? api.request("crm_read", "GET", `/crm/contacts/${input.id}`, ctx) : api.request("crm_read", "GET", "/crm/contacts", ctx, { query: { stage: input.stage, q: input.query } }),
    }),
    defineTool({
      name: "lead_score",
      description: "The CRM's lead score (0-100) of a contact, with the factors it is made of (stage, recent activity).",
      risk: "AUTO",
      input: z.strictObject({ id: z.string().regex(/^[\w-]{1,64}$/) }),
      handler: (input, ctx) => api.request("lead_score", "GET", `/crm/contacts/${input.id}/score`, ctx),
    }),
    defineTool({
      name: "analytics_query",
      description: "A site's daily visits, conversions and bounce rate for the last N days (oldest first), with totals.",
      risk: "AUTO",
      input: z.strictObject({ site: Site, days: Days(7) }),
      handler: (input, ctx) => api.request("analytics_query", "GET", `/analytics/${input.site}`, ctx, { query: { days: input.days } }),
    }),
    defineTool({
      name: "search_console_query",
      description: "A site's search queries over the last N days: clicks, impressions, click-through rate and average position per query.",
      risk: "AUTO",
      input: z.strictObject({ site: Site, days: Days(28) }),
      handler: (input, ctx) => api.request("search_console_query", "GET", `/search-console/${input.site}`, ctx, { query: { days: input.days } }),
    }),
    defineTool({
      name: "revenue_query",
      description: "Revenue in USD over the last N days: the total, per site, and per day (one site or all).",
      risk: "AUTO",
      input: z.strictObject({ site: Site.optional(), days: Days(7) }),
      handler: (input, ctx) => api.request("revenue_query", "GET", "/revenue", ctx, { query: { days: input.days, site: input.site } }),
    }),
    defineTool({
      name: "cms_read",
      description: "Read a site's pages from the CMS (title, meta description, body, status): all of them, or the one at a slug such as /pricing.",
      risk: "AUTO",
      input: z.strictObject({ site: Site, slug: z.string().startsWith("/").max(300).optional() }),
      handler: (input, ctx) => api.request("cms_read", "GET", `/cms/${input.site}/pages`, ctx, { query: { slug: input.slug } }),
    }),
    defineTool({
      name: "keyword_lookup",
      description: "Search volume, difficulty (0-100), cost per click and related keywords for a keyword (found: false when there is no data).",
      risk: "AUTO",
      input: z.strictObject({ keyword: z.string().min(1).max(200) }),
      handler: (input, ctx) => api.request("keyword_lookup", "GET", "/seo/keywords", ctx, { query: { q: input.keyword } }),
    }),
    defineTool({
      name: "serp_rank",
      description: "The top search results for a keyword (position and domain) and, given a domain, its position (null when it is not in the top results).",
      risk: "AUTO",
      input: z.strictObject({ keyword: z.string().min(1).max(200), domain: z.string().regex(/^[a-z0-9.-]{1,253}$/).optional() }),
      handler: (input, ctx) => api.request("serp_rank", "GET", "/seo/serp", ctx, { query: { keyword: input.keyword, domain: input.domain } }),
    }),
  ];
}
