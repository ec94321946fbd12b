import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { jetstream } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino } from "pino";
import { z } from "zod";
import { parseFleetConfig } from "../../config/index.js";
import { judgeHeaders, referenceTools, ToolCatalogue, type ToolContext } from "../../governance/index.js";
import { connectNats, ensureFleetResources, FleetError, FleetNames } from "../../protocol/index.js";
import { NatsServer } from "../helpers/nats-server.js";

/** The reference tools that read the web, each against a local HTTP server: feeds, headers, uptime, pages, webhooks. */

const HOUR = 3600_000;
const DAY = 24 * HOUR;
const T0 = Date.parse("2026-03-02T10:00:00Z");

const config = parseFleetConfig(
  `fleet: { name: web, prefix: web, timeZone: UTC, dailyCapUsd: 10 }
tiers:
${["nano", "workhorse", "capable", "power", "premium"].map((t) => `  ${t}: { model: m-${t}, inputPerM: 1, outputPerM: 2 }`).join("\n")}
agents:
  - { id: atlas, name: Atlas, role: lead, layer: orchestration, defaultTier: power, cycleMinutes: 60, dailyCapUsd: 1, tools: ["*"], skills: [{ id: s, name: S, description: s, tags: [s] }] }
`,
  "web.yaml",
);

const rssItem = (n: number, day: number) =>
  `<item><guid>item-${n}</guid><title>Advisory ${n}</title><link>http://127.0.0.1/a/${n}</link><pubDate>${new Date(T0 + day * DAY).toUTCString()}</pubDate><description>&lt;p&gt;Details of ${n}&lt;/p&gt;</description></item>`;

