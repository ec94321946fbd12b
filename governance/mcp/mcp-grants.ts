import type { FleetConfig } from "../../config/index.js";
import type { FleetNames } from "../../protocol/index.js";
import { serverOf } from "../tool-globs.js";
import { configuredRisk } from "./mcp-risk.js";

/*
 * The broker's view of MCP tools. The permissions are written before any MCP server is listed (`fleet up`, `fleet creds`
 * run before a tool host connects), so the risk map built-ins are granted from cannot rate MCP tools. The choice:
 *
 * - An agent is granted the MCP subjects its allow list names: `files.read_file` exactly, `files.*` and any glob inside
 *   a server (`files.read_*`, which a subject cannot express) as the server's wildcard `<prefix>.tool.files.*.<agent>`,
 *   `*` (the orchestrator) as every configured server's wildcard. So the broker enforces the allow list by server (by
 *   tool for exact entries), and never lets an agent reach a server it was not given.
 * - The risk is enforced where it is known: the tool host refuses an agent's direct call of a PROPOSE or CONFIRM tool
 *   (PROPOSAL_REQUIRED, audited) and runs it only for governance's executing proposal; Sentinel judges the proposal on
 *   the listed risk. Where config alone rates an exact entry PROPOSE, CONFIRM or BLOCK, the agent is not granted it at
 *   all: such a tool is reachable only through `_governance`.
 * - Governance may call every configured server's tools as `_governance`; the tool host holds each call to the proposal
 *   executing it, as it does for built-ins.
 */

/** The tool subjects an agent may publish on for MCP tools, from its allow list. */
export function mcpAgentSubjects(config: FleetConfig, names: FleetNames, agentId: string, allowList: readonly string[]): string[] {
  const out = new Set<string>();
  for (const entry of allowList) {
    if (entry === "*") {
      for (const server of Object.keys(config.mcpServers)) out.add(names.tool(`${server}.*`, agentId));
      continue;
    }
    const server = serverOf(entry);
    const configured = server === undefined ? undefined : config.mcpServers[server];
    if (server === undefined || !configured) continue;
    const tool = entry.slice(server.length + 1);
    if (tool.includes("*")) {
      out.add(names.tool(`${server}.*`, agentId));
      continue;
    }
    const risk = configuredRisk(configured, tool);
    if (risk === undefined || risk === "AUTO" || risk === "AUTO+") out.add(names.tool(entry, agentId));
  }
  return [...out].sort();
}

/** The KV `tools` keys an agent reads: the listings of the servers its allow list reaches (descriptions and risks). */
export function mcpListingFilters(config: FleetConfig, allowList: readonly string[]): string[] {
  const servers = new Set<string>();
  for (const entry of allowList) {
    if (entry === "*") Object.keys(config.mcpServers).forEach((s) => servers.add(s));
    const server = serverOf(entry);
    if (server !== undefined && config.mcpServers[server]) servers.add(server);
  }
  return [...servers].sort().map((s) => `mcp.${s}.*`);
}
