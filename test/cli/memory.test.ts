import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { NatsConnection } from "@nats-io/nats-core";
import { AgentMemory, fromMarkdown } from "../../memory/agent-memory.js";
import { connectNats, ensureFleetResources, FleetNames } from "../../protocol/index.js";
import { writeTestFleet } from "../helpers/fleet-processes.js";
import { NatsServer } from "../helpers/nats-server.js";
import { runFleet } from "../helpers/run-cli.js";

/** `fleet memory show` and `fleet memory export`, run as the compiled CLI against a real nats-server. */

const fleet = (args: string[]) => runFleet(args);

describe("fleet memory", () => {
  const names = new FleetNames("memcli");
  let server: NatsServer;
  let nc: NatsConnection;
  let fleetFile: ReturnType<typeof writeTestFleet>;
  const dirs: string[] = [];
  const scoutLines = ["Competitor A raised prices by 10% in May.", "- keyword research runs before the Monday post"];

  before(async () => {
    server = await NatsServer.start();
    fleetFile = writeTestFleet({ prefix: names.prefix });
    nc = await connectNats({ servers: server.url, name: "memory-cli-test", longLived: false });
    const { kv } = await ensureFleetResources(nc, names);
    const memory = new AgentMemory({ kv: kv.memory, maxLines: 100 });
    await memory.write("scout", scoutLines, 0);
    await memory.write("ship", ["Shop deploys wait for 22:00."], 0);
    // the distiller's run records share the bucket: they are not agents and are not exported
    await kv.memory.put("distilled.scout.2025-06-01", new TextEncoder().encode("{}"));
  });

  after(async () => {
    await nc?.close();
    await server?.stop();
    fleetFile?.cleanup();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  const common = () => ["--nats", server.url, "--config", fleetFile.file];

  it("show prints MEMORY.md as markdown with its line count and cap", async () => {
    const r = await fleet(["memory", "show", "scout", ...common()]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^# MEMORY — scout\n\n- Competitor A raised prices/);
    assert.match(r.stdout, /<!-- 2\/100 lines, revision \d+ -->/);
    assert.deepEqual(fromMarkdown(r.stdout), { agentId: "scout", lines: scoutLines });
  });

  it("show --json gives lines, count, cap and revision; an agent without memory has none", async () => {
    const r = await fleet(["memory", "show", "scout", "--json", ...common()]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.deepEqual(out.lines, scoutLines);
    assert.equal(out.count, 2);
    assert.equal(out.cap, 100);
    assert.ok(out.revision > 0);
    const none = JSON.parse((await fleet(["memory", "show", "mira", "--json", ...common()])).stdout);
    assert.deepEqual([none.count, none.revision], [0, 0]);
  });

  it("export writes <dir>/<agent>.md for every agent with memory and says what it wrote", async () => {
    const dir = join(mkdtempSync(join(tmpdir(), "fleet-memexport-")), "nested", "out");
    dirs.push(dir);
    const r = await fleet(["memory", "export", dir, ...common()]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readdirSync(dir).sort(), ["scout.md", "ship.md"]);
    assert.deepEqual(fromMarkdown(readFileSync(join(dir, "scout.md"), "utf8")), { agentId: "scout", lines: scoutLines });
    assert.match(r.stdout, new RegExp(`wrote ${join(dir, "ship.md").replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} \\(1/100 lines\\)`));
    assert.match(r.stdout, /exported MEMORY\.md of 2 agent\(s\)/);
  });

  it("refuses a missing argument with its usage", async () => {
    const r = await fleet(["memory", "show", ...common()]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /usage: fleet memory show <agent>/);
  });
});
