import { dirname } from "node:path";
import { closest, type FleetConfig } from "../config/index.js";
import { FleetError, formatPath, type FieldIssue, type RiskLevel } from "../protocol/index.js";
import { peerToolRisks, peerTools, type PeerClients } from "./peers/index.js";
import { loadToolModules, type LoadedToolModule } from "./tool-modules.js";
import type { ToolDefinition } from "./tool.js";
import { BUSINESS_TOOL_RISKS, referenceToolRisks, referenceTools, type ReferenceToolDeps } from "./tools/index.js";

/*
 * The fleet's tool catalogue, whatever its sources: the built-in reference tools and the config's tool modules (MCP
 * servers join here too). `loadFleetTools` is what every process calls at start: it loads the modules and refuses a
 * config that names a tool no source provides, with the path of the name and the tool it probably meant.
 */

export interface FleetToolSources {
  modules: readonly LoadedToolModule[];
  /** the peers' granted skills (`<peer>.<skill>`) and their risks, from config */
  peers?: Readonly<Record<string, RiskLevel>>;
}

export const NO_TOOL_MODULES: FleetToolSources = { modules: [] };

/** Loads the config's tool modules and checks every tool name the config uses against the whole catalogue. */
export async function loadFleetTools(config: FleetConfig, configFile: string): Promise<FleetToolSources> {
  const modules = await loadToolModules(config.toolModules, dirname(configFile), configFile);
  const sources = { modules, peers: peerToolRisks(config) };
  const builtIn = referenceToolRisks();
  const clashes: FieldIssue[] = [];
  modules.forEach((m, i) => {
    for (const tool of m.tools) if (tool.name in builtIn) clashes.push({ path: `toolModules[${i}]`, message: `${m.file}: tool "${tool.name}" has the name of a built-in tool` });
  });
  if (clashes.length > 0) throw new FleetError("CONFIG_INVALID", clashes.map((c) => `${configFile}: ${c.path}: ${c.message}`).join("\n"), { details: clashes });
  checkToolNames(config, Object.keys(fleetToolRisks(sources)), configFile);
  return sources;
}

/** Every tool's risk level: what the broker's permissions and the agents' own checks are built from. */
export function fleetToolRisks(sources: FleetToolSources): Record<string, RiskLevel> {
  return { ...referenceToolRisks(), ...Object.fromEntries(sources.modules.flatMap((m) => m.tools.map((t) => [t.name, t.risk]))), ...sources.peers };
}

/**
 * The whole catalogue: the reference tools, the modules' tools and the peers' granted skills. `peers` are the clients a
 * tool host calls them with; a process that only describes the tools has none (their handlers refuse to run there).
 */
export function fleetTools(deps: ReferenceToolDeps & { peers?: PeerClients | undefined }, sources: FleetToolSources): ToolDefinition[] {
  return [...referenceTools(deps), ...sources.modules.flatMap((m) => m.tools), ...peerTools(deps.config, deps.peers ?? { get: () => undefined })];
}

/** Which module provides a tool (for listings); built-in when none does. */
export function toolSource(sources: FleetToolSources, name: string): string {
  if (sources.peers && name in sources.peers) return `peer:${name.slice(0, name.indexOf("."))}`;
  return sources.modules.find((m) => m.tools.some((t) => t.name === name))?.path ?? "built-in";
}

/**
 * Refuses tool names no source provides: in agents' allow lists, pipelines' tool steps and Sentinel's per-tool rate
 * limits, each reported at its path with "did you mean". A name with a dot is an MCP server's tool (`server.tool`,
 * `server.*`): those are checked where the servers' tool lists are known, not here. An agent allowed a business tool in a
 * fleet without `business.url` is refused too: the tool exists, but could only ever fail.
 */
export function checkToolNames(config: FleetConfig, known: readonly string[], source: string): void {
  const issues: FieldIssue[] = [];
  const check = (name: string, path: PropertyKey[]) => {
    if (name === "*" || name.includes(".") || known.includes(name)) return;
    const guess = closest(name, known);
    issues.push({ path: formatPath(path), message: `no tool "${name}"${guess ? ` (did you mean "${guess}"?)` : " in the catalogue (built-in tools and toolModules)"}` });
  };
  config.agents.forEach((agent, i) => {
    agent.tools.forEach((name, k) => check(name, ["agents", i, "tools", k]));
    if (!config.business) {
      const business = agent.tools.filter((t) => t in BUSINESS_TOOL_RISKS);
      if (business.length > 0) issues.push({ path: formatPath(["agents", i, "tools"]), message: `${business.join(", ")} call the business API: set business.url (the stand-in: \`fleet run standin\`)` });
    }
  });
  for (const [id, pipeline] of Object.entries(config.pipelines)) {
    pipeline.steps.forEach((step, k) => {
      if ("tool" in step) check(step.tool, ["pipelines", id, "steps", k, "tool"]);
    });
  }
  for (const name of Object.keys(config.governance.sentinel.rateLimits.perTool)) check(name, ["governance", "sentinel", "rateLimits", "perTool", name]);
  if (issues.length > 0) throw new FleetError("CONFIG_INVALID", issues.map((i) => `${source}: ${i.path}: ${i.message}`).join("\n"), { details: issues });
}
