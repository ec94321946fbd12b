import assert from "node:assert/strict";
import { describe, it, after } from "node:test";
import { jetstream } from "@nats-io/jetstream";
import { pino } from "pino";
import { Dashboard } from "../../bridges/index.js";
import { deadLetter, FleetError, openBuckets, type CompleteRequest } from "../../protocol/index.js";
import { parsePrometheus, sample } from "../helpers/prometheus-text.js";
import { routerTestBed } from "../helpers/router-test-bed.js";
import { usageRecords } from "../helpers/router-fleet.js";

/*
 * /metrics and the dashboard's doors on a real fleet: a real nats-server, a real router answering through the scripted
 * OpenAI server (so the USAGE records are the router's own), the dashboard on a free port. The exposition is read back
 * with a Prometheus text-format parser and its series compared with the records they were built from.
 */

const TOKEN = "metrics-test-token-0123456789";

describe("dashboard /metrics and auth", () => {
  const bed = routerTestBed("dashboard-metrics", "dashm");
  const started: Dashboard[] = [];
  after(async () => {
    for (const d of started) await d.stop();
  });
  const ask = (agentId: string, title: string): CompleteRequest => ({ agentId, title, messages: [{ role: "user", content: title }] });

  async function dashboardFor(fleet: Awaited<ReturnType<typeof bed.fleet>>): Promise<Dashboard> {
    const kv = await openBuckets(bed.nc, fleet.names);
    const d = await Dashboard.start({
      nc: bed.nc,
      names: fleet.names,
      kv,
      config: fleet.config,
      settings: { host: "127.0.0.1", port: 0, costDays: 30 },
      token: TOKEN,
      operator: "dashboard:test",
      clock: { now: () => Date.now() },
      log: pino({ level: "silent" }),
    });
    started.push(d);
    return d;
  }

  it("exposes spend, tokens and calls by agent and served tier equal to the USAGE records, budgets and DLQ depth", async () => {
    // every call at its agent's default tier, whatever its title: the counts below are per tier
    const fleet = await bed.fleet({ routing: "  classifier: false\n  localClassifier: { enabled: false }" });
    await fleet.client.complete(ask("scout", "find the pricing page"));
    await fleet.client.complete(ask("scout", "summarise the pricing page"));
    await fleet.client.complete(ask("ship", "restart the web service"));
    // a malformed message the fleet dead-lettered
    await deadLetter(jetstream(bed.nc), fleet.names, "tasks", { subject: `${fleet.names.prefix}.task.scout`, data: new Uint8Array([1, 2]) }, new FleetError("MESSAGE_MALFORMED", "not msgpack"));
    const d = await dashboardFor(fleet);
    const records = await usageRecords(bed.nc, fleet.names);
    assert.equal(records.length, 3);

    const res = await fetch(`${d.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /text\/plain; version=0\.0\.4/);
    const text = await res.text();
    assert.doesNotMatch(text, /task_?id|call_?id/i, "no high-cardinality labels");
    const families = parsePrometheus(text);
    for (const f of families) assert.match(f.name, /^natsfleet_/);

    for (const agent of ["scout", "ship"]) {
      const mine = records.filter((r) => r.agentId === agent);
      const tier = mine[0]!.servedTier;
      const labels = { agent, tier };
      assert.equal(sample(families, "natsfleet_model_calls_total", labels), mine.length, `${agent} calls`);
      const spend = mine.reduce((s, r) => s + r.costUsd, 0);
      assert.ok(spend > 0);
      assert.ok(Math.abs((sample(families, "natsfleet_model_spend_usd_total", labels) ?? -1) - spend) < 1e-12, `${agent} spend`);
      assert.equal(sample(families, "natsfleet_model_input_tokens_total", labels), mine.reduce((s, r) => s + r.inputTokens, 0));
      assert.equal(sample(families, "natsfleet_model_output_tokens_total", labels), mine.reduce((s, r) => s + r.outputTokens, 0));
    }
    assert.equal(sample(families, "natsfleet_router_up"), 1);
    const scoutSpent = records.filter((r) => r.agentId === "scout").reduce((s, r) => s + r.costUsd, 0);
    const cap = sample(families, "natsfleet_budget_cap_usd", { agent: "scout" });
    assert.equal(cap, 5);
    assert.ok(Math.abs((sample(families, "natsfleet_budget_remaining_usd", { agent: "scout" }) ?? -1) - (5 - scoutSpent)) < 1e-6);
    assert.equal(sample(families, "natsfleet_dlq_messages"), 1);
    assert.equal(sample(families, "natsfleet_proposals", { state: "awaiting_human" }), 0);
    assert.equal(sample(families, "natsfleet_agent_breaker_state", { agent: "scout" }), 0);

    // a call after the start is counted as it happens: the counters follow USAGE
    await fleet.client.complete(ask("scout", "one more look"));
    const after = parsePrometheus(await (await fetch(`${d.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text());
    const scoutTier = records.find((r) => r.agentId === "scout")!.servedTier;
    let calls = 0;
    for (let i = 0; i < 50 && calls !== 3; i++) {
      const now = parsePrometheus(await (await fetch(`${d.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text());
      calls = sample(now, "natsfleet_model_calls_total", { agent: "scout", tier: scoutTier }) ?? 0;
      if (calls !== 3) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(calls, 3);
    assert.ok(after.length > 0);
  });

  it("refuses every route without the token, redirects a browser to /login, and refuses a POST without the session's CSRF token", async () => {
    const fleet = await bed.fleet();
    const d = await dashboardFor(fleet);
    for (const path of ["/metrics", "/events", "/", "/proposals", "/costs"]) {
      const res = await fetch(`${d.url}${path}`, { redirect: "manual" });
      assert.equal(res.status, 401, path);
      await res.body?.cancel();
    }
    const wrong = await fetch(`${d.url}/metrics`, { headers: { authorization: "Bearer not-the-token-at-all" } });
    assert.equal(wrong.status, 401);
    const browser = await fetch(`${d.url}/`, { redirect: "manual", headers: { accept: "text/html" } });
    assert.equal(browser.status, 303);
    assert.equal(browser.headers.get("location"), "/login");
    const badLogin = await fetch(`${d.url}/login`, { method: "POST", redirect: "manual", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "token=guess" });
    assert.equal(badLogin.status, 401);

    const login = await fetch(`${d.url}/login`, { method: "POST", redirect: "manual", headers: { "content-type": "application/x-www-form-urlencoded" }, body: `token=${TOKEN}` });
    assert.equal(login.status, 303);
    const setCookie = login.headers.get("set-cookie") ?? "";
    assert.match(setCookie, /HttpOnly/);
    assert.match(setCookie, /SameSite=Strict/);
    const cookie = setCookie.split(";")[0]!;
    const page = await fetch(`${d.url}/proposals`, { headers: { cookie } });
    assert.equal(page.status, 200);
    const csrf = /name="csrf" value="([^"]*)"/.exec(await page.text())?.[1];
    // no proposal awaits, so the page has no form: the token is read from another session's view below
    assert.equal(csrf, undefined);

    const form = (body: string) => ({ method: "POST", redirect: "manual" as const, headers: { cookie, "content-type": "application/x-www-form-urlencoded" }, body });
    const noCsrf = await fetch(`${d.url}/proposals/p1/approve`, form(""));
    assert.equal(noCsrf.status, 403);
    const forged = await fetch(`${d.url}/proposals/p1/approve`, form("csrf=forged"));
    assert.equal(forged.status, 403);
    // a bearer caller (a script) needs no CSRF token: the decision path answers, here that the proposal does not exist
    const scripted = await fetch(`${d.url}/proposals/p1/approve`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(scripted.status, 404);
    assert.match(await scripted.text(), /PROPOSAL_NOT_FOUND/);
    const anonymous = await fetch(`${d.url}/proposals/p1/approve`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "csrf=x" });
    assert.equal(anonymous.status, 401);
  });
});
