import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { stringify } from "yaml";
import { parseFleetConfig, type McpServerConfig } from "../../config/index.js";
import { fleetPermissions, globMatches, mcpToolRisk, nameTools, restartDelay, sanitiseToolName, toolAllowed } from "../../governance/index.js";

/** The pure rules of MCP tools: names, risk, allow-list globs, restart backoff, and the broker's grants. */

const server = (extra: Partial<McpServerConfig> = {}): McpServerConfig => ({ command: "node", risk: {}, compensations: {}, targetFields: {}, timeoutSeconds: 30, ...extra });

describe("MCP tool names", () => {
  it("maps a name to one subject token, lowercase, and refuses what cannot be mapped or collides", () => {
    assert.deepEqual(sanitiseToolName("files", "read_file"), { ok: true, fleetName: "files.read_file", token: "read_file" });
    assert.deepEqual(sanitiseToolName("files", "Get.Weather v2"), { ok: true, fleetName: "files.get_weather_v2", token: "get_weather_v2" });
    assert.equal(sanitiseToolName("files", "***").ok, false);
    assert.equal(sanitiseToolName("files", "x".repeat(65)).ok, false);
    const { named, refused } = nameTools("files", ["readFile", "readfile", "ok"]);
    assert.deepEqual([...named], [["readFile", "files.readfile"], ["ok", "files.ok"]]);
    assert.match(refused[0]?.why ?? "", /would both be served as files.readfile/);
  });
});

describe("MCP tool risk", () => {
  it("config first (first matching glob), then annotations; never AUTO by default", () => {
    const s = server({ risk: { "read_*": "AUTO", "*_all": "BLOCK" }, compensations: { publish: "unpublish" } });
    assert.equal(mcpToolRisk(s, "read_x", { destructiveHint: true }).risk, "AUTO", "the operator's word beats the annotation");
    assert.equal(mcpToolRisk(s, "delete_all", { readOnlyHint: true }).risk, "BLOCK");
    assert.equal(mcpToolRisk(s, "list", { readOnlyHint: true }).risk, "AUTO");
    assert.equal(mcpToolRisk(s, "drop", { destructiveHint: true }).risk, "CONFIRM");
    assert.equal(mcpToolRisk(s, "anything", undefined).risk, "CONFIRM", "a tool that says nothing fails closed");
    assert.equal(mcpToolRisk(s, "publish", { destructiveHint: false }).risk, "PROPOSE", "reversible through its compensation");
    assert.equal(mcpToolRisk(s, "publish", { destructiveHint: false }, false).risk, "CONFIRM", "the compensation is not served");
    assert.equal(mcpToolRisk(s, "write", { destructiveHint: false }).risk, "CONFIRM", "no rollback, no PROPOSE");
  });
});

describe("allow-list globs", () => {
  it("matches exact names, server.*, globs inside a server, and * for everything; never across the dot", () => {
    assert.ok(toolAllowed(["files.*"], "files.read"));
    assert.ok(!toolAllowed(["files.*"], "files_backup.read"));
    assert.ok(!toolAllowed(["files.*"], "http_check"));
    assert.ok(toolAllowed(["files.read_*"], "files.read_file"));
    assert.ok(!toolAllowed(["files.read_*"], "files.delete_file"));
    assert.ok(toolAllowed(["*"], "files.delete_file"));
    assert.ok(toolAllowed(["http_check"], "http_check"));
    assert.ok(!globMatches("f*", "files.read"));
  });
});

describe("MCP restart backoff", () => {
  it("follows the schedule and holds its last step", () => {
    const schedule = [100, 200, 400];
    assert.deepEqual([0, 1, 2, 3, 10].map((n) => restartDelay(n, schedule)), [100, 200, 400, 400, 400]);
  });
});

describe("broker grants for MCP tools", () => {
  const tier = { model: "m", inputPerM: 1, outputPerM: 2 };
  const skill = { id: "s", name: "s", description: "s", tags: ["s"] };
  const agent = (id: string, layer: string, tools: string[]) => ({ id, name: id, role: "r", layer, defaultTier: "nano", cycleMinutes: 15, dailyCapUsd: 1, tools, skills: [skill] });
  const config = parseFleetConfig(
    stringify({
      fleet: { name: "g", prefix: "g", timeZone: "UTC", dailyCapUsd: 10 },
      tiers: { nano: tier, workhorse: { ...tier, outputPerM: 3 }, capable: { ...tier, outputPerM: 4 }, power: { ...tier, outputPerM: 5 }, premium: { ...tier, outputPerM: 6 } },
      agents: [agent("atlas", "orchestration", ["*"]), agent("scout", "execution", ["files.read_file", "files.wipe", "crm.get_*"]), agent("ship", "execution", ["http_check"])],
      governance: { approvals: { channels: ["console"] } },
      mcpServers: { files: { command: "node", risk: { wipe: "CONFIRM" } }, crm: { url: "http://127.0.0.1:1/mcp" } },
    }),
    "g.yaml",
  );
  const perms = fleetPermissions(config, { http_check: "AUTO" });

  it("an agent gets the subjects its allow list names (exact, or the server's wildcard for a glob), never a tool config rates CONFIRM", () => {
    const scout = perms.get("agent:scout")!.publish.allow;
    assert.ok(scout.includes("g.tool.files.read_file.scout"));
    assert.ok(!scout.includes("g.tool.files.wipe.scout"), "config says CONFIRM: reachable only through _governance");
    assert.ok(scout.includes("g.tool.crm.*.scout"), "a glob inside a server is the server's wildcard at the broker");
    assert.ok(!scout.some((s) => s.startsWith("g.tool.files.*")));
    assert.ok(scout.includes("$JS.API.DIRECT.GET.KV_g-tools.$KV.g-tools.mcp.files.*"), "it reads its servers' listings");
    const ship = perms.get("agent:ship")!.publish.allow;
    assert.ok(!ship.some((s) => s.startsWith("g.tool.files") || s.startsWith("g.tool.crm")));
    const atlas = perms.get("agent:atlas")!.publish.allow;
    assert.ok(atlas.includes("g.tool.files.*.atlas") && atlas.includes("g.tool.crm.*.atlas"));
  });

  it("governance calls every server's tools as _governance; the tool host serves them and writes the listings", () => {
    const governance = perms.get("governance")!.publish.allow;
    assert.ok(governance.includes("g.tool.files.*._governance") && governance.includes("g.tool.crm.*._governance"));
    assert.ok(perms.get("serve:tools")!.subscribe.allow.includes("g.tool.*.*.*"));
    assert.ok(perms.get("tools")!.publish.allow.includes("$KV.g-tools.>"));
    assert.ok(perms.get("agent:scout")!.publish.deny.includes("$KV.g-tools.>"), "agents never write a listing");
  });
});
