import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createNetServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createServer as createTlsServer } from "node:tls";
import { jetstream, jetstreamManager, type JetStreamClient } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino } from "pino";
import { z } from "zod";
import { parseFleetConfig } from "../../config/index.js";
import { referenceToolRisks, referenceTools, ToolCatalogue, defineTool, type ToolContext, type ToolDefinition } from "../../governance/index.js";
import { connectNats, decode, ensureFleetResources, FleetError, FleetNames, OutboxRecord } from "../../protocol/index.js";
import { NatsServer } from "../helpers/nats-server.js";

/** The reference catalogue's tools, each run against real local targets: servers, a git repository, NATS. */

const DAY_MS = 86_400_000;

function fleetYaml(repos: string): string {
  const tiers = ["nano", "workhorse", "capable", "power", "premium"].map((t) => `  ${t}: { model: offline-${t}, inputPerM: 1, outputPerM: 2 }`).join("\n");
  return `fleet: { name: tools, prefix: tools, timeZone: UTC, dailyCapUsd: 10 }
tiers:
${tiers}
agents:
  - { id: atlas, name: Atlas, role: lead, layer: orchestration, defaultTier: power, cycleMinutes: 60, dailyCapUsd: 1, tools: ["*"], skills: [{ id: s, name: S, description: s, tags: [s] }] }
governance:
  repos:
${repos}
`;
}

const listen = (server: Server | ReturnType<typeof createNetServer>): Promise<number> =>
  new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)));

