import type { z } from "zod";
import type { RiskLevel } from "../protocol/index.js";
import type { ToolContext } from "./tool.js";

/*
 * The public shape of a tool written outside this repository, in a tool module (`toolModules:` in the fleet config).
 * Stable on purpose: a module written against it keeps working while the runtime's own ToolDefinition changes. A module
 * imports `defineTool` from "natsfleet/tools" (or builds the plain object itself: the loader checks every field either
 * way) and exports the tools as its default export or as `tools`.
 */

export type { ToolContext } from "./tool.js";
export type { RiskLevel } from "../protocol/index.js";

export interface ModuleTool<Input extends z.ZodType = z.ZodType, Output = unknown> {
  /** lowercase letters, digits and "_": it becomes a NATS subject token and an allow-list entry */
  name: string;
  /** what the model is told the tool does */
  description: string;
  /** AUTO (reads), AUTO+ (internal writes), PROPOSE (external, reversible: needs `rollback`), CONFIRM (a person approves), BLOCK */
  risk: RiskLevel;
  /** the input's zod (v4) schema: checked before `run` sees anything, and what the model is shown */
  input: Input;
  run: (input: z.infer<Input>, ctx: ToolContext) => Promise<Output>;
  /** undoes one earlier call, given its input and recorded output (required for PROPOSE) */
  rollback?: (input: z.infer<Input>, output: Output, ctx: ToolContext) => Promise<unknown>;
  /** input fields that name a target (a URL, a host, an email address): each must be on the fleet's target allow list */
  targets?: readonly string[];
  /** input fields that may carry personal data by design; Sentinel's personal-data rule skips them */
  personalData?: readonly string[];
  /** the tool hosts (host names) that serve it; every host when omitted */
  hosts?: readonly string[];
  /** what one call costs in USD (default 0) */
  costUsd?: number;
}

/** Keeps the input's type while tools of different inputs sit in one exported array. */
export function defineTool<Input extends z.ZodType, Output>(tool: ModuleTool<Input, Output>): ModuleTool {
  return tool as unknown as ModuleTool;
}
