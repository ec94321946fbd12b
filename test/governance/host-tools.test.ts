import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino } from "pino";
import { z } from "zod";
import { parseFleetConfig } from "../../config/index.js";
import { compareVersions, parseRange, parseVersion, referenceTools, satisfies, ToolCatalogue, type ToolContext } from "../../governance/index.js";
import { connectNats, ensureFleetResources, FleetError, FleetNames } from "../../protocol/index.js";
import { NatsServer } from "../helpers/nats-server.js";

/** The reference tools that look at the tool host itself: a lock file against advisories, file manifests, processes. */

const config = parseFleetConfig(
  `fleet: { name: host, prefix: host, timeZone: UTC, dailyCapUsd: 10 }
tiers:
${["nano", "workhorse", "capable", "power", "premium"].map((t) => `  ${t}: { model: m-${t}, inputPerM: 1, outputPerM: 2 }`).join("\n")}
agents:
  - { id: atlas, name: Atlas, role: lead, layer: orchestration, defaultTier: power, cycleMinutes: 60, dailyCapUsd: 1, tools: ["*"], skills: [{ id: s, name: S, description: s, tags: [s] }] }
`,
  "host.yaml",
);

const LOCK = {
  name: "site",
  lockfileVersion: 3,
  packages: {
    "": { name: "site", version: "1.0.0" },
    "node_modules/lodash": { version: "4.17.20" },
    "node_modules/express": { version: "4.18.2" },
    "node_modules/express/node_modules/qs": { version: "6.5.2" },
    "node_modules/qs": { version: "6.11.0" },
    "node_modules/left-pad": { version: "1.3.0" },
    "node_modules/beta-lib": { version: "2.0.0-beta.3" },
    "node_modules/local-lib": { version: "file:../local-lib", link: false },
    "node_modules/linked": { link: true, resolved: "../linked" },
  },
};

const ADVISORIES = {
  advisories: [
    { id: "GHSA-lodash", package: "lodash", vulnerable: "<4.17.21", severity: "high", summary: "prototype pollution", fixed: "4.17.21" },
    { id: "GHSA-qs", package: "qs", vulnerable: ">=6.5.0 <6.5.3 || >=6.7.0 <6.7.3", severity: "critical", summary: "prototype poisoning", fixed: "6.5.3" },
    { id: "GHSA-express", package: "express", vulnerable: "<4.17.3", severity: "moderate", summary: "open redirect" },
    { id: "GHSA-beta", package: "beta-lib", vulnerable: "<2.0.0", severity: "low", summary: "prereleases of 2.0.0 are before it" },
    { id: "GHSA-local", package: "local-lib", vulnerable: "<9.0.0", severity: "low", summary: "a file: dependency has no version to compare" },
  ],
};