describe("web tools", () => {
  const names = new FleetNames("web");
  let nats: NatsServer;
  let nc: NatsConnection;
  let toolState: KV;
  let catalogue: ToolCatalogue;
  let server: Server;
  let base: string;
  let rss = [rssItem(1, 0), rssItem(2, 1), rssItem(3, 2)];
  let flaky = 200;
  const hooks: { path: string; key: string | undefined; body: unknown }[] = [];

  const ctx = (now = () => Date.now()): ToolContext => ({ signal: AbortSignal.timeout(10_000), log: pino({ level: "silent" }), agentId: "atlas", idempotencyKey: "k-1", now });
  const run = async (name: string, input: unknown, c = ctx()) => {
    const tool = catalogue.require(name);
    return tool.handler(tool.input.parse(input), c);
  };
  const failsWith = (code: string, pattern: RegExp) => (err: unknown) => err instanceof FleetError && err.code === code && pattern.test(err.message);

  const body = async (req: IncomingMessage): Promise<unknown> => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  };

  before(async () => {
    nats = await NatsServer.start();
    nc = await connectNats({ servers: nats.url, name: "web-tools-test", longLived: false });
    toolState = (await ensureFleetResources(nc, names)).kv.toolstate;
    catalogue = new ToolCatalogue(referenceTools({ js: jetstream(nc), names, codec: "msgpack", config, toolState }));
    server = createServer((req, res) => {
      const path = (req.url ?? "/").split("?")[0];
      const send = (status: number, type: string, text: string, headers: Record<string, string> = {}) => res.writeHead(status, { "content-type": type, ...headers }).end(text);
      switch (path) {
        case "/rss":
          return send(200, "application/rss+xml", `<?xml version="1.0"?><rss version="2.0"><channel><title>Advisories</title><link>http://127.0.0.1/</link>${rss.join("")}</channel></rss>`);
        case "/atom":
          return send(200, "application/atom+xml", `<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Releases</title><id>urn:r</id><updated>2026-03-01T00:00:00Z</updated><entry><id>urn:r:1</id><title>v1.0</title><link href="http://127.0.0.1/r/1"/><updated>2026-03-01T00:00:00Z</updated></entry><entry><id>urn:r:2</id><title>v1.1</title><link href="http://127.0.0.1/r/2"/><updated>2026-03-02T00:00:00Z</updated></entry></feed>`);
        case "/secure":
          return send(200, "text/html", "ok", {
            "content-security-policy": "default-src 'self'; frame-ancestors 'none'",
            "x-content-type-options": "nosniff",
            "referrer-policy": "strict-origin-when-cross-origin",
            "permissions-policy": "camera=(), geolocation=()",
          });
        case "/weak":
          return send(200, "text/html", "ok", {
            "content-security-policy": "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'",
            "x-content-type-options": "sniff",
            "x-frame-options": "ALLOW-FROM https://evil.example",
            "referrer-policy": "unsafe-url",
          });
        case "/bare":
          return send(200, "text/plain", "ok");
        case "/flaky":
          return send(flaky, "text/plain", "…");
        case "/page":
          return send(200, "text/html; charset=utf-8", `<!doctype html><html lang="en"><head><title>Preview environments for teams</title>
<meta name="description" content="Every pull request gets its own preview environment, built and torn down automatically.">
<meta name="viewport" content="width=device-width"><link rel="canonical" href="http://127.0.0.1/page"><style>body{}</style><script>var x = "<b>no</b>";</script></head>
<body><h1>Preview environments</h1><p>Ship &amp; review <b>faster</b>.</p><img src="a.png" alt="diagram"><p>${"More words. ".repeat(20)}</p></body></html>`);
        case "/bad-page":
          return send(200, "text/html", `<html><head><meta name="robots" content="noindex, nofollow"></head><body><h1>A</h1><h1>B</h1><img src="x.png"></body></html>`);
        case "/hook":
        case "/undo":
          if (req.method !== "POST") return send(405, "text/plain", "POST only");
          return void body(req).then((b) => {
            hooks.push({ path, key: typeof req.headers["idempotency-key"] === "string" ? req.headers["idempotency-key"] : undefined, body: b });
            send(200, "application/json", JSON.stringify({ received: hooks.length }));
          });
        case "/hook-fails":
          return send(500, "text/plain", "receiver down");
        default:
          return send(404, "text/plain", "not found");
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    server.close();
    await nc.close();
    await nats.stop();
  });

  const FeedOut = z.object({
    title: z.string().nullable(),
    format: z.string(),
    firstScan: z.boolean(),
    total: z.number(),
    newCount: z.number(),
    omitted: z.number(),
    items: z.array(z.object({ id: z.string(), title: z.string().nullable(), url: z.string().nullable(), published: z.string().nullable(), summary: z.string().nullable() })),
  });

  it("feed_fetch (RSS): the first scan reports every item newest first; the next only what is new; nothing new is an empty list", async () => {
    const first = FeedOut.parse(await run("feed_fetch", { url: `${base}/rss` }));
    assert.equal(first.firstScan, true);
    assert.equal(first.format, "rss");
    assert.equal(first.title, "Advisories");
    assert.deepEqual(first.items.map((i) => i.id), ["item-3", "item-2", "item-1"]);
    assert.equal(first.items[0]?.summary, "Details of 3", "markup is reduced to text");

    const again = FeedOut.parse(await run("feed_fetch", { url: `${base}/rss` }));
    assert.deepEqual([again.firstScan, again.newCount, again.items.length], [false, 0, 0]);

    rss = [...rss, rssItem(4, 3)];
    const later = FeedOut.parse(await run("feed_fetch", { url: `${base}/rss` }));
    assert.deepEqual(later.items.map((i) => i.id), ["item-4"]);
    assert.equal(later.total, 4);
  });

  it("feed_fetch: max caps an answer; the rest are remembered and counted as omitted", async () => {
    const capped = FeedOut.parse(await run("feed_fetch", { url: `${base}/rss?capped`, max: 2 }));
    assert.deepEqual([capped.items.length, capped.newCount, capped.omitted], [2, 4, 2]);
    assert.equal(FeedOut.parse(await run("feed_fetch", { url: `${base}/rss?capped`, max: 2 })).newCount, 0);
  });

  it("feed_fetch (Atom), and a page that is no feed, a 404 and a process without KV toolstate are typed failures", async () => {
    const atom = FeedOut.parse(await run("feed_fetch", { url: `${base}/atom` }));
    assert.equal(atom.format, "atom");
    assert.deepEqual(atom.items.map((i) => [i.title, i.url]), [["v1.1", "http://127.0.0.1/r/2"], ["v1.0", "http://127.0.0.1/r/1"]]);
    await assert.rejects(run("feed_fetch", { url: `${base}/nope` }), failsWith("TOOL_FAILED", /answered HTTP 404/));
    await assert.rejects(run("feed_fetch", { url: `${base}/bare` }), failsWith("TOOL_FAILED", /not an RSS or Atom feed/));
    const describing = new ToolCatalogue(referenceTools({ js: jetstream(nc), names, codec: "msgpack", config }));
    const tool = describing.require("feed_fetch");
    await assert.rejects(tool.handler(tool.input.parse({ url: `${base}/atom` }), ctx()), failsWith("TOOL_UNAVAILABLE", /KV toolstate/));
  });

  const HeadersOut = z.object({
    status: z.number(),
    headers: z.array(z.object({ header: z.string(), state: z.string(), why: z.string().optional() })),
    missing: z.array(z.string()),
    weak: z.array(z.string()),
  });

  it("headers_check: ok, missing and weak headers with the reason; HSTS judged only over https", async () => {
    const secure = HeadersOut.parse(await run("headers_check", { url: `${base}/secure` }));
    assert.deepEqual(Object.fromEntries(secure.headers.map((h) => [h.header, h.state])), {
      "Strict-Transport-Security": "n/a",
      "Content-Security-Policy": "ok",
      "X-Content-Type-Options": "ok",
      "X-Frame-Options / frame-ancestors": "ok",
      "Referrer-Policy": "ok",
      "Permissions-Policy": "ok",
    });
    const weak = HeadersOut.parse(await run("headers_check", { url: `${base}/weak` }));
    assert.deepEqual(weak.weak, ["Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options / frame-ancestors", "Referrer-Policy"]);
    assert.match(weak.headers.find((h) => h.header === "Content-Security-Policy")?.why ?? "", /'unsafe-inline'.*'unsafe-eval'/);
    assert.deepEqual(weak.missing, ["Permissions-Policy"]);
    const bare = HeadersOut.parse(await run("headers_check", { url: `${base}/bare` }));
    assert.equal(bare.missing.length, 5);

    const https = (h: Record<string, string>) => Object.fromEntries(judgeHeaders(new Headers(h), true).map((v) => [v.header, v.state]));
    assert.equal(https({})["Strict-Transport-Security"], "missing");
    assert.equal(https({ "strict-transport-security": "max-age=3600" })["Strict-Transport-Security"], "weak");
    assert.equal(https({ "strict-transport-security": "max-age=31536000; includeSubDomains" })["Strict-Transport-Security"], "ok");
    assert.equal(https({ "content-security-policy": "script-src 'self' 'unsafe-inline' 'nonce-abc'" })["Content-Security-Policy"], "ok", "a nonce makes browsers ignore 'unsafe-inline'");

    const down = z.object({ reachable: z.boolean(), error: z.string() }).parse(await run("headers_check", { url: "http://127.0.0.1:1/" }));
    assert.equal(down.reachable, false);
  });

  const UptimeOut = z.object({
    up: z.boolean(),
    status: z.number().nullable(),
    error: z.string().optional(),
    availability: z.object({ last24h: z.object({ checks: z.number(), up: z.number(), percent: z.number().nullable() }), last7d: z.object({ checks: z.number(), up: z.number(), percent: z.number().nullable() }) }),
    streak: z.object({ state: z.string(), since: z.string(), checks: z.number() }),
  });

  it("uptime_check: every check is recorded; availability over 24 h and 7 days and the streak follow the tool host's clock", async () => {
    const url = `${base}/flaky`;
    const at = (ms: number) => run("uptime_check", { url }, ctx(() => T0 + ms)).then((o) => UptimeOut.parse(o));
    flaky = 200;
    await at(0);
    await at(1 * HOUR);
    flaky = 503;
    await at(2 * HOUR);
    const down = await at(3 * HOUR);
    assert.deepEqual([down.up, down.status], [false, 503]);
    assert.deepEqual(down.streak, { state: "down", since: new Date(T0 + 2 * HOUR).toISOString(), checks: 2 });
    assert.deepEqual(down.availability.last24h, { checks: 4, up: 2, percent: 50 });

    flaky = 200;
    const back = await at(25 * HOUR);
    assert.deepEqual(back.streak, { state: "up", since: new Date(T0 + 25 * HOUR).toISOString(), checks: 1 });
    // the 24 hours before T0+25h hold the checks at +1h (on the edge), +2h, +3h and +25h
    assert.deepEqual(back.availability.last24h, { checks: 4, up: 2, percent: 50 });
    assert.deepEqual(back.availability.last7d, { checks: 5, up: 3, percent: 60 });

    // a week later the history holds only the last seven days
    const week = await at(25 * HOUR + 7 * DAY);
    assert.deepEqual(week.availability.last7d, { checks: 2, up: 2, percent: 100 });

    const refused = await run("uptime_check", { url: "http://127.0.0.1:1/" }).then((o) => UptimeOut.parse(o));
    assert.equal(refused.up, false);
    assert.match(refused.error ?? "", /ECONNREFUSED|fetch failed/);
  });

  it("web_fetch: a page's title and readable text, cut to maxChars; seo_audit: a clean page has no issues, a bad one each with its severity", async () => {
    const page = z.object({ status: z.number(), title: z.string(), text: z.string(), truncated: z.boolean() }).parse(await run("web_fetch", { url: `${base}/page` }));
    assert.equal(page.title, "Preview environments for teams");
    assert.match(page.text, /Preview environments\nShip & review faster \./);
    assert.doesNotMatch(page.text, /var x|body\{\}/, "scripts and styles are not text");
    const cut = z.object({ text: z.string(), truncated: z.boolean() }).parse(await run("web_fetch", { url: `${base}/page`, maxChars: 100 }));
    assert.deepEqual([cut.text.length <= 100, cut.truncated], [true, true]);

    const Audit = z.object({ issues: z.array(z.object({ check: z.string(), severity: z.string() })), errors: z.number() });
    assert.deepEqual(Audit.parse(await run("seo_audit", { url: `${base}/page` })).issues, []);
    const bad = Audit.parse(await run("seo_audit", { url: `${base}/bad-page` }));
    assert.deepEqual(bad.issues.map((i) => `${i.check}:${i.severity}`).sort(), ["canonical:warning", "h1:warning", "img_alt:warning", "lang:warning", "meta_description:error", "robots:error", "title:error", "viewport:warning"]);
    assert.equal(bad.errors, 3);
  });

  it("webhook_post (PROPOSE): posts with the idempotency key; its rollback posts the undo to the receiver's undo URL; both URLs are targets", async () => {
    const tool = catalogue.require("webhook_post");
    assert.equal(tool.risk, "PROPOSE");
    assert.deepEqual(tool.targetFields, ["url", "undoUrl"]);
    const input = tool.input.parse({ url: `${base}/hook`, undoUrl: `${base}/undo`, body: { event: "deployed", version: "1.2" } });
    const output = await tool.handler(input, ctx());
    assert.deepEqual(output, { url: `${base}/hook`, status: 200, response: { received: 1 } });
    await tool.rollback!(input, output, ctx());
    assert.deepEqual(hooks, [
      { path: "/hook", key: "k-1", body: { event: "deployed", version: "1.2" } },
      { path: "/undo", key: "k-1.undo", body: { action: "undo", body: { event: "deployed", version: "1.2" }, response: { received: 1 }, idempotencyKey: "k-1" } },
    ]);
    assert.throws(() => tool.input.parse({ url: `${base}/hook`, body: {} }), /undoUrl/);
    await assert.rejects(tool.handler(tool.input.parse({ url: `${base}/hook-fails`, undoUrl: `${base}/undo`, body: {} }), ctx()), failsWith("TOOL_FAILED", /HTTP 500: receiver down/));
  });
});
