import { createHash } from "node:crypto";
import { parseFeed } from "@rowanmanning/feed-parser";
import { z } from "zod";
import { FleetError } from "../../protocol/index.js";
import { defineTool, type ToolDefinition } from "../tool.js";
import { fetchOrFail, readText } from "./http-fetch.js";
import { ToolState } from "./tool-state.js";

/*
 * AUTO, tier 0: an RSS or Atom feed, parsed by @rowanmanning/feed-parser (lenient with real-world feeds), answering only
 * what is new since the last scan of the same URL. The items seen are remembered in KV toolstate (a short hash per item,
 * the newest MAX_REMEMBERED), so a duty that scans every hour reports each item once, and a scan that finds nothing new
 * answers with an empty list: nothing for a model to read.
 */

const MAX_REMEMBERED = 2_000;

const SeenRecord = z.object({ url: z.string(), seen: z.array(z.string()), scans: z.number().int().nonnegative(), lastScanAt: z.number() });

const FeedItem = z.object({
  id: z.string(),
  title: z.string().nullable(),
  url: z.string().nullable(),
  published: z.string().nullable(),
  summary: z.string().nullable(),
});
type FeedItem = z.infer<typeof FeedItem>;

const SUMMARY_CHARS = 500;

/** An item's identity: its guid/id, else its link, else its title and date (feeds without either exist). */
function identity(item: { id: string | null; url: string | null; title: string | null; published: Date | null }): string {
  return item.id ?? item.url ?? `${item.title ?? ""}|${item.published?.toISOString() ?? ""}`;
}

/** When the item was published, or last updated when it says only that (Atom entries often do). */
const dateOf = (item: { published: Date | null; updated: Date | null }): Date | null => item.published ?? item.updated;

const shortHash = (text: string) => createHash("sha256").update(text).digest("hex").slice(0, 16);

function plain(html: string | null): string | null {
  if (html === null) return null;
  const text = html.replace(/<[^>]*>/g, " ").replace(/\s+/g, " ").trim();
  return text.length > SUMMARY_CHARS ? `${text.slice(0, SUMMARY_CHARS)}…` : text;
}

export function feedFetch(deps: { state: ToolState }): ToolDefinition {
  return defineTool({
    name: "feed_fetch",
    description:
      "Fetch an RSS or Atom feed and report only the items not seen in earlier scans of the same URL (the first scan reports every item, newest first, up to max).",
    risk: "AUTO",
    input: z.strictObject({
      url: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }),
      /** the most items one answer lists (newest first); the rest are remembered as seen and counted in `omitted` */
      max: z.number().int().min(1).max(200).default(20),
      timeoutMs: z.number().int().min(1).max(60_000).default(15_000),
    }),
    targetFields: ["url"],
    handler: async (input, ctx) => {
      const res = await fetchOrFail("feed_fetch", input.url, ctx, input.timeoutMs, { headers: { accept: "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.5" } });
      if (!res.ok) {
        await res.body?.cancel().catch(() => undefined);
        throw new FleetError("TOOL_FAILED", `feed_fetch: ${input.url} answered HTTP ${res.status}`);
      }
      const { text, truncated } = await readText(res);
      if (truncated) throw new FleetError("TOOL_FAILED", `feed_fetch: ${input.url} is larger than the feed limit`);
      let feed: ReturnType<typeof parseFeed>;
      try {
        feed = parseFeed(text);
      } catch (err) {
        throw new FleetError("TOOL_FAILED", `feed_fetch: ${input.url} is not an RSS or Atom feed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
      const items = feed.items
        .map((item, order) => ({ item, order, key: shortHash(identity(item)) }))
        // newest first where the feed dates its items; feed order otherwise (feeds list newest first by convention)
        .sort((a, b) => (dateOf(b.item)?.getTime() ?? 0) - (dateOf(a.item)?.getTime() ?? 0) || a.order - b.order);

      return deps.state.update("feed_fetch", ToolState.key("feed", input.url), SeenRecord, (current) => {
        const seen = new Set(current?.seen ?? []);
        const fresh = items.filter(({ key }) => !seen.has(key));
        const listed: FeedItem[] = fresh.slice(0, input.max).map(({ item, key }) => ({
          id: item.id ?? key,
          title: item.title,
          url: item.url,
          published: dateOf(item)?.toISOString() ?? null,
          summary: plain(item.description ?? item.content),
        }));
        // this scan's keys first, so the ones dropped at the cap are the longest gone from the feed
        const remembered = [...new Set([...items.map((i) => i.key), ...(current?.seen ?? [])])].slice(0, MAX_REMEMBERED);
        const next = { url: input.url, seen: remembered, scans: (current?.scans ?? 0) + 1, lastScanAt: ctx.now() };
        const result = {
          url: input.url,
          title: feed.title,
          format: feed.meta.type,
          firstScan: current === undefined,
          total: items.length,
          newCount: fresh.length,
          items: listed,
          omitted: fresh.length - listed.length,
        };
        return { next, result };
      });
    },
  });
}
