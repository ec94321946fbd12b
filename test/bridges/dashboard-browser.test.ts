import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { NatsConnection } from "@nats-io/nats-core";
import { chromium, type Browser } from "playwright-core";
import { pino } from "pino";
import { Dashboard } from "../../bridges/index.js";
import { loadFleetConfig } from "../../config/index.js";
import { connectNats, FleetNames, openBuckets } from "../../protocol/index.js";
import { RouterClient, type RunningRouter } from "../../router/index.js";
import type { ProcessSupervisor } from "../../supervisor/index.js";
import { agentSpec, CLI, startProcesses } from "../helpers/fleet-processes.js";
import { NatsServer } from "../helpers/nats-server.js";
import { OpenAIServer } from "../helpers/openai-server.js";
import { routerFleetYaml, startTestRouter } from "../helpers/router-fleet.js";
import { runFleet } from "../helpers/run-cli.js";
import { waitFor } from "../helpers/wait.js";

/*
 * The dashboard as an operator meets it, in headless Chromium (Debian's package, driven by playwright-core; never a
 * downloaded browser): a running fleet (a router answering through the scripted OpenAI server, atlas, governance and a
 * tool host as real processes), scout's spend on the agents page, and a CONFIRM proposal approved by clicking Approve,
 * seen to complete on the page.
 */

const CHROMIUM = "/usr/bin/chromium";
const PREFIX = "dashe2e";
const TOKEN = "browser-test-token-0123456789";
const skip = !existsSync(CHROMIUM) && process.env.CI !== "true" ? `${CHROMIUM} is not installed (apt-get install chromium, or run scripts/setup.sh)` : false;

describe("dashboard in a browser", { skip }, () => {
  let nats: NatsServer;
  let openai: OpenAIServer;
  let nc: NatsConnection;
  let router: RunningRouter;
  let processes: ProcessSupervisor;
  let dashboard: Dashboard;
  let browser: Browser;
  let dir: string;
  let file: string;
  const names = new FleetNames(PREFIX);
  const cli = (...args: string[]) => runFleet([...args, "--config", file, "--nats", nats.url], { timeoutMs: 30_000 });

  before(async () => {
    [nats, openai] = await Promise.all([NatsServer.start(), OpenAIServer.start()]);
    dir = mkdtempSync(join(tmpdir(), "fleet-dashboard-"));
    file = join(dir, "fleet.yaml");
    writeFileSync(
      file,
      routerFleetYaml({ baseUrl: openai.baseUrl, prefix: PREFIX }) +
        `memory: { dir: ${JSON.stringify(join(dir, "memory"))} }\nbackups: { dir: ${JSON.stringify(join(dir, "backups"))} }\ngovernance:\n  approvals: { channels: [console] }\n`,
    );
    const config = loadFleetConfig(file);
    nc = await connectNats({ servers: nats.url, name: "dashboard-e2e", longLived: false });
    router = await startTestRouter(nc, config);
    const common = ["--config", file, "--nats", nats.url, "--supervised", "--log-level", "warn"];
    processes = startProcesses([
      { id: "tools", command: process.execPath, args: [CLI, "run", "tools", ...common], restart: "permanent" },
      { id: "governance", command: process.execPath, args: [CLI, "run", "governance", ...common], restart: "permanent" },
      agentSpec("atlas", file, nats.url),
    ]);
    await processes.start();
    await waitFor("atlas up", async () => (await cli("status", "--json")).stdout.includes('"atlas"'), 30_000);
    dashboard = await Dashboard.start({
      nc,
      names,
      kv: await openBuckets(nc, names),
      config,
      settings: { host: "127.0.0.1", port: 0, costDays: 30 },
      token: TOKEN,
      operator: "dashboard:e2e",
      clock: { now: () => Date.now() },
      log: pino({ level: "silent" }),
    });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run", "--disable-component-update", "--disable-sync"],
    });
  });

  after(async () => {
    await browser?.close();
    await dashboard?.stop();
    await processes?.stop();
    await router?.stop();
    await nc?.close();
    await Promise.all([nats?.stop(), openai?.close()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("shows an agent's spend, and a proposal approved by clicking completes", async () => {
    // scout's model call, through the real router: USAGE and today's budget
    const reply = await new RouterClient(nc, names, { timeoutMs: 20_000 }).complete({ agentId: "scout", title: "find the pricing page", messages: [{ role: "user", content: "find the pricing page" }] });
    assert.ok(reply.costUsd > 0);
    const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
    await page.goto(`${dashboard.url}/login?token=${TOKEN}`);
    const spend = page.locator('tr[data-agent="scout"] td.spend');
    await spend.waitFor();
    const expected = `$${reply.costUsd.toFixed(reply.costUsd < 0.01 ? 4 : 2)} / $5.00`;
    assert.equal((await spend.innerText()).split("\n")[0]?.trim(), expected);

    const sent = await cli("send", "atlas", "--tool", "email_send", "--input", JSON.stringify({ to: "ops@mail.localhost", subject: "numbers", body: "the quarter's numbers" }), "--reason", "ops asked for them");
    assert.equal(sent.code, 0, sent.stderr + sent.stdout);
    const id = /proposal (\S+) submitted/.exec(sent.stdout)?.[1];
    assert.ok(id, sent.stdout);
    await page.goto(`${dashboard.url}/proposals`);
    // the page updates itself (SSE) when governance puts the proposal before a human
    const card = page.locator(`div.proposal[data-proposal="${id}"]`);
    await card.waitFor({ timeout: 20_000 });
    await card.getByRole("button", { name: "Approve" }).click();
    await page.locator(".notice").filter({ hasText: `${id}: approved` }).waitFor();
    await page.locator(`tr[data-proposal="${id}"] td.state`, { hasText: "completed" }).waitFor({ timeout: 20_000 });
    assert.equal(await page.locator(`div.proposal[data-proposal="${id}"]`).count(), 0, "no longer awaiting");
    const shown = await cli("proposals", id, "--json");
    const record: unknown = JSON.parse(shown.stdout);
    assert.ok(typeof record === "object" && record !== null && "state" in record && record.state === "completed");
    assert.match(shown.stdout, /"via": "_operator"/);
    await page.close();
  });
});
