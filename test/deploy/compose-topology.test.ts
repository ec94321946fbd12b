import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse, stringify } from "yaml";
import { z } from "zod";
import { jetstreamManager } from "@nats-io/jetstream";
import { connectNats, FleetNames } from "../../protocol/index.js";
import { OpenAIServer } from "../helpers/openai-server.js";
import { FakeTelegram } from "../helpers/fake-telegram.js";
import { discordKeys, FakeDiscord } from "../helpers/fake-discord.js";
import { freePort } from "../helpers/free-port.js";
import { fleetServices, loadCompose } from "./compose-file.js";
import { ComposeRunner, SKIPPED } from "./compose-runner.js";

/*
 * The topology of docker-compose.yml, started from the file's own commands as plain processes (compose-runner.ts): three
 * nats-server nodes clustered with the authorization `fleet creds` writes, `fleet init` creating R3 streams, then the
 * router, scheduler, governance, tool host, stand-in, the seven agents and both chat bridges, each with its own seed.
 * Every service passes its own health check; a task sent the README's way completes through the router against a
 * scripted OpenAI-compatible server, and a tool call reaches the stand-in through the tool host. Qdrant is skipped (no binary here): the fleet's embedded vector store is used.
 */

const KEY = "sk-compose-topology";
const ANSWER = "pricing pages unchanged since last week";
const TELEGRAM_TOKEN = "123:compose-telegram";
const DISCORD_TOKEN = "compose-discord";

/** The fleet file's own shape, read just far enough to point it at this test's servers. */
const Fleet = z.looseObject({
  fleet: z.looseObject({}),
  tiers: z.record(z.string(), z.looseObject({})),
  business: z.looseObject({}),
  bridges: z.looseObject({ telegram: z.looseObject({}), discord: z.looseObject({}) }),
});

describe("docker-compose.yml as plain processes", { timeout: 240_000 }, () => {
  const compose = loadCompose();
  const dir = mkdtempSync(join(tmpdir(), "fleet-compose-"));
  let openai: OpenAIServer;
  let telegram: FakeTelegram;
  let discord: FakeDiscord;
  let runner: ComposeRunner;

  before(async () => {
    openai = await OpenAIServer.start();
    openai.answerWith(() => ({ content: ANSWER }));
    telegram = new FakeTelegram(TELEGRAM_TOKEN);
    const apiRoot = await telegram.start();
    discord = new FakeDiscord(DISCORD_TOKEN);
    const apiBase = await discord.start();
    const businessPort = await freePort();
    /**
     * The reference fleet's config as mounted (./config), pointed at this test's servers instead of the internet: the
     * model providers at the scripted server, the chat APIs at their fakes, the stand-in at a free port; and never quiet,
     * so the test passes at any hour. Nothing about the topology changes.
     */
    const localFleet = (configDir: string) => {
      const file = join(configDir, "fleets", "dcode-ops.yaml");
      const fleet = Fleet.parse(parse(readFileSync(file, "utf8")));
      for (const tier of Object.values(fleet.tiers)) tier.baseUrl = openai.baseUrl;
      fleet.fleet.quietHours = { start: "00:00", end: "00:00" };
      fleet.business.url = `http://127.0.0.1:${businessPort}`;
      fleet.bridges.telegram.apiRoot = apiRoot;
      Object.assign(fleet.bridges.discord, { apiBase, port: 0 });
      writeFileSync(file, stringify(fleet));
    };
    const shell = { OPENROUTER_API_KEY: KEY, TELEGRAM_BOT_TOKEN: TELEGRAM_TOKEN, DISCORD_BOT_TOKEN: DISCORD_TOKEN, DISCORD_PUBLIC_KEY: discordKeys().publicKeyHex, FLEET_LOG_LEVEL: "warn" };
    runner = await ComposeRunner.prepare(compose, dir, shell, localFleet);
  });

  after(async () => {
    await runner?.stop();
    await Promise.all([openai?.close(), telegram?.stop(), discord?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it("starts from its own commands, every service passes its health check, and a task completes", async (t) => {
    const started = Date.now();
    const phase = (what: string) => t.diagnostic(`${what} after ${((Date.now() - started) / 1000).toFixed(1)} s`);
    // README: docker compose run --rm creds
    const creds = await runner.run("creds", compose.services.creds?.command ?? []);
    assert.equal(creds.code, 0, creds.stderr);
    phase("creds");
    // README: docker compose up -d
    await runner.up();
    phase("up");
    const long = fleetServices(compose).filter(([name, s]) => s.restart !== "on-failure" && !SKIPPED.has(name));
    assert.ok(long.length >= 14, `${long.length} fleet processes`);
    await Promise.all(long.map(([name]) => runner.waitHealthy(name, 150_000)));
    for (const [name] of long) assert.equal(await runner.healthy(name), true, `${name} is healthy`);
    phase("healthy");

    // README: docker compose run --rm fleet send scout "..." --creds /creds/operator.nk
    const sent = await runner.run("fleet", ["send", "scout", "check the competitors' pricing pages", "--creds", "/creds/operator.nk"], 90_000);
    assert.equal(sent.code, 0, `${sent.stdout}\n${sent.stderr}\n${runner.output.slice(-40).join("\n")}`);
    phase("task completed");
    assert.match(sent.stdout, /TASK_STATE_COMPLETED/);
    assert.match(sent.stdout, new RegExp(ANSWER));
    const calls = openai.requests.filter((r) => r.path.endsWith("/chat/completions"));
    assert.ok(calls.length > 0);
    assert.ok(calls.every((r) => r.authorization === `Bearer ${KEY}`), "the router calls with the key passed by its variable's name");

    // a tool call from closer's container reaches the stand-in through the tool host's network (network_mode: service:tools)
    const tool = await runner.run("fleet", ["send", "closer", "--tool", "crm_read", "--input", '{"stage":"lead"}', "--creds", "/creds/operator.nk"], 60_000);
    assert.equal(tool.code, 0, `${tool.stdout}\n${tool.stderr}`);
    assert.match(tool.stdout, /TASK_STATE_COMPLETED/);
    assert.match(tool.stdout, /contacts/);
    // the chat bridges run against their APIs with the tokens passed by name
    assert.ok(telegram.calls.length > 0, "the Telegram bridge called its Bot API");

    // fleet init --replicas 3: every stream of the fleet is on all three nodes
    const nc = await connectNats({ servers: `nats://${runner.localAddresses("nats-1:4222")}`, nkeySeedFile: runner.host("./deploy/creds/operator.nk"), name: "compose-test", longLived: false });
    try {
      const tasks = await (await jetstreamManager(nc)).streams.info(new FleetNames("fleet").stream("TASKS"));
      assert.equal(tasks.config.num_replicas, 3);
      assert.equal(tasks.cluster?.replicas?.length, 2, "a leader and two replicas");
    } finally {
      await nc.close();
    }
    // README: docker compose run --rm fleet (fleet status)
    const status = await runner.run("fleet", compose.services.fleet?.command ?? []);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /scout/);
  });
});
