import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { NatsConnection } from "@nats-io/nats-core";
import { connectNats, FleetError, FleetNames } from "../../protocol/index.js";
import { RouterClient, worstCaseUsd } from "../../router/index.js";
import { NatsServer } from "../helpers/nats-server.js";
import { OpenAIServer } from "../helpers/openai-server.js";
import { routerFleetConfig, routerFleetYaml, type RouterFleetOptions } from "../helpers/router-fleet.js";
import { waitFor } from "../helpers/wait.js";

const CLI = join(process.cwd(), "dist", "cli", "main.js");

/** Routers as real `fleet run router` processes sharing one queue group and one budget in KV. */
describe("router processes", () => {
  let nats: NatsServer;
  let openai: OpenAIServer;
  let nc: NatsConnection;
  const dir = mkdtempSync(join(tmpdir(), "fleet-routers-"));
  const children: ChildProcess[] = [];

  before(async () => {
    [nats, openai] = await Promise.all([NatsServer.start(), OpenAIServer.start()]);
    nc = await connectNats({ servers: nats.url, name: "router-processes-test" });
  });
  after(async () => {
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
    await nc.close();
    await Promise.all([nats.stop(), openai.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  function writeConfig(name: string, options: Omit<RouterFleetOptions, "baseUrl">): string {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(file, routerFleetYaml({ baseUrl: openai.baseUrl, ...options }));
    return file;
  }

  async function startRouterProcess(config: string): Promise<ChildProcess> {
    const child = spawn(process.execPath, [CLI, "run", "router", "--config", config, "--nats", nats.url], { stdio: ["ignore", "ignore", "pipe"] });
    children.push(child);
    let log = "";
    child.stderr?.on("data", (d: Buffer) => (log += d.toString()));
    await waitFor("the router to start", () => log.includes("router started") || child.exitCode !== null, 20_000);
    assert.equal(child.exitCode, null, `router exited: ${log}`);
    return child;
  }

  it("three routers on one budget never overshoot a cap by more than one call's reservation", async () => {
    const options = { prefix: "rp1", scoutCapUsd: 0.02, routing: "  classifier: false\n  cache: { enabled: false }\n  budget: { nanoGrace: 0 }" };
    const config = writeConfig("rp1", options);
    await Promise.all([startRouterProcess(config), startRouterProcess(config), startRouterProcess(config)]);
    const names = new FleetNames("rp1");
    const client = new RouterClient(nc, names, { timeoutMs: 20_000, retries: 0 });
    // about 500 tokens of question; the provider counts a few less than our estimate, as real tokenizers do for English
    const messages = [{ role: "user" as const, content: "Estimate the size of the market for uptime monitoring. ".repeat(36) }];
    const answer = () => ({ content: "ok", usage: { prompt_tokens: 480, completion_tokens: 100 } });
    // power: 480 × $5/M + 100 × $15/M ≈ $0.0039 a call, so the $0.02 cap allows about five
    openai.script("m-power", ...Array.from({ length: 100 }, answer));
    openai.script("m-workhorse", ...Array.from({ length: 100 }, answer));
    const outcomes = await Promise.allSettled(
      Array.from({ length: 60 }, (_, i) => client.complete({ agentId: "scout", title: `market ${i}`, tier: "power", maxOutputTokens: 100, messages })),
    );
    const served = outcomes.filter((o) => o.status === "fulfilled").length;
    const refused = outcomes.filter((o) => o.status === "rejected" && o.reason instanceof FleetError && o.reason.code === "BUDGET_EXHAUSTED").length;
    assert.equal(served + refused, 60, "every call either ran or was refused by the budget");
    assert.ok(served >= 3 && refused > 0, `served ${served}, refused ${refused}`);

    // settles land after the replies (each after its USAGE record, at most settleDelayMs later): until then the
    // reservations count, so the cap held all along; wait for them to land before counting the spend
    const usage = await waitFor("every settle to land", async () => {
      const u = await client.usage("scout");
      return u.agents.scout?.reservedUsd === 0 ? u : undefined;
    });
    const cfg = routerFleetConfig({ baseUrl: openai.baseUrl, ...options });
    const oneReservation = worstCaseUsd(cfg.tiers.power, { messages }, 100);
    const spent = usage.agents.scout?.spentUsd ?? 0;
    // refusals start once spend plus reservations reach the cap; reservations settle lower, so spend ends a little under it
    assert.ok(spent >= 0.012, `spent ${spent}: the routers used most of the budget before refusing`);
    assert.ok(spent <= 0.02 + oneReservation + 1e-9, `spent ${spent} overshoots the $0.02 cap by more than one reservation (${oneReservation})`);
    assert.equal(usage.agents.scout?.reservedUsd, 0, "nothing left reserved");
  });

  it("a router dying mid-request loses nothing: the retry reaches another router and is billed once", async () => {
    // "pricing" names no tier by itself: the local classifier is off, so scout's default (capable) serves
    const config = writeConfig("rp2", { prefix: "rp2", routing: "  classifier: false\n  localClassifier: { enabled: false }\n  cache: { enabled: false }" });
    const first = await startRouterProcess(config);
    const names = new FleetNames("rp2");
    const before = openai.requests.length;
    openai.script("m-capable", { content: "too late", delayMs: 10_000 }, { content: "from the second router", usage: { prompt_tokens: 1_000, completion_tokens: 10 } });
    const client = new RouterClient(nc, names, { timeoutMs: 2_000, retries: 2 });
    const pending = client.complete({ agentId: "scout", title: "pricing", messages: [{ role: "user", content: "pricing" }] });
    await waitFor("the first router to call the provider", () => openai.requests.length > before, 10_000);
    first.kill("SIGKILL");
    await startRouterProcess(config);
    const reply = await pending;
    assert.equal(reply.text, "from the second router");
    const usage = await waitFor("the settle to land", async () => {
      const u = await client.usage("scout");
      return u.agents.scout?.reservedUsd === 0 ? u : undefined;
    });
    assert.ok(Math.abs((usage.agents.scout?.spentUsd ?? 0) - reply.costUsd) < 1e-12, "billed once, for the call that answered");
    assert.equal(usage.agents.scout?.reservedUsd, 0);
  });
});
