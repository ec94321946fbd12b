import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Logger } from "pino";
import { z } from "zod";
import {
  dayOf,
  initialContacts,
  initialPages,
  KEYWORDS,
  leadScore,
  REVENUE_SITE_NAMES,
  revenueDay,
  searchConsoleRows,
  SERPS,
  SITES,
  trafficDay,
  type Contact,
  type Draft,
  type Page,
} from "./standin-data.js";

/*
 * The business stand-in: a local HTTP service with JSON endpoints (CRM, CMS, analytics, search console, revenue, keyword
 * and ranking data) answering from fixture data, so the reference fleet's business tools work offline, in tests and in
 * demos (`fleet run standin`). A real deployment points `business.url` at a service speaking the same API (an adapter to
 * its CRM and analytics), or gives agents those systems' MCP servers instead. The API is documented in the README.
 */

export interface BusinessStandinOptions {
  port: number;
  host?: string;
  log: Logger;
  /** the service's clock: every series is relative to its day */
  now?: () => number;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const ContactPatch = z.strictObject({
  stage: z.enum(["lead", "qualified", "customer", "churned"]).optional(),
  owner: z.string().min(1).max(64).optional(),
  plan: z.string().min(1).max(64).nullable().optional(),
  notes: z.string().max(2000).optional(),
});
const EmailDraftBody = z.strictObject({ contactId: z.string().min(1), subject: z.string().min(1).max(200), body: z.string().min(1).max(20_000) });
const PostDraftBody = z.strictObject({ title: z.string().min(1).max(200), body: z.string().min(1).max(100_000) });
const MetaBody = z.strictObject({ slug: z.string().min(1), title: z.string().min(1).max(200).optional(), metaDescription: z.string().max(400).optional() });

type Route = (req: { params: string[]; query: URLSearchParams; body: unknown; key: string | undefined }) => unknown;

export class BusinessStandin {
  private server: Server | undefined;
  private readonly contacts = initialContacts();
  private readonly pages = initialPages();
  private readonly drafts = new Map<string, Draft>();
  private readonly byKey = new Map<string, Draft>();
  private nextDraft = 1;
  private readonly now: () => number;
  private readonly routes: [string, RegExp, Route][];

  constructor(private readonly options: BusinessStandinOptions) {
    this.now = options.now ?? (() => Date.now());
    this.routes = [
      ["GET", /^\/health$/, () => ({ ok: true, sites: SITES })],
      ["GET", /^\/crm\/contacts$/, ({ query }) => this.listContacts(query)],
      ["GET", /^\/crm\/contacts\/([\w-]+)$/, ({ params }) => ({ contact: this.contact(params[0]) })],
      ["GET", /^\/crm\/contacts\/([\w-]+)\/score$/, ({ params }) => ({ id: params[0], ...leadScore(this.contact(params[0])) })],
      ["PATCH", /^\/crm\/contacts\/([\w-]+)$/, ({ params, body }) => this.patchContact(this.contact(params[0]), parse(ContactPatch, body))],
      ["GET", /^\/crm\/drafts$/, () => ({ drafts: [...this.drafts.values()].filter((d) => d.kind === "email") })],
      ["POST", /^\/crm\/drafts$/, ({ body, key }) => this.emailDraft(parse(EmailDraftBody, body), key)],
      ["DELETE", /^\/crm\/drafts\/([\w-]+)$/, ({ params }) => this.deleteDraft(params[0], "email")],
      ["GET", /^\/analytics\/([\w.-]+)$/, ({ params, query }) => this.analytics(this.site(params[0]), days(query, 7))],
      ["GET", /^\/search-console\/([\w.-]+)$/, ({ params, query }) => ({ site: this.site(params[0]), days: days(query, 28), rows: searchConsoleRows(this.site(params[0]), days(query, 28), this.now()) })],
      ["GET", /^\/revenue$/, ({ query }) => this.revenue(days(query, 7), query.get("site") ?? undefined)],
      ["GET", /^\/cms\/([\w.-]+)\/pages$/, ({ params, query }) => this.cmsPages(this.site(params[0]), query.get("slug") ?? undefined)],
      ["PUT", /^\/cms\/([\w.-]+)\/meta$/, ({ params, body }) => this.setMeta(this.site(params[0]), parse(MetaBody, body))],
      ["GET", /^\/cms\/([\w.-]+)\/drafts$/, ({ params }) => ({ drafts: [...this.drafts.values()].filter((d) => d.kind === "post" && d.site === this.site(params[0])) })],
      ["POST", /^\/cms\/([\w.-]+)\/drafts$/, ({ params, body, key }) => this.postDraft(this.site(params[0]), parse(PostDraftBody, body), key)],
      ["DELETE", /^\/cms\/([\w.-]+)\/drafts\/([\w-]+)$/, ({ params }) => this.deleteDraft(params[1], "post")],
      ["GET", /^\/seo\/keywords$/, ({ query }) => this.keyword(required(query, "q"))],
      ["GET", /^\/seo\/serp$/, ({ query }) => this.serp(required(query, "keyword"), query.get("domain") ?? undefined)],
    ];
  }

