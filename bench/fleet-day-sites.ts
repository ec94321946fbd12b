import { createServer, type Server } from "node:http";
import { runsPerDay, scheduleOf, type FleetConfig } from "../config/index.js";

/*
 * The scripted day's outside world for bench/fleet-day: five sites on local ports (each with its security headers) and
 * an RSS feed. Two sites go down for a while, and the feed gains items three times, at fixed fractions of the day, so a
 * day has the failures and news the watches exist for, and the rest of it is quiet.
 */

export interface Outage {
  site: string;
  /** fractions of the day, [from, to) */
  from: number;
  to: number;
  status: number;
}

export const SITE_NAMES = ["dcode", "docs", "blog", "shop", "app"] as const;
export const OUTAGES: readonly Outage[] = [
  { site: "shop", from: 0.3, to: 0.4, status: 503 },
  { site: "app", from: 0.7, to: 0.75, status: 500 },
];
/** fractions of the day at which the feed gains two items (the first scan also reports the items it starts with) */
export const FEED_NEWS: readonly number[] = [0.25, 0.5, 0.8];

/**
 * The share of the day's watching runs (duties whose pipeline has finding rules) that find something new, as the script
 * makes them: each outage's first run (a problem seen again is still open, not new), the feed's first scan and each
 * news. What `fleet simulate` is told for the day instead of its default assumption.
 */
export function scriptedFindingRate(day: FleetConfig): number {
  const watches = (pipeline: string) => day.pipelines[pipeline]?.steps.some((s) => "findings" in s && (s.findings?.length ?? 0) > 0) ?? false;
  const runs = day.agents.flatMap((a) => a.duties).filter((d) => watches(d.pipeline)).reduce((n, d) => n + runsPerDay(scheduleOf(d), day.fleet.timeZone), 0);
  const finding = OUTAGES.length + 1 + FEED_NEWS.length;
  return runs > 0 ? Math.min(1, finding / runs) : 0;
}

const HEADERS = {
  "strict-transport-security": "max-age=31536000; includeSubDomains",
  "content-security-policy": "default-src 'self'",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "strict-origin-when-cross-origin",
  "permissions-policy": "camera=(), microphone=()",
};

export interface DaySites {
  sites: { name: string; port: number; url: string }[];
  feedUrl: string;
  /** requests answered with an outage status */
  failedRequests: number;
  close(): Promise<void>;
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("not listening");
  return address.port;
}

function rss(fraction: number): string {
  const items: string[] = [];
  const add = (id: string) => items.push(`<item><title>Advisory ${id}</title><link>https://example.org/${id}</link><guid>${id}</guid></item>`);
  add("start-1");
  add("start-2");
  FEED_NEWS.forEach((at, i) => {
    if (fraction >= at) {
      add(`news-${i}-a`);
      add(`news-${i}-b`);
    }
  });
  return `<?xml version="1.0"?><rss version="2.0"><channel><title>Stack advisories</title><link>https://example.org/</link><description>d</description>${items.reverse().join("")}</channel></rss>`;
}

/** Starts the sites and the feed; `fraction()` says how far into the day the run is. */
export async function startDaySites(fraction: () => number): Promise<DaySites> {
  const servers: Server[] = [];
  const state = { failedRequests: 0 };
  const sites: DaySites["sites"] = [];
  for (const name of SITE_NAMES) {
    const server = createServer((_req, res) => {
      const f = fraction();
      const outage = OUTAGES.find((o) => o.site === name && f >= o.from && f < o.to);
      if (outage) {
        state.failedRequests += 1;
        res.writeHead(outage.status, { "content-type": "text/plain" }).end("down");
        return;
      }
      res.writeHead(200, { "content-type": "text/html", ...HEADERS }).end(`<html><body>${name}</body></html>`);
    });
    servers.push(server);
    const port = await listen(server);
    sites.push({ name, port, url: `http://127.0.0.1:${port}/` });
  }
  const feed = createServer((_req, res) => void res.writeHead(200, { "content-type": "application/rss+xml" }).end(rss(fraction())));
  servers.push(feed);
  const feedPort = await listen(feed);
  return {
    sites,
    feedUrl: `http://127.0.0.1:${feedPort}/feed.xml`,
    get failedRequests() {
      return state.failedRequests;
    },
    close: async () => {
      await Promise.all(servers.map((s) => new Promise<void>((resolve) => {
        s.close(() => resolve());
        s.closeAllConnections();
      })));
    },
  };
}