describe("host tools", () => {
  const dir = mkdtempSync(join(tmpdir(), "fleet-host-tools-"));
  const names = new FleetNames("host");
  let nats: NatsServer;
  let nc: NatsConnection;
  let catalogue: ToolCatalogue;
  let server: Server;
  let base: string;
  const ctx = (): ToolContext => ({ signal: AbortSignal.timeout(10_000), log: pino({ level: "silent" }), agentId: "atlas", now: () => Date.parse("2026-03-02T10:00:00Z") });
  const run = async (name: string, input: unknown) => {
    const tool = catalogue.require(name);
    return tool.handler(tool.input.parse(input), ctx());
  };
  const failsWith = (code: string, pattern: RegExp) => (err: unknown) => err instanceof FleetError && err.code === code && pattern.test(err.message);

  before(async () => {
    nats = await NatsServer.start();
    nc = await connectNats({ servers: nats.url, name: "host-tools-test", longLived: false });
    const toolState = (await ensureFleetResources(nc, names)).kv.toolstate;
    catalogue = new ToolCatalogue(referenceTools({ js: jetstream(nc), names, codec: "msgpack", config, toolState }));
    writeFileSync(join(dir, "package-lock.json"), JSON.stringify(LOCK));
    writeFileSync(join(dir, "advisories.json"), JSON.stringify(ADVISORIES));
    server = createServer((req, res) => {
      if (req.url === "/advisories") return res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(ADVISORIES.advisories));
      if (req.url === "/bad-range") return res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify([{ id: "X", package: "qs", vulnerable: "^6.0.0", severity: "high" }]));
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.close();
    await nc.close();
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("semver ranges: <, <=, >, >=, = joined by spaces and ||, prerelease precedence; other syntax is refused", () => {
    const v = (s: string) => parseVersion(s)!;
    const range = (r: string) => {
      const parsed = parseRange(r);
      assert.ok(parsed.ok, r);
      return parsed.sets;
    };
    assert.equal(satisfies(v("6.5.2"), range(">=6.5.0 <6.5.3 || >=6.7.0 <6.7.3")), true);
    assert.equal(satisfies(v("6.6.0"), range(">=6.5.0 <6.5.3 || >=6.7.0 <6.7.3")), false);
    assert.equal(satisfies(v("6.7.2"), range(">= 6.7.0 < 6.7.3")), true, "a space after the operator is allowed");
    assert.equal(satisfies(v("1.2.3"), range("1.2.3")), true);
    assert.equal(satisfies(v("1.2.3"), range("<=1.2.3")), true);
    assert.equal(satisfies(v("1.2.3"), range(">1.2.3")), false);
    assert.equal(satisfies(v("1.2.3+build.7"), range("=1.2.3")), true, "build metadata is ignored");
    assert.ok(compareVersions(v("1.0.0-alpha"), v("1.0.0-alpha.1")) < 0);
    assert.ok(compareVersions(v("1.0.0-alpha.1"), v("1.0.0-alpha.beta")) < 0);
    assert.ok(compareVersions(v("1.0.0-beta.2"), v("1.0.0-beta.11")) < 0);
    assert.ok(compareVersions(v("1.0.0-rc.1"), v("1.0.0")) < 0);
    assert.ok(compareVersions(v("1.10.0"), v("1.9.9")) > 0);
    for (const bad of ["^1.2.3", "~1.2", "1.x", "*", ">=1.2", "", "<1.0.0 ||"]) assert.equal(parseRange(bad).ok, false, bad);
    assert.equal(parseVersion("01.2.3"), undefined);
  });

  const Audit = z.object({
    packages: z.number(),
    vulnerable: z.number(),
    bySeverity: z.record(z.string(), z.number()),
    findings: z.array(z.object({ id: z.string(), package: z.string(), version: z.string(), severity: z.string(), fixed: z.string().optional(), paths: z.array(z.string()) })),
    unversioned: z.array(z.string()).optional(),
  });

  it("dependency_audit: a lock file against an advisory file: every vulnerable package, most severe first, with where it is installed", async () => {
    const out = Audit.parse(await run("dependency_audit", { lockfile: join(dir, "package-lock.json"), advisoriesFile: join(dir, "advisories.json") }));
    assert.equal(out.packages, 7, "the root project and links are not dependencies");
    assert.deepEqual(
      out.findings.map((f) => [f.id, f.version, f.paths]),
      [
        ["GHSA-qs", "6.5.2", ["node_modules/express/node_modules/qs"]],
        ["GHSA-lodash", "4.17.20", ["node_modules/lodash"]],
        ["GHSA-beta", "2.0.0-beta.3", ["node_modules/beta-lib"]],
      ],
    );
    assert.deepEqual(out.bySeverity, { low: 1, moderate: 0, high: 1, critical: 1 });
    assert.deepEqual(out.unversioned, ["local-lib@file:../local-lib"], "a dependency without a semver version is named, not passed");
  });

  it("dependency_audit: advisories from an http endpoint (a target), and a lock file of version 1", async () => {
    writeFileSync(join(dir, "v1.json"), JSON.stringify({ lockfileVersion: 1, dependencies: { lodash: { version: "4.17.21" }, express: { version: "4.17.1", dependencies: { qs: { version: "6.7.0" } } } } }));
    const out = Audit.parse(await run("dependency_audit", { lockfile: join(dir, "v1.json"), advisoriesUrl: `${base}/advisories` }));
    assert.deepEqual(out.findings.map((f) => [f.id, f.paths[0]]), [["GHSA-qs", "node_modules/express/node_modules/qs"], ["GHSA-express", "node_modules/express"]]);
    assert.deepEqual(catalogue.require("dependency_audit").targetFields, ["advisoriesUrl"]);
  });

  it("dependency_audit: an advisory it cannot read fails the call with its index; so do a missing lock file and a dead endpoint", async () => {
    await assert.rejects(run("dependency_audit", { lockfile: join(dir, "package-lock.json"), advisoriesUrl: `${base}/bad-range` }), failsWith("TOOL_FAILED", /advisory \[0\] \(X\): "\^6\.0\.0"/));
    await assert.rejects(run("dependency_audit", { lockfile: join(dir, "nope.json"), advisoriesFile: join(dir, "advisories.json") }), failsWith("TOOL_FAILED", /cannot read the lock file/));
    await assert.rejects(run("dependency_audit", { lockfile: join(dir, "package-lock.json"), advisoriesUrl: `${base}/gone` }), failsWith("TOOL_FAILED", /HTTP 404/));
    assert.throws(() => catalogue.require("dependency_audit").input.parse({ lockfile: "x" }), /exactly one of advisoriesFile and advisoriesUrl/);
  });

  const Integrity = z.object({ files: z.number(), baseline: z.string(), added: z.array(z.string()), removed: z.array(z.string()), changed: z.array(z.string()), manifest: z.object({ files: z.record(z.string(), z.string()) }).optional() });

  it("file_integrity: the first call stores the baseline; later calls report added, removed and changed files until the baseline is updated", async () => {
    const site = join(dir, "site");
    mkdirSync(join(site, "assets"), { recursive: true });
    writeFileSync(join(site, "index.html"), "<h1>v1</h1>");
    writeFileSync(join(site, "assets", "app.js"), "console.log(1)");
    writeFileSync(join(site, "robots.txt"), "User-agent: *");
    const first = Integrity.parse(await run("file_integrity", { dir: site }));
    assert.deepEqual([first.files, first.baseline, first.added, first.changed], [3, "created", [], []]);

    writeFileSync(join(site, "assets", "app.js"), "console.log('injected')");
    unlinkSync(join(site, "robots.txt"));
    writeFileSync(join(site, "shell.php"), "<?php system($_GET['c']);");
    symlinkSync("/etc/passwd", join(site, "passwd"));
    const tampered = Integrity.parse(await run("file_integrity", { dir: site }));
    assert.deepEqual([tampered.added, tampered.removed, tampered.changed], [["passwd", "shell.php"], ["robots.txt"], ["assets/app.js"]]);
    assert.match(tampered.baseline, /^stored 2026-03-02T10:00:00/);
    // the baseline is kept: the same changes are reported again until someone accepts them
    assert.deepEqual(Integrity.parse(await run("file_integrity", { dir: site })).changed, ["assets/app.js"]);
    assert.equal(Integrity.parse(await run("file_integrity", { dir: site, updateBaseline: true })).baseline, "updated");
    const accepted = Integrity.parse(await run("file_integrity", { dir: site }));
    assert.deepEqual([accepted.added, accepted.removed, accepted.changed], [[], [], []]);
  });

  it("file_integrity: against a manifest file in full sha256 (the shape it answers with); limits and bad paths are typed failures", async () => {
    const site = join(dir, "site2");
    mkdirSync(site);
    writeFileSync(join(site, "a.txt"), "a");
    writeFileSync(join(site, "b.txt"), "b");
    const made = Integrity.parse(await run("file_integrity", { dir: site, includeManifest: true }));
    assert.match(made.manifest?.files["a.txt"] ?? "", /^ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb$/);
    writeFileSync(join(dir, "manifest.json"), JSON.stringify(made.manifest));
    writeFileSync(join(site, "b.txt"), "B");
    const out = Integrity.parse(await run("file_integrity", { dir: site, baseline: join(dir, "manifest.json") }));
    assert.deepEqual([out.baseline, out.changed], [join(dir, "manifest.json"), ["b.txt"]]);
    await assert.rejects(run("file_integrity", { dir: site, maxFiles: 1 }), failsWith("TOOL_FAILED", /more than 1 files/));
    await assert.rejects(run("file_integrity", { dir: join(dir, "missing") }), failsWith("TOOL_FAILED", /ENOENT/));
    await assert.rejects(run("file_integrity", { dir: join(site, "a.txt") }), failsWith("TOOL_FAILED", /not a directory/));
    await assert.rejects(run("file_integrity", { dir: site, baseline: join(dir, "advisories.json") }), failsWith("TOOL_FAILED", /is not a manifest/));
  });

  const Status = z.object({ running: z.boolean(), reason: z.string().optional(), processes: z.array(z.object({ pid: z.number(), name: z.string(), state: z.string(), uptimeSeconds: z.number(), rssBytes: z.number().nullable(), command: z.string() })).optional() });

  it("process_status: this very process by pid file and by name, with uptime and resident memory; a stale pid file and an unknown name are answers", async () => {
    writeFileSync(join(dir, "test.pid"), `${process.pid}\n`);
    const mine = Status.parse(await run("process_status", { pidFile: join(dir, "test.pid") }));
    assert.equal(mine.running, true);
    const me = mine.processes?.[0];
    assert.equal(me?.pid, process.pid);
    assert.ok((me?.rssBytes ?? 0) > 10 * 1024 * 1024, "a node process holds more than 10 MB");
    assert.ok((me?.uptimeSeconds ?? -1) >= 0 && (me?.uptimeSeconds ?? Infinity) <= Math.ceil(process.uptime()) + 2);
    assert.match(me?.command ?? "", /node/);

    const comm = readFileSync("/proc/self/comm", "utf8").trim();
    const byName = Status.parse(await run("process_status", { name: comm }));
    assert.ok(byName.processes?.some((p) => p.pid === process.pid), `found by its name "${comm}"`);

    writeFileSync(join(dir, "stale.pid"), "4194304");
    assert.deepEqual(Status.parse(await run("process_status", { pidFile: join(dir, "stale.pid") })), { running: false, reason: "no process 4194304 (a stale pid file)" });
    assert.deepEqual(Status.parse(await run("process_status", { name: "no-such-process-here" })), { running: false, processes: [] });
    assert.equal(Status.parse(await run("process_status", { pidFile: join(dir, "missing.pid") })).running, false);
  });
});