  /** Listens; the port it got (0 asks for a free one). */
  async start(): Promise<number> {
    const server = createServer((req, res) => void this.handle(req, res));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.options.port, this.options.host ?? "127.0.0.1", () => resolve());
    });
    const address = server.address();
    const port = typeof address === "object" && address ? address.port : this.options.port;
    this.options.log.info({ port }, "business stand-in listening");
    return port;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    this.server = undefined;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://standin");
    try {
      const route = this.routes.find(([method, pattern]) => method === req.method && pattern.test(url.pathname));
      if (!route) throw new HttpError(404, `no endpoint ${req.method} ${url.pathname}`);
      const params = (route[1].exec(url.pathname) ?? []).slice(1).map((p) => decodeURIComponent(p));
      const body = req.method === "GET" || req.method === "DELETE" ? undefined : await readJson(req);
      const key = typeof req.headers["idempotency-key"] === "string" ? req.headers["idempotency-key"] : undefined;
      reply(res, 200, route[2]({ params, query: url.searchParams, body, key }));
    } catch (err) {
      const status = err instanceof HttpError ? err.status : 500;
      if (status === 500) this.options.log.error({ err }, "stand-in request failed");
      reply(res, status, { error: err instanceof Error ? err.message : String(err) });
    }
  }

  private site(name: string | undefined): string {
    const site = SITES.find((s) => s === name);
    if (!site) throw new HttpError(404, `no site "${name}" (sites: ${SITES.join(", ")})`);
    return site;
  }

  private contact(id: string | undefined): Contact {
    const found = this.contacts.find((c) => c.id === id);
    if (!found) throw new HttpError(404, `no contact "${id}"`);
    return found;
  }

  private listContacts(query: URLSearchParams) {
    const stage = query.get("stage");
    const q = query.get("q")?.toLowerCase();
    return {
      contacts: this.contacts
        .filter((c) => (!stage || c.stage === stage) && (!q || `${c.name} ${c.company} ${c.notes}`.toLowerCase().includes(q)))
        .map((c) => ({ ...c, lastActivityDaysAgo: Math.min(...c.activity.map((a) => a.daysAgo), 9999) })),
    };
  }

  private patchContact(contact: Contact, patch: z.infer<typeof ContactPatch>) {
    // what the change replaces, field by field: the caller's rollback writes exactly this back
    const previous: Partial<Pick<Contact, "stage" | "owner" | "plan" | "notes">> = {};
    if (patch.stage !== undefined) {
      previous.stage = contact.stage;
      contact.stage = patch.stage;
    }
    if (patch.owner !== undefined) {
      previous.owner = contact.owner;
      contact.owner = patch.owner;
    }
    if (patch.plan !== undefined) {
      previous.plan = contact.plan;
      contact.plan = patch.plan;
    }
    if (patch.notes !== undefined) {
      previous.notes = contact.notes;
      contact.notes = patch.notes;
    }
    return { contact, previous };
  }

  private newDraft(draft: Omit<Draft, "id" | "createdAt">, key: string | undefined): { draft: Draft; repeated: boolean } {
    // a repeated request (the same idempotency key) gets the draft it made the first time
    const earlier = key ? this.byKey.get(key) : undefined;
    if (earlier) return { draft: earlier, repeated: true };
    const made: Draft = { ...draft, id: `d-${this.nextDraft++}`, createdAt: new Date(this.now()).toISOString() };
    this.drafts.set(made.id, made);
    if (key) this.byKey.set(key, made);
    return { draft: made, repeated: false };
  }

  private emailDraft(body: z.infer<typeof EmailDraftBody>, key: string | undefined) {
    this.contact(body.contactId);
    return this.newDraft({ kind: "email", contactId: body.contactId, title: body.subject, body: body.body }, key);
  }

  private postDraft(site: string, body: z.infer<typeof PostDraftBody>, key: string | undefined) {
    return this.newDraft({ kind: "post", site, title: body.title, body: body.body }, key);
  }

  private deleteDraft(id: string | undefined, kind: Draft["kind"]) {
    const draft = id ? this.drafts.get(id) : undefined;
    // deleting what is already gone is done: a repeated rollback must not fail
    if (!draft || draft.kind !== kind) return { deleted: id, existed: false };
    this.drafts.delete(draft.id);
    return { deleted: id, existed: true };
  }

  private analytics(site: string, n: number) {
    const series = Array.from({ length: n }, (_, i) => n - i).map((ago) => trafficDay(site, dayOf(this.now(), ago), ago));
    const visits = series.reduce((s, d) => s + d.visits, 0);
    const conversions = series.reduce((s, d) => s + d.conversions, 0);
    return { site, days: series, totals: { visits, conversions, conversionRate: visits ? Math.round((10_000 * conversions) / visits) / 10_000 : 0 } };
  }

  private revenue(n: number, site: string | undefined) {
    const sites = site ? [this.site(site)] : REVENUE_SITE_NAMES;
    const daily = Array.from({ length: n }, (_, i) => n - i).map((ago) => {
      const date = dayOf(this.now(), ago);
      const bySite = Object.fromEntries(sites.map((s) => [s, revenueDay(s, date)]));
      return { date, totalUsd: Math.round(Object.values(bySite).reduce((a, b) => a + b, 0) * 100) / 100, bySite };
    });
    const bySite = Object.fromEntries(sites.map((s) => [s, Math.round(daily.reduce((a, d) => a + (d.bySite[s] ?? 0), 0) * 100) / 100]));
    return { days: n, totalUsd: Math.round(daily.reduce((a, d) => a + d.totalUsd, 0) * 100) / 100, bySite, daily };
  }

  private cmsPages(site: string, slug: string | undefined) {
    const pages = this.pages.get(site) ?? [];
    if (slug === undefined) return { site, pages };
    return { site, page: this.page(site, slug) };
  }

  private page(site: string, slug: string): Page {
    const page = (this.pages.get(site) ?? []).find((p) => p.slug === slug);
    if (!page) throw new HttpError(404, `no page "${slug}" on ${site}`);
    return page;
  }

  private setMeta(site: string, body: z.infer<typeof MetaBody>) {
    const page = this.page(site, body.slug);
    const previous = { title: page.title, metaDescription: page.metaDescription };
    if (body.title !== undefined) page.title = body.title;
    if (body.metaDescription !== undefined) page.metaDescription = body.metaDescription;
    return { site, page, previous };
  }

  private keyword(q: string) {
    const data = KEYWORDS[q.toLowerCase()];
    return data ? { keyword: q, found: true, ...data } : { keyword: q, found: false };
  }

  private serp(keyword: string, domain: string | undefined) {
    const domains = SERPS[keyword.toLowerCase()];
    if (!domains) return { keyword, found: false };
    const results = domains.map((d, i) => ({ position: i + 1, domain: d }));
    const position = domain ? (results.find((r) => r.domain === domain.toLowerCase())?.position ?? null) : undefined;
    return { keyword, found: true, results, ...(domain ? { domain, position } : {}) };
  }
}

function parse<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw new HttpError(400, parsed.error.issues.map((i) => `${i.path.join(".") || "(body)"}: ${i.message}`).join("; "));
  return parsed.data;
}

function days(query: URLSearchParams, fallback: number): number {
  const raw = query.get("days");
  if (raw === null) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 90) throw new HttpError(400, "days must be a whole number from 1 to 90");
  return n;
}

function required(query: URLSearchParams, name: string): string {
  const value = query.get(name);
  if (!value) throw new HttpError(400, `query parameter ${name} is required`);
  return value;
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 256 * 1024) throw new HttpError(413, "body too large");
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new HttpError(400, "the body is not JSON");
  }
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}
