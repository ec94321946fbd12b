import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { stringify } from "yaml";
import { parseFleetConfig } from "../../config/index.js";
import { FleetError } from "../../protocol/index.js";

/** `mcpServers:` in the fleet config: each server's shape, and allow lists that name MCP tools. */

function config(mcpServers: unknown, tools: string[] = ["items.*"]) {
  const tier = (model: string, price: number) => ({ model, inputPerM: price, outputPerM: price * 4 });
  const skill = { id: "s", name: "s", description: "s", tags: ["s"] };
  return stringify({
    fleet: { name: "t", timeZone: "UTC", dailyCapUsd: 10 },
    tiers: { nano: tier("n", 0.07), workhorse: tier("w", 0.27), capable: tier("c", 0.1), power: tier("p", 5), premium: tier("x", 15) },
    agents: [
      { id: "atlas", name: "A", role: "r", layer: "orchestration", defaultTier: "power", cycleMinutes: 15, dailyCapUsd: 5, tools: ["*"], skills: [skill] },
      { id: "scout", name: "S", role: "r", layer: "execution", defaultTier: "nano", cycleMinutes: 15, dailyCapUsd: 5, tools, skills: [skill] },
    ],
    mcpServers,
  });
}

function issues(text: string): Map<string, string> {
  try {
    parseFleetConfig(text, "t.yaml");
  } catch (err) {
    assert.ok(err instanceof FleetError && err.code === "CONFIG_INVALID", String(err));
    return new Map((err.details ?? []).map((d) => [d.path, d.message]));
  }
  assert.fail("the config was accepted");
}

describe("mcpServers config", () => {
  it("accepts a stdio server and an HTTP server, with risk overrides, hosts and compensations", () => {
    const parsed = parseFleetConfig(
      config({
        items: { command: "node", args: ["server.js"], env: ["ITEMS_DB"], risk: { "read_*": "AUTO", archive: "PROPOSE" }, compensations: { archive: "unarchive" } },
        crm: { url: "https://crm.example.com/mcp", tokenEnv: "CRM_TOKEN", hosts: ["web1"] },
      }, ["items.read_item", "items.*", "crm.*", "http_check"]),
      "t.yaml",
    );
    assert.deepEqual(parsed.mcpServers["items"]?.risk, { "read_*": "AUTO", archive: "PROPOSE" });
    assert.equal(parsed.mcpServers["items"]?.timeoutSeconds, 30);
    assert.equal(parsed.mcpServers["crm"]?.url, "https://crm.example.com/mcp");
    assert.deepEqual(parsed.agents[1]?.tools, ["items.read_item", "items.*", "crm.*", "http_check"]);
  });

  it("refuses a server that is neither or both kinds, keys of the other kind, a secret's value, a bad risk and a typo", () => {
    const found = issues(
      config({
        none: { args: ["x"] },
        both: { command: "node", url: "http://x/mcp" },
        mixed: { url: "http://x/mcp", env: ["A"] },
        secret: { url: "http://x/mcp", tokenEnv: "sk-live-123" },
        risky: { command: "node", risk: { "*": "MAYBE" } },
        typo: { command: "node", arg: ["x"] },
        Bad: { command: "node" },
      }, []),
    );
    assert.match(found.get("mcpServers.none.command") ?? "", /needs "command" \(stdio\) or "url"/);
    assert.match(found.get("mcpServers.both.url") ?? "", /not both/);
    assert.match(found.get("mcpServers.mixed.env") ?? "", /stdio server/);
    assert.match(found.get("mcpServers.secret.tokenEnv") ?? "", /NAME of an environment variable/);
    assert.ok(found.has("mcpServers.risky.risk.*"), [...found.keys()].join(", "));
    assert.match(found.get("mcpServers.typo.arg") ?? "", /did you mean "args"/);
    assert.ok([...found.keys()].some((k) => k.startsWith("mcpServers.Bad")), [...found.keys()].join(", "));
  });

  it("refuses an allow list naming a server that is not configured, with a did-you-mean", () => {
    const found = issues(config({ items: { command: "node" } }, ["itemz.read_item", "nope.*"]));
    assert.match(found.get("agents[1].tools[0]") ?? "", /no MCP server "itemz".*did you mean "items.read_item"/);
    assert.match(found.get("agents[1].tools[1]") ?? "", /no MCP server "nope" in mcpServers \(servers: items\)/);
  });
});
