import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino } from "pino";
import { z } from "zod";
import { loadFleetConfig, parseFleetConfig, type FleetConfig } from "../../config/index.js";
import {
  AgentTools,
  checkToolNames,
  fleetPermissions,
  fleetToolRisks,
  fleetTools,
  GovernanceService,
  loadFleetTools,
  policyOf,
  ProposalStore,
  readAuditRecords,
  ToolCatalogue,
  ToolHost,
  toolSource,
  type FleetToolSources,
} from "../../governance/index.js";
import { connectNats, ensureFleetResources, FleetError, FleetNames, ProposalRecord, requestTyped, type FleetResources } from "../../protocol/index.js";
import { ledger } from "../fixtures/tool-module.js";
import { NatsServer } from "../helpers/nats-server.js";
import { waitFor } from "../helpers/wait.js";

/**
 * Tool modules: loaded from `toolModules:` relative to the config file, refused at start with the path when they do not
 * load or export a bad tool, and, once loaded, governed exactly like the built-in tools (allow list, risk, audit,
 * proposals, rollback).
 */

const here = dirname(fileURLToPath(import.meta.url));
const FIXTURE = join(here, "..", "fixtures", "tool-module.js");
const EXAMPLE = join(here, "..", "..", "..", "examples", "tools", "fleet.yaml");
const PREFIX = "tm";
const T0 = Date.parse("2026-03-04T12:00:00Z");

function fleetYaml(modules: string[], extra = ""): string {
  const tiers = ["nano", "workhorse", "capable", "power", "premium"].map((t) => `  ${t}: { model: m-${t}, inputPerM: 1, outputPerM: 2 }`).join("\n");
  const agent = (id: string, layer: string, tools: string) =>
    `  - { id: ${id}, name: ${id}, role: r, layer: ${layer}, defaultTier: nano, cycleMinutes: 20, dailyCapUsd: 1, tools: ${tools}, skills: [{ id: s, name: S, description: s, tags: [s] }] }`;
  return `fleet: { name: tm, prefix: ${PREFIX}, timeZone: UTC, dailyCapUsd: 10 }
tiers:
${tiers}
toolModules: ${JSON.stringify(modules)}
agents:
${agent("atlas", "orchestration", '["*"]')}
${agent("scout", "execution", "[shout, ledger_add, http_check]")}
${agent("ship", "execution", "[http_check]")}
${extra}`;
}

