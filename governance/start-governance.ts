import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { Tracer } from "@opentelemetry/api";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import type { FleetConfig } from "../config/index.js";
import { electionSafeJetStream, FleetError, openBuckets, type FleetNames, type Clock } from "../protocol/index.js";
import { fleetBudgetLedger } from "../router/index.js";
import { GovernanceService } from "./governance-service.js";
import { type ProposalPolicy } from "./proposal-machine.js";
import { configuredRisk } from "./mcp/index.js";
import { ToolDirectory } from "./tool-directory.js";
import { serverOf, toolAllowed } from "./tool-globs.js";
import type { ToolDefinition } from "./tool.js";

/** Whether an allow-list entry naming an MCP server's tools may reach a CONFIRM tool (config does not rate it lower). */
function mayBeConfirm(config: FleetConfig, entry: string): boolean {
  const server = serverOf(entry);
  const configured = server === undefined ? undefined : config.mcpServers[server];
  if (!configured) return false;
  const risk = configuredRisk(configured, entry.slice(server!.length + 1));
  return risk === undefined || risk === "CONFIRM";
}

/** The proposal windows and limits from the fleet config. */
export function policyOf(config: FleetConfig): ProposalPolicy {
  const g = config.governance;
  const hour = 3600_000;
  return {
    rollbackMs: g.rollbackMinutes * 60_000,
    maxAttempts: g.maxExecutionAttempts,
    retryMs: g.retrySeconds.map((s) => s * 1000),
    reminderMs: g.approvals.reminderHours * hour,
    escalationMs: g.approvals.escalationHours * hour,
    expiryMs: g.approvals.expiryHours * hour,
  };
}

/**
 * Refuses a fleet in which an agent may propose a CONFIRM tool while no approval channel is configured: its proposals
 * would wait 24 hours for a person nobody asked. There is no default channel on purpose.
 */
export function checkGovernanceConfig(config: FleetConfig, tools: readonly Pick<ToolDefinition, "name" | "risk">[]): void {
  const confirm = tools.filter((t) => t.risk === "CONFIRM").map((t) => t.name);
  const details = [];
  const { approvals } = config.governance;
  if (!(approvals.reminderHours < approvals.escalationHours && approvals.escalationHours < approvals.expiryHours)) {
    details.push({ path: "governance.approvals", message: "reminderHours < escalationHours < expiryHours must hold" });
  }
  if (approvals.channels.length === 0) {
    for (const agent of config.agents) {
      const reachable = confirm.filter((t) => toolAllowed(agent.tools, t));
      // an MCP tool the config does not rate is CONFIRM unless its server says it only reads: assume the worst
      const mcp = agent.tools.filter((t) => (t === "*" ? Object.keys(config.mcpServers).length > 0 : mayBeConfirm(config, t)));
      if (mcp.length > 0) reachable.push(...mcp.map((t) => (t === "*" ? "MCP servers' tools" : t)));
      if (reachable.length > 0) {
        details.push({ path: "governance.approvals.channels", message: `agent "${agent.id}" may propose CONFIRM tools (${reachable.join(", ")}): name the channels approval requests go to` });
        break;
      }
    }
  }
  if (details.length > 0) throw new FleetError("CONFIG_INVALID", details.map((d) => `${d.path}: ${d.message}`).join("; "), { details });
}

export interface StartGovernanceOptions {
  nc: NatsConnection;
  /** where `fleet rollback` is served (replies only); default `nc` */
  serveNc?: NatsConnection;
  names: FleetNames;
  config: FleetConfig;
  tools: readonly ToolDefinition[];
  log: Logger;
  clock?: Clock;
  tickMs?: number;
  toolTimeoutMs?: number;
  /** each proposal's execution an `execute_tool` span (telemetry on) */
  tracer?: Tracer | undefined;
}

/** Wires the governance process: buckets, the budget view Sentinel's headroom rule reads, and the service itself. */
export async function startGovernance(o: StartGovernanceOptions): Promise<GovernanceService> {
  checkGovernanceConfig(o.config, o.tools);
  const kv = await openBuckets(o.nc, o.names);
  const { config } = o;
  const ledger = fleetBudgetLedger(config, kv.budgets, o.clock);
  // MCP servers' tools are known once a tool host lists them: Sentinel judges their proposals on those listings
  const liveTools = Object.keys(config.mcpServers).length > 0 ? new ToolDirectory(kv.tools, config.fleet.codec, ["mcp.>"], o.log.child({ component: "tool-directory" })) : undefined;
  await liveTools?.start();
  const service = new GovernanceService({
    nc: o.nc,
    serveNc: o.serveNc,
    js: electionSafeJetStream(jetstream(o.nc)),
    jsm: await jetstreamManager(o.nc),
    names: o.names,
    codec: config.fleet.codec,
    config,
    proposalsKv: kv.proposals,
    tools: o.tools,
    liveTools,
    policy: policyOf(config),
    // what is reserved counts as spent: a proposal must not pass on money already promised to calls in flight
    budgetOf: async (agentId) => {
      const { agent } = await ledger.view(agentId);
      return { spentUsd: agent.spentUsd + agent.reservedUsd, capUsd: agent.capUsd };
    },
    log: o.log,
    ...(o.clock ? { clock: o.clock } : {}),
    ...(o.tickMs !== undefined ? { tickMs: o.tickMs } : {}),
    ...(o.toolTimeoutMs !== undefined ? { toolTimeoutMs: o.toolTimeoutMs } : {}),
    tracer: o.tracer,
  });
  await service.start();
  return service;
}
