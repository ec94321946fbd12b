import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino } from "pino";
import { z } from "zod";
import { BusinessStandin } from "../../bridges/index.js";
import { parseFleetConfig } from "../../config/index.js";
import { BUSINESS_TOOL_RISKS, referenceToolRisks, referenceTools, ToolCatalogue, type ToolContext } from "../../governance/index.js";
import { connectNats, ensureFleetResources, FleetError, FleetNames } from "../../protocol/index.js";
import { CLI } from "../helpers/fleet-processes.js";
import { NatsServer } from "../helpers/nats-server.js";
import { waitFor } from "../helpers/wait.js";

/** The business tools (CRM, CMS, analytics, SEO) against the local stand-in service, started here and by `fleet run standin`. */

const T0 = Date.parse("2026-03-04T09:00:00Z"); // a Wednesday
const fleetYaml = (business: string) => `fleet: { name: biz, prefix: biz, timeZone: UTC, dailyCapUsd: 10 }
tiers:
${["nano", "workhorse", "capable", "power", "premium"].map((t) => `  ${t}: { model: m-${t}, inputPerM: 1, outputPerM: 2 }`).join("\n")}
agents:
  - { id: atlas, name: Atlas, role: lead, layer: orchestration, defaultTier: power, cycleMinutes: 60, dailyCapUsd: 1, tools: ["*"], skills: [{ id: s, name: S, description: s, tags: [s] }] }
${business}`;

const freePort = async (): Promise<number> => {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const address = probe.address();
  const port = typeof address === "object" && address ? address.port : 0;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
};

