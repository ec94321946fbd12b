import { createHash } from "node:crypto";

/*
 * The business stand-in's data: a small, deterministic picture of the reference company (five sites, a CRM, a CMS,
 * analytics, search console, revenue, keyword and ranking data) for tests and offline demos. Series are computed from the
 * site and the day (a hash, never Math.random), relative to the service's clock, so the same day always shows the same
 * numbers; one anomaly is built in (docs.dcode.dev lost most of yesterday's visits) for the analytics agent to find.
 * Writes (contact fields, page meta tags, drafts) live in memory until the process ends.
 */

export const SITES = ["dcode.dev", "docs.dcode.dev", "blog.dcode.dev", "shop.dcode.dev", "app.dcode.dev"] as const;
const DAY_MS = 86_400_000;

export type Stage = "lead" | "qualified" | "customer" | "churned";
export interface Activity {
  type: "visit" | "pricing_visit" | "email_open" | "demo" | "trial" | "support_ticket" | "invoice_paid";
  daysAgo: number;
}
export interface Contact {
  id: string;
  name: string;
  company: string;
  email: string;
  stage: Stage;
  owner: string;
  plan: string | null;
  mrrUsd: number;
  notes: string;
  activity: Activity[];
}
export interface Page {
  slug: string;
  title: string;
  metaDescription: string;
  body: string;
  status: "published" | "draft";
}
export interface Draft {
  id: string;
  kind: "email" | "post";
  site?: string;
  contactId?: string;
  title: string;
  body: string;
  createdAt: string;
}

const contact = (id: string, name: string, company: string, stage: Stage, plan: string | null, mrrUsd: number, activity: Activity[], notes = ""): Contact => ({
  id,
  name,
  company,
  email: `${name.split(" ")[0]?.toLowerCase()}@${company.toLowerCase().replace(/[^a-z]/g, "")}.example`,
  stage,
  owner: "closer",
  plan,
  mrrUsd,
  notes,
  activity,
});

export function initialContacts(): Contact[] {
  return [
    contact("c-101", "Ada Brandt", "Nordlicht GmbH", "lead", null, 0, [{ type: "visit", daysAgo: 1 }, { type: "pricing_visit", daysAgo: 1 }, { type: "email_open", daysAgo: 2 }]),
    contact("c-102", "Ben Okafor", "Kite Labs", "qualified", null, 0, [{ type: "demo", daysAgo: 6 }, { type: "trial", daysAgo: 5 }, { type: "visit", daysAgo: 4 }], "asked for SSO"),
    contact("c-103", "Chen Wei", "Tallow & Co", "lead", null, 0, [{ type: "visit", daysAgo: 21 }]),
    contact("c-104", "Dana Ruiz", "Orbital Shop", "customer", "team", 290, [{ type: "invoice_paid", daysAgo: 3 }, { type: "visit", daysAgo: 0 }]),
    contact("c-105", "Emil Sander", "Fjord Analytics", "customer", "pro", 990, [{ type: "support_ticket", daysAgo: 2 }, { type: "support_ticket", daysAgo: 9 }, { type: "support_ticket", daysAgo: 12 }], "billing complaint open"),
    contact("c-106", "Fatima Noor", "Quillworks", "customer", "team", 290, [{ type: "invoice_paid", daysAgo: 33 }]),
    contact("c-107", "Gus Lindqvist", "Moss Media", "churned", null, 0, [{ type: "visit", daysAgo: 45 }], "moved to a competitor in March"),
    contact("c-108", "Hana Sato", "Bento Cloud", "qualified", null, 0, [{ type: "pricing_visit", daysAgo: 0 }, { type: "email_open", daysAgo: 1 }, { type: "demo", daysAgo: 3 }]),
  ];
}

const WEIGHTS: Record<Activity["type"], number> = { visit: 3, pricing_visit: 10, email_open: 4, demo: 18, trial: 22, support_ticket: -4, invoice_paid: 5 };
const STAGE_BASE: Record<Stage, number> = { lead: 10, qualified: 30, customer: 50, churned: 0 };

/** The CRM's lead score (0–100): a base by stage plus each activity's weight, halved for every two weeks of its age. */
export function leadScore(c: Contact): { score: number; factors: { factor: string; points: number }[] } {
  const factors = [{ factor: `stage ${c.stage}`, points: STAGE_BASE[c.stage] }];
  for (const a of c.activity) factors.push({ factor: `${a.type} ${a.daysAgo}d ago`, points: Math.round(WEIGHTS[a.type] * 0.5 ** (a.daysAgo / 14) * 10) / 10 });
  const score = Math.max(0, Math.min(100, Math.round(factors.reduce((sum, f) => sum + f.points, 0))));
  return { score, factors };
}

export function initialPages(): Map<string, Page[]> {
  const page = (slug: string, title: string, metaDescription: string, body: string): Page => ({ slug, title, metaDescription, body, status: "published" });
  return new Map<string, Page[]>([
    ["dcode.dev", [page("/", "dcode — developer tools that ship", "Developer tools for teams that ship every day: builds, previews and deploys in one place.", "Ship faster with dcode."), page("/pricing", "Pricing", "", "Team $290/month. Pro $990/month.")]],
    ["docs.dcode.dev", [page("/", "dcode documentation", "Guides and API reference for dcode: set up builds, previews and deploys.", "Getting started."), page("/api", "API reference — dcode docs", "Every endpoint of the dcode API with examples.", "GET /v1/builds …")]],
    ["blog.dcode.dev", [page("/", "The dcode blog", "Release notes and engineering stories from the dcode team.", "Latest posts."), page("/preview-environments", "Preview environments for every pull request: how we built them at dcode in 2024", "How preview environments work.", "…")]],
    ["shop.dcode.dev", [page("/", "dcode shop", "Stickers, shirts and mugs for people who ship.", "Shop.")]],
    ["app.dcode.dev", [page("/login", "Sign in — dcode", "Sign in to dcode.", "Sign in.")]],
  ]);
}