describe("reference tools", () => {
  const dir = mkdtempSync(join(tmpdir(), "fleet-tools-"));
  const names = new FleetNames("tools");
  let nats: NatsServer;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let catalogue: ToolCatalogue;
  let http: Server;
  let httpPort: number;

  const ctx = (overrides: Partial<ToolContext> = {}): ToolContext => ({
    signal: AbortSignal.timeout(20_000),
    log: pino({ level: "silent" }),
    agentId: "atlas",
    now: () => Date.now(),
    ...overrides,
  });
  const tool = (name: string): ToolDefinition => catalogue.require(name);
  const call = (name: string, input: unknown, c: ToolContext = ctx()): Promise<unknown> => tool(name).handler(tool(name).input.parse(input), c);

  const git = (cwd: string, ...args: string[]) => execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main", ...args], { cwd, encoding: "utf8" }).trim();
  const commit = (cwd: string, file: string, text: string) => {
    writeFileSync(join(cwd, file), text);
    git(cwd, "add", file);
    git(cwd, "commit", "-m", `${file}: ${text}`);
    git(cwd, "push", "-q", "origin", "HEAD:main");
    return git(cwd, "rev-parse", "HEAD");
  };
  let shas: { first: string; second: string };

  before(async () => {
    nats = await NatsServer.start();
    nc = await connectNats({ servers: nats.url, name: "tools-test", longLived: false });
    js = jetstream(nc);
    await ensureFleetResources(nc, names);

    // origin (bare), a working clone that pushes, and the deployed checkout the tool pulls into
    git(dir, "init", "-q", "--bare", "origin.git");
    git(dir, "clone", "-q", join(dir, "origin.git"), "work");
    const first = commit(join(dir, "work"), "app.txt", "v1");
    git(dir, "clone", "-q", join(dir, "origin.git"), "deploy");
    git(dir, "clone", "-q", join(dir, "origin.git"), "broken");
    const second = commit(join(dir, "work"), "app.txt", "v2");
    shas = { first, second };
    const build = JSON.stringify(["sh", "-c", "git rev-parse HEAD > ../built.txt"]);
    const config = parseFleetConfig(
      fleetYaml(`    app: { dir: ${JSON.stringify(join(dir, "deploy"))}, build: ${build} }\n    broken: { dir: ${JSON.stringify(join(dir, "broken"))}, build: ["false"] }`),
      "tools.yaml",
    );
    catalogue = new ToolCatalogue(referenceTools({ js, names, codec: "msgpack", config }));

    http = createHttpServer((req, res) => {
      if (req.url === "/hang") return; // never answers
      res.statusCode = req.url === "/down" ? 503 : 200;
      res.end("hello");
    });
    httpPort = await listen(http);
  });
  after(async () => {
    http.closeAllConnections();
    http.close();
    await nc.close();
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("the risk levels the broker's permissions are written from are the catalogue's own", () => {
    assert.deepEqual(referenceToolRisks(), Object.fromEntries(catalogue.list().map((t) => [t.name, t.risk])));
  });

  it("catalogue: one of each risk level, JSON schemas, and refuses a bad catalogue", () => {
    const risks = new Set(catalogue.list().map((t) => t.risk));
    assert.deepEqual([...risks].sort(), ["AUTO", "AUTO+", "BLOCK", "CONFIRM", "PROPOSE"]);
    const described = catalogue.describe("http_check");
    assert.equal(described.reversible, false);
    const schema = z.object({ type: z.literal("object"), properties: z.record(z.string(), z.unknown()), required: z.array(z.string()) }).parse(described.inputSchema);
    assert.deepEqual(schema.required, ["url"], "defaults are optional for the caller");
    assert.equal(catalogue.describe("git_pull_build").reversible, true);
    assert.equal(catalogue.describeAll().length, catalogue.list().length);
    assert.deepEqual(tool("email_send").targetFields, ["to"]);
    assert.deepEqual(tool("email_send").personalDataFields, ["to"]);

    const noRollback = defineTool({ name: "x_post", description: "x", risk: "PROPOSE", input: z.object({}), handler: async () => 1 });
    assert.throws(() => new ToolCatalogue([noRollback]), /has no rollback/);
    assert.throws(() => new ToolCatalogue([tool("http_check"), tool("http_check")]), /two tools/);
    assert.throws(() => catalogue.require("nope"), (err: unknown) => err instanceof FleetError && err.code === "TOOL_NOT_FOUND");
  });

  it("http_check: status, ok and latency; a down or silent target is an answer", async () => {
    const Out = z.object({ status: z.number().nullable(), ok: z.boolean(), latencyMs: z.number(), error: z.string().optional() });
    const up = Out.parse(await call("http_check", { url: `http://127.0.0.1:${httpPort}/` }));
    assert.equal(up.status, 200);
    assert.equal(up.ok, true);
    assert.ok(up.latencyMs >= 0);
    const down = Out.parse(await call("http_check", { url: `http://127.0.0.1:${httpPort}/down` }));
    assert.deepEqual([down.status, down.ok], [503, false]);
    const silent = Out.parse(await call("http_check", { url: `http://127.0.0.1:${httpPort}/hang`, timeoutMs: 200 }));
    assert.equal(silent.ok, false);
    assert.match(silent.error ?? "", /timed out after 200 ms/);
    assert.throws(() => tool("http_check").input.parse({ url: "file:///etc/passwd" }), /http\(s\) URL/);
  });

  it("tls_expiry: reads an untrusted self-signed certificate and reports its expiry", async (t) => {
    try {
      execFileSync("openssl", ["version"]);
    } catch {
      return t.skip("openssl is not installed");
    }
    const key = join(dir, "key.pem");
    const cert = join(dir, "cert.pem");
    execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "30", "-subj", "/CN=localhost/O=Fleet Test"], { stdio: "ignore" });
    const server = createTlsServer({ key: readFileSync(key), cert: readFileSync(cert) }, (socket) => socket.end());
    const port = await listen(server);
    try {
      const out = z
        .object({ notAfter: z.string(), daysLeft: z.number(), issuer: z.string(), subject: z.string(), authorized: z.boolean(), authorizationError: z.string().optional() })
        .parse(await call("tls_expiry", { host: "127.0.0.1", port }));
      assert.ok(out.daysLeft === 29 || out.daysLeft === 30, `daysLeft ${out.daysLeft}`);
      assert.ok(Math.abs(Date.parse(out.notAfter) - (Date.now() + 30 * DAY_MS)) < DAY_MS);
      assert.match(out.subject, /CN=localhost/);
      assert.match(out.issuer, /O=Fleet Test/);
      assert.equal(out.authorized, false, "self-signed: read, but not trusted");
      assert.ok(out.authorizationError);
      // the clock is the context's: a month on, it has expired
      const later = z.object({ daysLeft: z.number() }).parse(await call("tls_expiry", { host: "127.0.0.1", port }, ctx({ now: () => Date.now() + 40 * DAY_MS })));
      assert.ok(later.daysLeft < 0);
    } finally {
      server.close();
    }
  });

  it("dns_lookup: localhost through the system resolver; an unknown name is an empty answer", async () => {
    const Out = z.object({ addresses: z.array(z.string()), error: z.string().optional() });
    const local = Out.parse(await call("dns_lookup", { name: "localhost" }));
    assert.ok(local.addresses.includes("127.0.0.1"), local.addresses.join(","));
    const none = Out.parse(await call("dns_lookup", { name: "no-such-host.invalid" }));
    assert.deepEqual(none.addresses, []);
    assert.ok(none.error);
  });

  it("port_check: open and closed", async () => {
    const server = createNetServer((s) => s.end());
    const port = await listen(server);
    const Out = z.object({ open: z.boolean(), latencyMs: z.number(), error: z.string().optional() });
    assert.equal(Out.parse(await call("port_check", { host: "127.0.0.1", port })).open, true);
    await new Promise((resolve) => server.close(resolve));
    const closed = Out.parse(await call("port_check", { host: "127.0.0.1", port }));
    assert.equal(closed.open, false);
    assert.match(closed.error ?? "", /ECONNREFUSED/);
  });

  it("disk_usage and memory_usage report sane numbers", async () => {
    const disk = z.object({ totalBytes: z.number(), freeBytes: z.number(), usedBytes: z.number(), usedPercent: z.number() }).parse(await call("disk_usage", { path: dir }));
    assert.ok(disk.totalBytes > 0 && disk.freeBytes <= disk.totalBytes && disk.usedBytes <= disk.totalBytes);
    assert.ok(disk.usedPercent >= 0 && disk.usedPercent <= 100);
    const memory = z.object({ totalBytes: z.number(), usedBytes: z.number(), usedPercent: z.number(), load: z.object({ "1m": z.number() }) }).parse(await call("memory_usage", {}));
    assert.ok(memory.totalBytes > memory.usedBytes && memory.usedPercent > 0 && memory.usedPercent < 100);
    await assert.rejects(call("disk_usage", { path: join(dir, "missing") }), /ENOENT/);
  });

  it("git_pull_build: pulls, builds, and its rollback restores and rebuilds the previous HEAD", async () => {
    const deploy = join(dir, "deploy");
    assert.equal(git(deploy, "rev-parse", "HEAD"), shas.first);
    const output = await call("git_pull_build", { repo: "app" });
    const out = z.object({ previousHead: z.string(), head: z.string(), changed: z.boolean(), built: z.boolean() }).parse(output);
    assert.deepEqual(out, { previousHead: shas.first, head: shas.second, changed: true, built: true });
    assert.equal(git(deploy, "rev-parse", "HEAD"), shas.second);
    assert.equal(readFileSync(join(dir, "built.txt"), "utf8").trim(), shas.second);

    const rollback = tool("git_pull_build").rollback;
    assert.ok(rollback);
    await rollback({ repo: "app" }, output, ctx());
    assert.equal(git(deploy, "rev-parse", "HEAD"), shas.first);
    assert.equal(readFileSync(join(dir, "built.txt"), "utf8").trim(), shas.first, "the old HEAD is built again");
    await assert.rejects(rollback({ repo: "app" }, { previousHead: "not a sha" }, ctx()), /previousHead/);

    assert.throws(() => tool("git_pull_build").input.parse({ repo: "elsewhere" }), /governance\.repos \(app, broken\)/);
  });

  it("git_pull_build: a failed build leaves the checkout where it was", async () => {
    const broken = join(dir, "broken");
    await assert.rejects(call("git_pull_build", { repo: "broken" }), (err: unknown) => err instanceof FleetError && err.code === "TOOL_FAILED" && /back at/.test(err.message));
    assert.equal(git(broken, "rev-parse", "HEAD"), shas.first);
  });

  it("channel_post puts an OutboxRecord on the channel once per idempotency key; its rollback posts a retraction", async () => {
    const keyed = ctx({ idempotencyKey: "post-1" });
    const Out = z.object({ seq: z.number(), duplicate: z.boolean() });
    const first = Out.parse(await call("channel_post", { channel: "console", text: "deploy done" }, keyed));
    const again = Out.parse(await call("channel_post", { channel: "console", text: "deploy done" }, keyed));
    assert.equal(again.duplicate, true);
    assert.equal(again.seq, first.seq);
    await tool("channel_post").rollback?.({ channel: "console", text: "deploy done", to: "*" }, first, keyed);
    const jsm = await jetstreamManager(nc);
    const texts: string[] = [];
    for (const seq of [first.seq, first.seq + 1]) {
      const m = await jsm.streams.getMessage(names.stream("OUTBOX"), { seq });
      assert.ok(m);
      const record = decode(OutboxRecord, m.data);
      assert.ok(record.ok);
      assert.equal(record.value.source.agentId, "atlas");
      texts.push(record.value.text);
    }
    assert.deepEqual(texts, ["deploy done", "Retracted: deploy done"]);
  });

  it("email_send goes to the email channel; BLOCK handlers refuse even when called directly", async () => {
    const Out = z.object({ channel: z.string(), to: z.string() });
    const sent = Out.parse(await call("email_send", { to: "ops@example.com", subject: "Hi", body: "Body" }, ctx({ idempotencyKey: "mail-1" })));
    assert.deepEqual(sent, { channel: "email", to: "ops@example.com" });
    for (const name of ["money_transfer", "database_delete", "bulk_email"]) {
      assert.equal(tool(name).risk, "BLOCK");
      await assert.rejects(tool(name).handler({}, ctx()), (err: unknown) => err instanceof FleetError && err.code === "TOOL_BLOCKED");
    }
  });
});