describe("business tools against the stand-in", () => {
  const names = new FleetNames("biz");
  let nats: NatsServer;
  let nc: NatsConnection;
  let standin: BusinessStandin;
  let catalogue: ToolCatalogue;
  const ctx = (key?: string): ToolContext => ({ signal: AbortSignal.timeout(10_000), log: pino({ level: "silent" }), agentId: "atlas", now: () => T0, ...(key ? { idempotencyKey: key } : {}) });
  const tool = (name: string) => catalogue.require(name);
  const run = (name: string, input: unknown, key?: string) => tool(name).handler(tool(name).input.parse(input), ctx(key));

  before(async () => {
    nats = await NatsServer.start();
    nc = await connectNats({ servers: nats.url, name: "business-test", longLived: false });
    await ensureFleetResources(nc, names);
    standin = new BusinessStandin({ port: 0, log: pino({ level: "silent" }), now: () => T0 });
    const port = await standin.start();
    const config = parseFleetConfig(fleetYaml(`business: { url: "http://127.0.0.1:${port}" }`), "biz.yaml");
    catalogue = new ToolCatalogue(referenceTools({ js: jetstream(nc), names, codec: "msgpack", config }));
  });
  after(async () => {
    await standin.stop();
    await nc.close();
    await nats.stop();
  });

  it("the twelve business tools are in the catalogue with the risks the broker's permissions are written from; PROPOSE ones have rollbacks", () => {
    for (const [name, risk] of Object.entries(BUSINESS_TOOL_RISKS)) {
      assert.equal(tool(name).risk, risk, name);
      assert.equal(referenceToolRisks()[name], risk, name);
    }
    for (const name of ["crm_update", "meta_tags", "email_draft", "cms_draft"]) assert.ok(tool(name).rollback, `${name} has a rollback`);
  });

  it("CRM reads: contacts by stage and query, one contact with its activity, its lead score with the factors", async () => {
    const Contacts = z.object({ contacts: z.array(z.object({ id: z.string(), stage: z.string() })) });
    const leads = Contacts.parse(await run("crm_read", { stage: "lead" }));
    assert.deepEqual(leads.contacts.map((c) => c.id), ["c-101", "c-103"]);
    assert.deepEqual(Contacts.parse(await run("crm_read", { query: "billing" })).contacts.map((c) => c.id), ["c-105"]);
    const one = z.object({ contact: z.object({ name: z.string(), activity: z.array(z.object({ type: z.string() })) }) }).parse(await run("crm_read", { id: "c-102" }));
    assert.equal(one.contact.name, "Ben Okafor");
    const Score = z.object({ score: z.number(), factors: z.array(z.object({ factor: z.string(), points: z.number() })) });
    const hot = Score.parse(await run("lead_score", { id: "c-108" }));
    const cold = Score.parse(await run("lead_score", { id: "c-103" }));
    assert.ok(hot.score > 40 && cold.score < 15, `a recent demo and pricing visit outscore one old visit (${hot.score} vs ${cold.score})`);
    assert.ok(hot.factors.some((f) => f.factor.startsWith("demo")));
    await assert.rejects(run("lead_score", { id: "c-999" }), (err: unknown) => err instanceof FleetError && err.code === "TOOL_FAILED" && /no contact "c-999"/.test(err.message));
  });

  it("analytics, search console and revenue: deterministic series on the service's clock, with the built-in anomaly", async () => {
    const Analytics = z.object({ days: z.array(z.object({ date: z.string(), visits: z.number(), conversions: z.number() })), totals: z.object({ visits: z.number() }) });
    const docs = Analytics.parse(await run("analytics_query", { site: "docs.dcode.dev", days: 14 }));
    assert.equal(docs.days.length, 14);
    assert.deepEqual([docs.days[0]?.date, docs.days.at(-1)?.date], ["2026-02-18", "2026-03-03"]);
    const yesterday = docs.days.at(-1)!.visits;
    const weekBefore = docs.days.at(-8)!.visits;
    assert.ok(yesterday < weekBefore * 0.5, `docs lost most of yesterday's visits (${yesterday} vs ${weekBefore} the week before)`);
    assert.deepEqual(Analytics.parse(await run("analytics_query", { site: "docs.dcode.dev", days: 14 })), docs, "the same day shows the same numbers");
    const sc = z.object({ rows: z.array(z.object({ query: z.string(), clicks: z.number(), position: z.number() })) }).parse(await run("search_console_query", { site: "dcode.dev" }));
    assert.ok(sc.rows.length > 0 && sc.rows.every((r) => r.position > 0));
    const revenue = z.object({ totalUsd: z.number(), bySite: z.record(z.string(), z.number()), daily: z.array(z.unknown()) }).parse(await run("revenue_query", { days: 7 }));
    assert.deepEqual(Object.keys(revenue.bySite), ["shop.dcode.dev", "app.dcode.dev"]);
    assert.equal(revenue.daily.length, 7);
    assert.ok(Math.abs(revenue.totalUsd - Object.values(revenue.bySite).reduce((a, b) => a + b, 0)) < 0.05);
    await assert.rejects(run("analytics_query", { site: "evil.example" }), /no site "evil.example"/);
  });

  it("CMS reads and SEO data: pages, keyword data, rankings with a domain's position", async () => {
    const page = z.object({ page: z.object({ title: z.string(), metaDescription: z.string() }) }).parse(await run("cms_read", { site: "dcode.dev", slug: "/pricing" }));
    assert.deepEqual(page.page, { title: "Pricing", metaDescription: "" });
    assert.deepEqual(z.object({ found: z.boolean(), volume: z.number() }).parse(await run("keyword_lookup", { keyword: "Preview Environments" })), { found: true, volume: 2900 });
    assert.deepEqual(await run("keyword_lookup", { keyword: "nothing known" }), { keyword: "nothing known", found: false });
    assert.equal(z.object({ position: z.number().nullable() }).parse(await run("serp_rank", { keyword: "preview environments", domain: "dcode.dev" })).position, 2);
    assert.equal(z.object({ position: z.number().nullable() }).parse(await run("serp_rank", { keyword: "ephemeral environments", domain: "dcode.dev" })).position, null);
  });

  it("crm_update and meta_tags (PROPOSE): the change, and a rollback that writes back exactly what it replaced", async () => {
    const input = tool("crm_update").input.parse({ id: "c-103", stage: "churned", notes: "no reply in 3 months" });
    const changed = await tool("crm_update").handler(input, ctx("p-1"));
    assert.deepEqual(z.object({ previous: z.unknown() }).parse(changed).previous, { stage: "lead", notes: "" });
    await tool("crm_update").rollback!(input, changed, ctx("p-1"));
    const back = z.object({ contact: z.object({ stage: z.string(), notes: z.string() }) }).parse(await run("crm_read", { id: "c-103" }));
    assert.deepEqual([back.contact.stage, back.contact.notes], ["lead", ""]);
    assert.throws(() => tool("crm_update").input.parse({ id: "c-103" }), /at least one field/);

    const description = "Plans for teams of every size: Team and Pro, billed monthly, cancel any time.";
    const meta = tool("meta_tags").input.parse({ site: "dcode.dev", slug: "/pricing", metaDescription: description });
    const set = await tool("meta_tags").handler(meta, ctx("p-2"));
    assert.equal(z.object({ page: z.object({ metaDescription: z.string() }) }).parse(set).page.metaDescription, description);
    await tool("meta_tags").rollback!(meta, set, ctx("p-2"));
    const restored = z.object({ page: z.object({ title: z.string(), metaDescription: z.string() }) }).parse(await run("cms_read", { site: "dcode.dev", slug: "/pricing" }));
    assert.deepEqual(restored.page, { title: "Pricing", metaDescription: "" });
  });

  it("email_draft and cms_draft (AUTO+): one draft per idempotency key; the rollback deletes it, twice is still fine", async () => {
    const Draft = z.object({ draft: z.object({ id: z.string(), title: z.string() }), repeated: z.boolean() });
    const input = tool("email_draft").input.parse({ contactId: "c-101", subject: "Your pricing questions", body: "Hi Ada, …" });
    const first = Draft.parse(await tool("email_draft").handler(input, ctx("k-7")));
    const again = Draft.parse(await tool("email_draft").handler(input, ctx("k-7")));
    assert.deepEqual([again.draft.id, again.repeated], [first.draft.id, true]);
    assert.deepEqual(await tool("email_draft").rollback!(input, first, ctx("k-7")), { deleted: first.draft.id, existed: true });
    assert.deepEqual(await tool("email_draft").rollback!(input, first, ctx("k-7")), { deleted: first.draft.id, existed: false });
    await assert.rejects(run("email_draft", { contactId: "c-000", subject: "x", body: "y" }), /no contact "c-000"/);

    const post = tool("cms_draft").input.parse({ site: "blog.dcode.dev", title: "Preview environments, explained", body: "…" });
    const made = Draft.parse(await tool("cms_draft").handler(post, ctx("k-8")));
    assert.equal(made.draft.title, "Preview environments, explained");
    assert.deepEqual(await tool("cms_draft").rollback!(post, made, ctx("k-8")), { deleted: made.draft.id, existed: true });
  });

  it("without business.url the tools say so (TOOL_UNAVAILABLE); with the stand-in down, TOOL_FAILED naming it", async () => {
    const bare = new ToolCatalogue(referenceTools({ js: jetstream(nc), names, codec: "msgpack", config: parseFleetConfig(fleetYaml(""), "bare.yaml") }));
    const crm = bare.require("crm_read");
    await assert.rejects(crm.handler(crm.input.parse({}), ctx()), (err: unknown) => err instanceof FleetError && err.code === "TOOL_UNAVAILABLE" && /business\.url is not configured/.test(err.message));
    const port = await freePort();
    const gone = new ToolCatalogue(referenceTools({ js: jetstream(nc), names, codec: "msgpack", config: parseFleetConfig(fleetYaml(`business: { url: "http://127.0.0.1:${port}" }`), "gone.yaml") }));
    const read = gone.require("crm_read");
    await assert.rejects(read.handler(read.input.parse({}), ctx()), (err: unknown) => err instanceof FleetError && err.code === "TOOL_FAILED" && /did not answer/.test(err.message));
  });

  it("fleet run standin serves the API at business.url until it is stopped", async () => {
    const dir = mkdtempSync(join(tmpdir(), "fleet-standin-"));
    const port = await freePort();
    const file = join(dir, "fleet.yaml");
    writeFileSync(file, fleetYaml(`business: { url: "http://127.0.0.1:${port}" }`));
    const child = spawn(process.execPath, [CLI, "run", "standin", "--config", file, "--log-level", "silent"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    try {
      await waitFor("the stand-in to say it serves", () => out.includes("business stand-in serving"), 10_000);
      const health = z.object({ ok: z.boolean(), sites: z.array(z.string()) }).parse(await (await fetch(`http://127.0.0.1:${port}/health`)).json());
      assert.equal(health.sites.length, 5);
      child.kill("SIGTERM");
      const [code] = await once(child, "exit");
      assert.equal(code, 0);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