/** A deterministic number in [0, 1) for a key: the same key, the same number. */
function unit(key: string): number {
  return createHash("sha256").update(key).digest().readUInt32BE(0) / 2 ** 32;
}

const BASE_VISITS: Record<string, number> = { "dcode.dev": 4200, "docs.dcode.dev": 6100, "blog.dcode.dev": 1800, "shop.dcode.dev": 650, "app.dcode.dev": 2900 };
const CONVERSION: Record<string, number> = { "dcode.dev": 0.021, "docs.dcode.dev": 0.004, "blog.dcode.dev": 0.009, "shop.dcode.dev": 0.034, "app.dcode.dev": 0.012 };

export function dayOf(now: number, daysAgo: number): string {
  return new Date(Math.floor(now / DAY_MS) * DAY_MS - daysAgo * DAY_MS).toISOString().slice(0, 10);
}

/** One site's day: visits (weekday rhythm, slow growth, noise), conversions and bounce rate. */
export function trafficDay(site: string, day: string, daysAgo: number): { date: string; visits: number; conversions: number; bounceRate: number } {
  const weekday = new Date(`${day}T00:00:00Z`).getUTCDay();
  const rhythm = weekday === 0 || weekday === 6 ? 0.62 : 1;
  const growth = 1 - daysAgo * 0.002;
  const noise = 0.9 + 0.2 * unit(`${site}|${day}|visits`);
  // the built-in anomaly: yesterday the docs lost most of their visitors (a broken search index, say)
  const incident = site === "docs.dcode.dev" && daysAgo === 1 ? 0.38 : 1;
  const visits = Math.round((BASE_VISITS[site] ?? 500) * rhythm * growth * noise * incident);
  const conversions = Math.round(visits * (CONVERSION[site] ?? 0.01) * (0.85 + 0.3 * unit(`${site}|${day}|conv`)));
  return { date: day, visits, conversions, bounceRate: Math.round((0.35 + 0.2 * unit(`${site}|${day}|bounce`)) * 1000) / 1000 };
}

const QUERIES: Record<string, string[]> = {
  "dcode.dev": ["preview environments", "deploy previews", "dcode"],
  "docs.dcode.dev": ["dcode api", "dcode build config", "preview deploy github"],
  "blog.dcode.dev": ["preview environments pull request", "ci cd for small teams"],
  "shop.dcode.dev": ["developer stickers"],
  "app.dcode.dev": ["dcode login"],
};

export function searchConsoleRows(site: string, days: number, now: number) {
  return (QUERIES[site] ?? []).map((query, i) => {
    const impressions = Math.round(days * (900 - i * 180) * (0.8 + 0.4 * unit(`${site}|${query}|${dayOf(now, 0)}`)));
    const position = Math.round((2 + i * 3.1 + 2 * unit(`${site}|${query}|pos`)) * 10) / 10;
    const ctr = Math.round(Math.max(0.005, 0.32 / position) * 1000) / 1000;
    return { query, clicks: Math.round(impressions * ctr), impressions, ctr, position };
  });
}

const REVENUE_SITES: Record<string, number> = { "shop.dcode.dev": 180, "app.dcode.dev": 2400 };

export function revenueDay(site: string, day: string): number {
  const base = REVENUE_SITES[site];
  if (base === undefined) return 0;
  return Math.round(base * (0.8 + 0.4 * unit(`${site}|${day}|revenue`)) * 100) / 100;
}

export const REVENUE_SITE_NAMES = Object.keys(REVENUE_SITES);

export const KEYWORDS: Record<string, { volume: number; difficulty: number; cpcUsd: number; related: string[] }> = {
  "preview environments": { volume: 2900, difficulty: 41, cpcUsd: 6.2, related: ["ephemeral environments", "deploy previews", "review apps"] },
  "deploy previews": { volume: 1300, difficulty: 35, cpcUsd: 4.8, related: ["preview deployments", "pull request previews"] },
  "ephemeral environments": { volume: 1900, difficulty: 38, cpcUsd: 7.1, related: ["preview environments", "environment per branch"] },
  "ci cd for small teams": { volume: 480, difficulty: 22, cpcUsd: 3.9, related: ["simple ci cd", "ci cd pricing"] },
  "review apps": { volume: 880, difficulty: 30, cpcUsd: 5.5, related: ["heroku review apps alternative"] },
  "developer stickers": { volume: 1600, difficulty: 12, cpcUsd: 0.7, related: ["laptop stickers programmer"] },
};

export const SERPS: Record<string, string[]> = {
  "preview environments": ["vercel.com", "dcode.dev", "render.com", "netlify.com", "blog.dcode.dev", "gitlab.com", "release.com", "northflank.com", "qovery.com", "uffizzi.com"],
  "deploy previews": ["netlify.com", "vercel.com", "render.com", "docs.dcode.dev", "cloudflare.com", "github.com", "dcode.dev", "railway.app", "fly.io", "aws.amazon.com"],
  "ephemeral environments": ["release.com", "uffizzi.com", "qovery.com", "northflank.com", "bunnyshell.com", "shipyard.build", "okteto.com", "signadot.com", "garden.io", "loft.sh"],
  "ci cd for small teams": ["github.com", "gitlab.com", "circleci.com", "buildkite.com", "blog.dcode.dev", "semaphoreci.com", "travis-ci.com", "drone.io", "woodpecker-ci.org", "codefresh.io"],
};