describe("tool modules", () => {
  const dir = mkdtempSync(join(tmpdir(), "fleet-modules-"));
  // modules written by the tests sit inside the package, so their `import "zod"` resolves as an operator's would
  const moduleDir = mkdtempSync(join(here, "modules-"));
  const configFile = join(dir, "fleet.yaml");
  const names = new FleetNames(PREFIX);
  let config: FleetConfig;
  let sources: FleetToolSources;
  let nats: NatsServer;
  let nc: NatsConnection;
  let resources: FleetResources;
  let host: ToolHost;
  let governance: GovernanceService;
  let scout: AgentTools;
  const log = pino({ level: "silent" });
  const clock = { now: () => T0 };

  const writeModule = (name: string, text: string): string => {
    const file = join(moduleDir, name);
    writeFileSync(file, text);
    return file;
  };
  const refusedAtStart = async (modules: string[], ...patterns: RegExp[]) => {
    writeFileSync(configFile, fleetYaml(modules));
    const cfg = loadFleetConfig(configFile);
    await assert.rejects(loadFleetTools(cfg, configFile), (err: unknown) => {
      assert.ok(err instanceof FleetError && err.code === "CONFIG_INVALID", String(err));
      for (const p of patterns) assert.match(err.message, p);
      return true;
    });
  };

  before(async () => {
    writeFileSync(configFile, fleetYaml([relative(dir, FIXTURE)]));
    config = loadFleetConfig(configFile);
    sources = await loadFleetTools(config, configFile);
    nats = await NatsServer.start();
    nc = await connectNats({ servers: nats.url, name: "tool-modules-test", longLived: false });
    resources = await ensureFleetResources(nc, names);
    const js = jetstream(nc);
    const tools = fleetTools({ js, names, codec: "msgpack", config, toolState: resources.kv.toolstate }, sources);
    host = new ToolHost({ nc, js, names, codec: "msgpack", config, tools, kv: { proposals: resources.kv.proposals, toolruns: resources.kv.toolruns }, host: "test", log, clock });
    await host.start();
    governance = new GovernanceService({
      nc, js, jsm: await jetstreamManager(nc), names, codec: "msgpack", config, proposalsKv: resources.kv.proposals, tools, policy: policyOf(config),
      budgetOf: async () => ({ spentUsd: 0, capUsd: 1 }), clock, log, tickMs: 0, toolTimeoutMs: 5_000,
    });
    await governance.start();
    scout = new AgentTools({ nc, js, names, codec: "msgpack", agentId: "scout", allowed: config.agents[1]!.tools, risks: new Map(Object.entries(fleetToolRisks(sources))), clock });
  });
  after(async () => {
    await governance?.stop();
    await host?.stop();
    await nc?.close();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(moduleDir, { recursive: true, force: true });
  });

  it("a module named relative to the config file joins the catalogue: risks, descriptions, its source", () => {
    assert.deepEqual(sources.modules.map((m) => [m.file, m.tools.map((t) => t.name)]), [[FIXTURE, ["shout", "ledger_add"]]]);
    const risks = fleetToolRisks(sources);
    assert.deepEqual([risks.shout, risks.ledger_add, risks.http_check], ["AUTO", "PROPOSE", "AUTO"]);
    assert.equal(toolSource(sources, "shout"), relative(dir, FIXTURE));
    assert.equal(toolSource(sources, "http_check"), "built-in");
    const catalogue = new ToolCatalogue(fleetTools({ js: jetstream(nc), names, codec: "msgpack", config }, sources));
    const described = catalogue.describe("ledger_add");
    assert.equal(described.reversible, true);
    assert.deepEqual(z.object({ required: z.array(z.string()) }).parse(described.inputSchema).required, ["line"]);
    assert.deepEqual(catalogue.require("ledger_add").targetFields, ["url"], "`targets` is the catalogue's targetFields");
  });

  it("the broker's permissions cover module tools: the agent may call its AUTO one, only governance its PROPOSE one", () => {
    const perms = fleetPermissions(config, fleetToolRisks(sources));
    const scoutPublish = perms.get("agent:scout")?.publish.allow ?? [];
    assert.ok(scoutPublish.includes(names.tool("shout", "scout")));
    assert.ok(!scoutPublish.includes(names.tool("ledger_add", "scout")));
    assert.ok(perms.get("governance")?.publish.allow.includes(names.tool("ledger_add", "_governance")));
    assert.ok(!(perms.get("agent:ship")?.publish.allow ?? []).includes(names.tool("shout", "ship")));
    // what stateful tools remember is the tool host's to write; no agent may touch it
    assert.ok(perms.get("tools")?.publish.allow.includes(`$KV.${names.bucket("toolstate")}.>`));
    assert.ok(perms.get("agent:scout")?.publish.deny.includes(`$KV.${names.bucket("toolstate")}.>`));
  });

  it("an AUTO module tool runs for an allowed agent and is audited; another agent is refused by the tool host (audited too)", async () => {
    const result = await scout.call("shout", { text: "hello fleet" });
    assert.deepEqual(result.output, { shouted: "HELLO FLEET" });
    await assert.rejects(
      requestTyped(nc, names.tool("shout", "ship"), { agentId: "ship", input: { text: "x" } }, z.unknown(), { codec: "msgpack", timeoutMs: 5_000 }),
      (err: unknown) => err instanceof FleetError && err.code === "TOOL_NOT_ALLOWED",
    );
    await assert.rejects(scout.call("shout", { text: "" }), (err: unknown) => err instanceof FleetError && err.code === "MESSAGE_INVALID", "the module's zod schema is checked");
    const trail = await readAuditRecords(jetstream(nc), names, "msgpack", { tool: "shout" });
    assert.deepEqual(trail.records.map((r) => [r.agentId, r.ok, r.risk, r.error?.code ?? ""]), [["scout", true, "AUTO", ""], ["ship", false, "AUTO", "TOOL_NOT_ALLOWED"], ["scout", false, "AUTO", "MESSAGE_INVALID"]]);
  });

  it("a PROPOSE module tool runs only through a proposal, once; rolled back inside its window; Sentinel applies its targets", async () => {
    await assert.rejects(scout.call("ledger_add", { line: "x" }), (err: unknown) => err instanceof FleetError && err.code === "PROPOSAL_REQUIRED");
    const store = new ProposalStore(resources.kv.proposals, jetstream(nc), names, "msgpack");
    const stateOf = async (id: string) => (await store.get(id))?.record;
    const id = await scout.propose({ tool: "ledger_add", input: { line: "invoice 42 sent" }, reason: "bookkeeping" });
    await waitFor(`proposal ${id} completed`, async () => (await stateOf(id))?.state === "completed", 10_000);
    assert.deepEqual(ledger, ["invoice 42 sent"]);
    assert.deepEqual((await stateOf(id))?.output, { added: "invoice 42 sent", by: "scout", size: 1 }, "run gets the agent in ctx");

    const rolled = await requestTyped(nc, names.governance("rollback"), { proposalId: id, by: "op" }, ProposalRecord, { codec: "msgpack", timeoutMs: 5_000 });
    assert.equal(rolled.state, "rolled_back");
    assert.deepEqual(ledger, []);

    const outside = await scout.propose({ tool: "ledger_add", input: { line: "exfiltrate", url: "http://evil.example/x" }, reason: "r" });
    await waitFor(`proposal ${outside} rejected`, async () => (await stateOf(outside))?.state === "rejected", 10_000);
    const rejectedBy = (await stateOf(outside))?.verdict?.rejectedBy;
    assert.equal(rejectedBy?.rule, "target_allow_list");
    assert.match(rejectedBy?.reason ?? "", /evil\.example is not in the target allow list/);
    assert.deepEqual(ledger, [], "a rejected proposal never runs");
  });

  it("a module that does not load, exports no tools or a bad tool is refused at start, naming the module and the field", async () => {
    await refusedAtStart([writeModule("throws.mjs", 'throw new Error("boom at import");')], /toolModules\[0\]: .*throws\.mjs did not load: boom at import/);
    await refusedAtStart([join(moduleDir, "missing.mjs")], /toolModules\[0\]: .*missing\.mjs did not load/);
    await refusedAtStart([writeModule("empty.mjs", "export const x = 1;")], /empty\.mjs exports no tools/);
    await refusedAtStart(
      [writeModule("bad.mjs", 'import { z } from "zod";\nexport default [{ name: "Bad-Name", description: "", risk: "SOMETIMES", input: { type: "object" } }];')],
      /bad\.mjs: tool \[0\] \("Bad-Name"\): name: must be 1-64 lowercase/,
      /description: must say what the tool does/,
      /risk: /,
      /input: must be a zod v4 schema/,
      /run: must be a function/,
    );
    await refusedAtStart(
      [writeModule("no-rollback.mjs", 'import { z } from "zod";\nexport const tools = [{ name: "pay_out", description: "d", risk: "PROPOSE", input: z.object({}), run: async () => 1 }];')],
      /no-rollback\.mjs: tool \[0\] \("pay_out"\): a PROPOSE tool needs a rollback/,
    );
    const dup = 'import { z } from "zod";\nexport default [{ name: "twice", description: "d", risk: "AUTO", input: z.object({}), run: async () => 1 }];';
    await refusedAtStart([writeModule("a.mjs", dup), writeModule("b.mjs", dup)], /toolModules\[1\]: .*b\.mjs: tool "twice" is also defined by .*a\.mjs/);
    await refusedAtStart(
      [writeModule("clash.mjs", 'import { z } from "zod";\nexport default [{ name: "http_check", description: "d", risk: "AUTO", input: z.object({}), run: async () => 1 }];')],
      /toolModules\[0\]: .*clash\.mjs: tool "http_check" has the name of a built-in tool/,
    );
  });

  it("the shipped example module (examples/tools/word-count.mjs) loads from its config and counts words", async () => {
    const example = loadFleetConfig(EXAMPLE);
    const loaded = await loadFleetTools(example, EXAMPLE);
    const tool = new ToolCatalogue(loaded.modules.flatMap((m) => m.tools)).require("word_count");
    const out = await tool.handler(tool.input.parse({ text: "the fleet counts\nthe words the fleet sees", top: 2 }), { signal: AbortSignal.timeout(1_000), log, agentId: "scout", now: () => T0 });
    assert.deepEqual(out, { words: 8, lines: 2, characters: 41, frequent: [{ word: "the", count: 3 }, { word: "fleet", count: 2 }] });
  });

  it("config without modules: a tool name no source provides is refused with its path and the name it probably meant", async () => {
    const typo = parseFleetConfig(fleetYaml([], "governance: { sentinel: { rateLimits: { perTool: { chanel_post: 3 } } } }").replace("[shout, ledger_add, http_check]", "[htp_check, feed_fetch, crm_read]").replace("[http_check]", "[http_check, fortune_telling]"), "typo.yaml");
    await assert.rejects(loadFleetTools(typo, "typo.yaml"), (err: unknown) => {
      assert.ok(err instanceof FleetError && err.code === "CONFIG_INVALID");
      assert.deepEqual(err.message.split("\n"), [
        'typo.yaml: agents[1].tools[0]: no tool "htp_check" (did you mean "http_check"?)',
        "typo.yaml: agents[1].tools: crm_read call the business API: set business.url (the stand-in: `fleet run standin`)",
        'typo.yaml: agents[2].tools[1]: no tool "fortune_telling" in the catalogue (built-in tools and toolModules)',
        'typo.yaml: governance.sentinel.rateLimits.perTool.chanel_post: no tool "chanel_post" (did you mean "channel_post"?)',
      ]);
      return true;
    });
    // an MCP server's tools (`server.tool`, `server.*`) are checked where the servers' tool lists are known, not here
    const withMcp = { ...config, agents: config.agents.map((a) => (a.id === "ship" ? { ...a, tools: ["http_check", "github.list_issues", "github.*"] } : a)) };
    assert.doesNotThrow(() => checkToolNames(withMcp, Object.keys(fleetToolRisks(sources)), "mcp.yaml"));
  });
});
