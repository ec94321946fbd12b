import type { Tool } from "@modelcontextprotocol/sdk/types.js";
import type { Logger } from "pino";
import type { FleetConfig, McpServerConfig } from "../../config/index.js";
import type { ToolHost } from "../tool-host.js";
import type { ToolDefinition } from "../tool.js";
import { McpConnection } from "./mcp-connection.js";
import { nameTools } from "./mcp-names.js";
import { mcpToolDefinition } from "./mcp-tool.js";

export interface McpToolSourcesOptions {
  host: ToolHost;
  /** this tool host's name: it connects to the servers whose `hosts` include it, or name none */
  hostName: string;
  config: FleetConfig;
  env: NodeJS.ProcessEnv;
  log: Logger;
  restartMs?: readonly number[];
  /** how long start() waits for the servers' first listing before the host serves without the late ones */
  startWaitMs?: number;
}

/**
 * The MCP servers a tool host serves tools from (`mcpServers:`): one connection each, whose listings become the host's
 * tools `<server>.<tool>` (served, and listed in KV `tools`) and whose deaths and restarts mark them unavailable and back.
 */
export class McpToolSources {
  private readonly connections = new Map<string, McpConnection>();

  constructor(private readonly o: McpToolSourcesOptions) {
    for (const [server, config] of Object.entries(o.config.mcpServers)) {
      if (config.hosts && !config.hosts.includes(o.hostName)) continue;
      const log = o.log.child({ component: "mcp", server });
      this.connections.set(
        server,
        new McpConnection({
          server,
          config,
          env: o.env,
          log,
          ...(o.restartMs ? { restartMs: o.restartMs } : {}),
          onTools: (tools) => this.serve(server, config, tools, log),
          onAvailability: (available) => o.host.sourceAvailable(`mcp:${server}`, available),
        }),
      );
    }
  }

  /** The servers this host connects to. */
  get servers(): string[] {
    return [...this.connections.keys()];
  }

  connection(server: string): McpConnection | undefined {
    return this.connections.get(server);
  }

  /** Connects to every server; one that cannot be reached yet is retried in the background. */
  async start(): Promise<void> {
    const first = Promise.allSettled([...this.connections.values()].map((c) => c.start()));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([first, new Promise((resolve) => (timer = setTimeout(resolve, this.o.startWaitMs ?? 15_000)))]);
    clearTimeout(timer);
  }

  async stop(): Promise<void> {
    await Promise.allSettled([...this.connections.values()].map((c) => c.stop()));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** A listing of one server becomes what the host serves from it; tools that cannot be served are logged and left out. */
  private async serve(server: string, config: McpServerConfig, tools: Tool[], log: Logger): Promise<void> {
    const connection = this.connections.get(server);
    if (!connection) return;
    const { named, refused } = nameTools(server, tools.map((t) => t.name));
    const byToken = new Map([...named].map(([mcpName, fleetName]) => [fleetName.slice(server.length + 1), mcpName]));
    const definitions: ToolDefinition[] = [];
    for (const tool of tools) {
      const fleetName = named.get(tool.name);
      if (!fleetName) continue;
      const token = fleetName.slice(server.length + 1);
      const undo = config.compensations[token];
      const compensation = undo === undefined ? undefined : byToken.get(undo);
      if (undo !== undefined && compensation === undefined) log.warn({ tool: fleetName, compensation: undo }, "the configured compensating tool is not listed by the server; no rollback");
      try {
        const { definition, risk } = mcpToolDefinition({ server, config, tool, fleetName, token, caller: connection, compensation });
        if (definition.risk === "PROPOSE" && !definition.rollback) {
          refused.push({ name: tool.name, why: "configured PROPOSE, but no compensating tool undoes it (compensations)" });
          continue;
        }
        log.debug({ tool: fleetName, risk: risk.risk, because: risk.because }, "MCP tool");
        definitions.push(definition);
      } catch (err) {
        refused.push({ name: tool.name, why: `its input schema does not compile (${err instanceof Error ? err.message : String(err)})` });
      }
    }
    for (const r of refused) log.warn({ tool: r.name, why: r.why }, "MCP tool not served");
    const { added, removed } = this.o.host.serveSource(`mcp:${server}`, definitions);
    if (added.length > 0 || removed.length > 0) log.info({ added, removed }, "MCP tools served");
    await this.o.host.publishSource(`mcp:${server}`);
  }
}
