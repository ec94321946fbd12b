import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { connectNats, decodeUnknown, encode, FleetNames, requestOperation, type StreamKey } from "../../protocol/index.js";
import { FakeTelegram } from "../helpers/fake-telegram.js";
import { CLI } from "../helpers/fleet-processes.js";
import { OpenAIServer } from "../helpers/openai-server.js";
import { routerFleetYaml } from "../helpers/router-fleet.js";
import { waitFor } from "../helpers/wait.js";

/**
 * No secret leaves a fleet started with `fleet up`: a provider key, a Telegram bot token, a webhook token and every nkey
 * seed the fleet generated are planted, then the error paths that could quote them are driven for real (a provider that
 * echoes the Authorization header it refused, a Telegram API whose refusal quotes its URL with the token, tool inputs and
 * requests that quote the key, CLI runs with bad credentials). Everything the fleet emits is collected — every child's log
 * through `fleet up`'s output, every CLI output, error replies, USAGE, AUDIT and DLQ records, `fleet status` — and must
 * hold none of the secrets, while showing that each error path ran.
 */

// the CLI's default prefix, so its commands need no --prefix (the fleet has its own server)
const PREFIX = "fleet";
const random = () => randomBytes(12).toString("hex");
const PROVIDER_KEY = `sk-test-${random()}`;
// the shape Telegram's tokens have: <bot id>:<35 characters>
const BOT_TOKEN = `123456:ABC-${randomBytes(16).toString("hex")}`;
// no recognisable shape: only the value registered from the config's tokenEnv can catch it
const WEBHOOK_TOKEN = `wh${random()}`;
const ENV = { SECTEST_OPENAI_API_KEY: PROVIDER_KEY, SECTEST_TELEGRAM_TOKEN: BOT_TOKEN, SECTEST_WEBHOOK_TOKEN: WEBHOOK_TOKEN };

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const address = server.address();
  await new Promise<void>((r) => server.close(() => r()));
  if (!address || typeof address !== "object") throw new Error("no port");
  return address.port;
}

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe("secrets: nothing a fleet started with fleet up emits holds a provider key, bot token, webhook token or nkey seed", () => {
  let cwd: string;
  let openai: OpenAIServer;
  let telegram: FakeTelegram;
  let up: ChildProcess | undefined;
  let exited: Promise<unknown>;
  let upOutput = "";
  let nc: NatsConnection | undefined;
  let jsm: JetStreamManager;
  let webhookPort: number;
  const names = new FleetNames(PREFIX);
  const env: NodeJS.ProcessEnv = { ...process.env, ...ENV };
  delete env.NATS_URL;
  /** every text the fleet gave back, labelled by where it came from */
  const collected: { where: string; text: string }[] = [];
  const seeds: { file: string; seed: string }[] = [];

  function fleet(args: string[], timeoutMs = 20_000): Promise<Outcome> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [CLI, ...args], { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      child.once("close", (code) => {
        clearTimeout(timer);
        collected.push({ where: `fleet ${args.join(" ")}`, text: `${stdout}\n${stderr}` });
        resolve({ code, stdout, stderr });
      });
    });
  }

  before(async () => {
    cwd = mkdtempSync(join(tmpdir(), "fleet-secrets-"));
    openai = await OpenAIServer.start();
    telegram = new FakeTelegram(BOT_TOKEN);
    const apiRoot = await telegram.start();
    // every send is refused, and the refusal quotes the request line with the token in it
    telegram.failSends = Infinity;
    telegram.sendFailure = { status: 400, description: `Bad Request: chat not found (POST /bot${BOT_TOKEN}/sendMessage)` };
    webhookPort = await freePort();
    const tier = `    apiKeyEnv: SECTEST_OPENAI_API_KEY`;
    const config = join(cwd, "fleet.yaml");
    writeFileSync(
      config,
      routerFleetYaml({
        baseUrl: openai.baseUrl,
        prefix: PREFIX,
        // "health of our site" is a health check the local classifier sends to nano; this test scripts ship's default tier
        routing: "  classifier: false\n  cache: { enabled: false }\n  localClassifier: { enabled: false }",
        tierExtra: { nano: tier, workhorse: tier, capable: tier, power: tier, premium: tier },
      }).replace("timeZone: Europe/Berlin", "timeZone: UTC") +
        `memory: { dir: ${JSON.stringify(join(cwd, "memory"))} }
backups: { dir: ${JSON.stringify(join(cwd, "backups"))} }
tasks: { maxDeliver: 2, ackWaitSeconds: 2, backoffSeconds: [1], workingAckSeconds: 0.5 }
supervisor: { intensity: 20, periodSeconds: 60, shutdownTimeoutSeconds: 5 }
principals:
  - { id: ops, channel: telegram, to: "-100200" }
governance:
  approvals: { channels: [telegram] }
bridges:
  telegram: { tokenEnv: SECTEST_TELEGRAM_TOKEN, chatId: "-100200", approvers: ["111"], apiRoot: ${JSON.stringify(apiRoot)} }
webhook: { port: ${webhookPort}, tokenEnv: SECTEST_WEBHOOK_TOKEN }
`,
    );
    const proc = spawn(process.execPath, [CLI, "up", "--config", config, "--log-level", "info"], { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    up = proc;
    exited = new Promise((r) => proc.once("exit", r));
    proc.stdout?.on("data", (d: Buffer) => (upOutput += d.toString()));
    proc.stderr?.on("data", (d: Buffer) => (upOutput += d.toString()));
    const urlFile = join(cwd, ".fleet", "nats.url");
    const operator = join(cwd, ".fleet", "creds", "operator.nk");
    await waitFor("fleet up to write its URL and the operator's seed", () => existsSync(urlFile) && existsSync(operator), 30_000).catch((err: unknown) => {
      throw new Error(`${String(err)}; fleet up said:\n${upOutput.slice(-2000)}`);
    });
    nc = await connectNats({ servers: readFileSync(urlFile, "utf8").trim(), nkeySeedFile: operator, name: "secrets-operator" });
    jsm = await jetstreamManager(nc);
    let seen = "";
    await waitFor(
      "every agent alive, the tool host serving and the Telegram bridge polling",
      async () => {
        const r = await fleet(["status", "--json"]);
        collected.pop(); // the polling runs are collected once, below
        seen = r.stdout + r.stderr;
        if (r.code !== 0) return false;
        const rows: { agentId: string; alive: boolean }[] = JSON.parse(r.stdout);
        const s = await fleet(["status"]);
        collected.pop();
        seen = s.stdout + s.stderr;
        return rows.filter((row) => row.alive).length === 3 && s.stdout.includes(`${PREFIX}-tools`) && telegram.callsOf("getUpdates").length > 0;
      },
      40_000,
    ).catch((err: unknown) => assert.fail(`${String(err)}\nlast status:\n${seen}\nfleet up output:\n${upOutput.slice(-5000)}`));
    for (const file of readdirSync(join(cwd, ".fleet", "creds")).filter((f) => f.endsWith(".nk"))) {
      seeds.push({ file, seed: readFileSync(join(cwd, ".fleet", "creds", file), "utf8").trim() });
    }
  });

  after(async () => {
    await nc?.close().catch(() => undefined);
    if (up && up.exitCode === null && up.signalCode === null) {
      up.kill("SIGKILL");
      await exited;
    }
    await Promise.all([openai?.close(), telegram?.stop()]);
    if (cwd) rmSync(cwd, { recursive: true, force: true });
  });

  /** Each message of a stream as text; a DLQ message's body is the bad message as it was sent, so only its headers count. */
  async function streamText(stream: StreamKey): Promise<string[]> {
    const out: string[] = [];
    const info = await jsm.streams.info(names.stream(stream)).catch(() => undefined);
    if (!info || info.state.messages === 0) return out;
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const msg = await jsm.streams.getMessage(names.stream(stream), { seq }).catch(() => undefined);
      if (!msg) continue;
      const headers = msg.header ? [...msg.header.keys()].map((k) => `${k}: ${msg.header.get(k)}`).join("\n") : "";
      if (stream === "DLQ") {
        out.push(`${msg.subject}\n${headers}`);
        continue;
      }
      const decoded = decodeUnknown(msg.data);
      // raw bytes too: a msgpack string is its UTF-8 text, so a secret inside would show
      out.push(`${msg.subject}\n${headers}\n${decoded.ok ? JSON.stringify(decoded.value) : ""}\n${Buffer.from(msg.data).toString("utf8")}`);
    }
    return out;
  }

  it("drives every error path that could quote a secret, and finds none in anything the fleet emitted", async () => {
    assert.ok(nc, "connected");
    assert.ok(seeds.length >= 5, `the fleet generated its seeds (${seeds.map((s) => s.file).join(", ")})`);
    for (const s of seeds) assert.match(s.seed, /^S[A-Z]/, `${s.file} holds a seed`);

    // 1. a model that calls a tool with the key and the bot token in its input (to a port nobody listens on)
    const closed = await freePort();
    openai.script(
      "m-workhorse",
      { toolCalls: [{ name: "http_check", arguments: { url: `http://127.0.0.1:${closed}/?q=${PROVIDER_KEY}&t=${BOT_TOKEN}` } }] },
      { content: "the site does not answer" },
    );
    await fleet(["send", "ship", "health of our site", "--timeout", "20"], 25_000);
    // 2. the same tool called directly, its input quoting the key and the webhook token
    await fleet(["send", "ship", "--tool", "http_check", "--input", JSON.stringify({ url: `http://127.0.0.1:${closed}/${PROVIDER_KEY}/${WEBHOOK_TOKEN}` }), "--timeout", "20"], 25_000);

    // 3. model calls refused with the key echoed back along scout's chain: capable refuses the key (401), workhorse fails
    // (500), both fall back; power refuses the request (400), which ends the step with the provider's message in its error
    for (const [model, status] of [["m-capable", 401], ["m-workhorse", 500], ["m-power", 400], ["m-premium", 400]] as const) {
      for (let i = 0; i < 6; i++) openai.script(model, { status, content: "Incorrect API key provided", echoAuthorization: true });
    }
    // the step keeps failing: the send gives up waiting and fails
    const failedSend = await fleet(["send", "scout", "check the competitors' pricing pages", "--timeout", "5"], 15_000);
    assert.notEqual(failedSend.code, 0, "the send of a task whose model calls fail does not succeed");
    assert.ok(openai.requests.some((r) => r.authorization === `Bearer ${PROVIDER_KEY}`), `the provider got the key (and echoed it)\n${failedSend.stdout}${failedSend.stderr}\n${upOutput.slice(-3000)}`);

    // 4. a delivery to Telegram, refused with the token in the refusal
    const js = jetstream(nc);
    await js.publish(names.outbox("telegram"), encode({ channel: "telegram", to: "-100200", text: "nightly report", source: { agentId: "atlas" }, createdAt: Date.now() }));
    await waitFor("the Telegram bridge to try the delivery", () => telegram.callsOf("sendMessage").length > 0, 15_000);

    // 5. the webhook: the right token, a wrong one that is the provider key
    const wake = (auth: string) =>
      fetch(`http://127.0.0.1:${webhookPort}/wake/scout`, { method: "POST", headers: { authorization: auth, "content-type": "application/json" }, body: JSON.stringify({ text: "ping" }) });
    const woke = await wake(`Bearer ${WEBHOOK_TOKEN}`);
    const refused = await wake(`Bearer ${PROVIDER_KEY}`);
    collected.push({ where: "webhook replies", text: `${woke.status} ${await woke.text()}\n${refused.status} ${await refused.text()}` });
    assert.equal(refused.status, 401);

    // 6. error replies to requests that quote secrets
    for (const [label, id] of [["GetTask with the key as id", PROVIDER_KEY], ["GetTask with a seed as id", seeds[0]!.seed], ["GetTask with the bot token", BOT_TOKEN]] as const) {
      const text = await requestOperation(nc, names, "scout", "GetTask", { id }).then(
        (task) => JSON.stringify(task),
        (err: unknown) => JSON.stringify({ error: String(err), ...(err instanceof Error ? { message: err.message, cause: String(err.cause) } : {}) }),
      );
      collected.push({ where: `error reply: ${label}`, text });
    }

    // 7. CLI runs that fail: an unknown agent, bad --creds, --input that is not JSON
    const badCreds = join(cwd, "seed-as.creds");
    copyFileSync(join(cwd, ".fleet", "creds", "operator.nk"), badCreds);
    const keyAsSeed = join(cwd, "key-as-seed.nk");
    writeFileSync(keyAsSeed, `${PROVIDER_KEY}\n`);
    const cli = [
      await fleet(["send", "nobody", "hello"]),
      await fleet(["status", "--creds", join(cwd, "no-such-dir", "operator.nk")]),
      await fleet(["status", "--creds", badCreds]),
      await fleet(["status", "--creds", keyAsSeed]),
      await fleet(["send", "ship", "--tool", "http_check", "--input", `{"url": "${PROVIDER_KEY}"`]),
    ];
    for (const r of cli) assert.notEqual(r.code, 0, "a bad run fails");
    const status = await fleet(["status"]);
    const statusJson = await fleet(["status", "--json"]);
    assert.equal(status.code, 0, status.stderr);
    assert.equal(statusJson.code, 0, statusJson.stderr);
    await fleet(["audit", "--json"]);
    await fleet(["costs"]);

    // give the bridge's retry and the router's records a moment, then read the streams
    await waitFor("the refused delivery in fleet up's output", () => /delivery failed/.test(upOutput), 15_000).catch(() => undefined);
    for (const stream of ["USAGE", "AUDIT", "AUDIT_ANCHORS", "DLQ"] as const) {
      for (const text of await streamText(stream)) collected.push({ where: `${stream} record`, text });
    }

    // stop the fleet so every child's last lines are flushed through fleet up
    await nc.close();
    nc = undefined;
    up?.kill("SIGINT");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
    collected.push({ where: "fleet up output", text: upOutput });

    // nothing holds a secret
    const planted = [
      { name: "the provider key", value: PROVIDER_KEY },
      { name: "the Telegram bot token", value: BOT_TOKEN },
      { name: "the webhook token", value: WEBHOOK_TOKEN },
      ...seeds.map((s) => ({ name: `the seed in ${s.file}`, value: s.seed })),
    ];
    const leaks: string[] = [];
    for (const { where, text } of collected) {
      for (const { name, value } of planted) {
        const at = text.indexOf(value);
        if (at >= 0) leaks.push(`${name} in ${where}: …${text.slice(Math.max(0, at - 200), at + value.length + 40)}…`);
      }
    }
    assert.deepEqual(leaks, [], `leaks:\n${leaks.join("\n\n")}`);

    // and not vacuously: each error path ran and left its scrubbed trace
    const all = collected.map((c) => c.text).join("\n");
    const where = (pattern: RegExp) => collected.filter((c) => pattern.test(c.text)).map((c) => c.where);
    assert.ok(where(/Incorrect API key provided: Bearer \[redacted\]/).length > 0, `the provider's echoing refusal, scrubbed, is reported\n${failedSend.stdout}${failedSend.stderr}\n${upOutput.slice(-4000)}`);
    assert.ok(where(/chat not found/).length > 0 && /delivery failed/.test(upOutput), `the Telegram refusal is logged\n${upOutput.slice(-4000)}`);
    const audited = where(/http_check/).filter((w) => w === "AUDIT record");
    assert.ok(audited.length >= 2, `both tool calls are audited (${audited.length})`);
    assert.ok(collected.some((c) => c.where === "AUDIT record" && /http_check/.test(c.text) && /\[redacted\]/.test(c.text)), "an audit record holds the tool input, scrubbed");
    assert.ok(where(/\[redacted\]/).some((w) => w.startsWith("error reply")), "an error reply quoting a secret is scrubbed");
    assert.ok(where(/\[redacted\]/).some((w) => w.startsWith("fleet send ship --tool")), "the CLI's error line quoting a secret is scrubbed");
    assert.ok(collected.some((c) => c.where === "USAGE record"), "USAGE records were read");
    assert.ok(/ship/.test(status.stdout) && /"agentId"/.test(statusJson.stdout), "fleet status printed the fleet");
    assert.ok(all.includes("[redacted]"));
  });
});
