import type { FleetConfig } from "../config/index.js";
import { basename } from "node:path";
import { fleetToolRisks, loadFleetTools, serverOf, toolAllowed, toolSource } from "../governance/index.js";
import { decode, discoverServices, ToolListing, type MicroStats, type RiskLevel } from "../protocol/index.js";
import { configPath, inspect, loadConfig, prefixOf, type CliOptions } from "./options.js";
import { printTable } from "./status.js";

/** One line of `fleet tools`. */
export interface ToolRow {
  name: string;
  /** "built-in", "module:<name>", "mcp:<server>" */
  source: string;
  /** undefined: an MCP server no tool host has listed yet, so its tools and their risks are not known */
  risk: RiskLevel | undefined;
  /** the tool hosts serving it right now (micro discovery); "<host> (down)" while its MCP server restarts */
  hosts: string[];
  /** the agents whose allow list names it */
  agents: string[];
  description: string;
}

/**
 * Every tool of the fleet, whatever its source: the built-ins (and modules) the broker's permissions are written from,
 * what the tool hosts list in KV `tools` (MCP servers' tools, with the risk each host serves them at), and the servers
 * configured that no host has listed yet. The hosts serving a tool come from NATS micro discovery, the one answer that
 * is about now: a listing outlives a host that crashed.
 */
export function toolInventory(
  config: FleetConfig,
  builtIns: Readonly<Record<string, RiskLevel>>,
  listings: readonly ToolListing[],
  services: readonly MicroStats[],
  prefix: string,
  sourceOf: (name: string) => string = () => "built-in",
): ToolRow[] {
  const rows = new Map<string, ToolRow>();
  const agentsOf = (name: string) => config.agents.filter((a) => toolAllowed(a.tools, name)).map((a) => a.id).sort();
  const row = (name: string, source: string, risk: RiskLevel | undefined, description = ""): ToolRow => {
    const existing = rows.get(name);
    if (existing) return existing;
    const created: ToolRow = { name, source, risk, hosts: [], agents: agentsOf(name), description };
    rows.set(name, created);
    return created;
  };
  for (const [name, risk] of Object.entries(builtIns)) row(name, sourceOf(name), risk);
  // the latest listing of a tool decides its description and risk
  for (const listing of [...listings].sort((a, b) => b.listedAt - a.listedAt)) {
    for (const tool of listing.tools) {
      const r = row(tool.name, listing.source, tool.risk, tool.description);
      if (!r.description) r.description = tool.description;
    }
  }
  const down = new Set(listings.filter((l) => !l.available).map((l) => `${l.host}\u0000${l.source}`));
  const toolPrefix = `${prefix}.tool.`;
  for (const service of services) {
    if (service.name !== "fleet-tools") continue;
    const host = service.metadata?.["host"] ?? service.id;
    for (const endpoint of service.endpoints ?? []) {
      if (!endpoint.subject.startsWith(toolPrefix) || !endpoint.subject.endsWith(".*")) continue;
      const name = endpoint.subject.slice(toolPrefix.length, -2);
      const r = rows.get(name) ?? row(name, serverOf(name) ? `mcp:${serverOf(name)}` : "built-in", undefined);
      const label = down.has(`${host}\u0000${r.source}`) ? `${host} (down)` : host;
      if (!r.hosts.includes(label)) r.hosts.push(label);
    }
  }
  // a configured server no host has listed: its tools are unknown, the agents that may use them are not
  for (const server of Object.keys(config.mcpServers)) {
    if ([...rows.values()].some((r) => r.source === `mcp:${server}`)) continue;
    row(`${server}.*`, `mcp:${server}`, undefined, "not listed by any tool host yet");
  }
  return [...rows.values()].sort((a, b) => a.source.localeCompare(b.source) || a.name.localeCompare(b.name));
}

/** `fleet tools [--json]`: every tool, its source, risk, the hosts serving it now and the agents allowed to call it. */
export async function tools(options: CliOptions, env: NodeJS.ProcessEnv): Promise<number> {
  const config = loadConfig(options);
  const prefix = prefixOf(options, config);
  const { nc, names, kv } = await inspect({ ...options, prefix }, env);
  try {
    const listings: ToolListing[] = [];
    for await (const key of await kv.tools.keys()) {
      const entry = await kv.tools.get(key);
      if (entry?.operation !== "PUT") continue;
      const decoded = decode(ToolListing, entry.value, { codec: config.fleet.codec });
      if (decoded.ok) listings.push(decoded.value);
    }
    const services = await discoverServices(nc, 500).catch(() => [] as MicroStats[]);
    const sources = await loadFleetTools(config, configPath(options));
    const rows = toolInventory(config, fleetToolRisks(sources), listings, services, names.prefix, (name) => {
      const source = toolSource(sources, name);
      return source === "built-in" || source.startsWith("peer:") ? source : `module:${basename(source)}`;
    });
    if (options.json) {
      console.log(JSON.stringify(rows, null, 2));
      return 0;
    }
    printTable(
      ["TOOL", "SOURCE", "RISK", "HOSTS", "AGENTS"],
      rows.map((r) => [r.name, r.source, r.risk ?? "?", r.hosts.join(", ") || "-", r.agents.join(", ") || "-"]),
    );
    return 0;
  } finally {
    await nc.close();
  }
}
