import type { McpServerConfig } from "../../config/index.js";
import type { RiskLevel } from "../../protocol/index.js";
import { globMatches } from "../tool-globs.js";

/** What an MCP server says about a tool (its `annotations`): hints, not guarantees, and never a reason to trust more. */
export interface McpAnnotations {
  readOnlyHint?: boolean | undefined;
  destructiveHint?: boolean | undefined;
  idempotentHint?: boolean | undefined;
}

export interface McpRisk {
  risk: RiskLevel;
  /** why, for the log and `fleet tools` */
  because: string;
}

/**
 * The risk an MCP tool runs at. The operator's word first: `risk` in the server's config, per tool or glob, first match
 * in the order written. Then the server's annotations: read-only → AUTO; destructive → CONFIRM; otherwise (a write that
 * is not said to destroy) PROPOSE when the config names a compensating tool that undoes it, which the rollback window
 * needs, else CONFIRM. Never AUTO by default: a tool that says nothing is CONFIRM, so an unknown tool fails closed.
 */
export function mcpToolRisk(server: McpServerConfig, token: string, annotations: McpAnnotations | undefined, compensated = server.compensations[token] !== undefined): McpRisk {
  for (const [glob, risk] of Object.entries(server.risk)) {
    if (globMatches(glob, token)) return { risk, because: `config risk "${glob}"` };
  }
  // MCP's defaults: readOnlyHint false, destructiveHint true (a tool that writes is assumed destructive unless it says not)
  if (annotations?.readOnlyHint === true) return { risk: "AUTO", because: "annotated read-only" };
  if (annotations?.destructiveHint !== false) return { risk: "CONFIRM", because: annotations?.destructiveHint === true ? "annotated destructive" : "not annotated read-only or non-destructive" };
  if (compensated) return { risk: "PROPOSE", because: `non-destructive, undone by ${server.compensations[token]}` };
  return { risk: "CONFIRM", because: "non-destructive but no compensating tool is configured to roll it back" };
}

/**
 * The risk an allow list's MCP entry is known to have before any server is listed (config only): what the broker's
 * grants can rely on. Undefined when only the server's annotations will tell.
 */
export function configuredRisk(server: McpServerConfig, token: string): RiskLevel | undefined {
  for (const [glob, risk] of Object.entries(server.risk)) if (globMatches(glob, token)) return risk;
  return undefined;
}
