import type { Logger } from "pino";
import type { z } from "zod";
import type { RiskLevel } from "../protocol/index.js";

/**
 * A tool: what an agent may do in the world beyond thinking. Its risk level decides how it runs (directly, through a
 * proposal, after a human, never); its input schema is checked before the handler sees anything; a reversible tool
 * has a rollback handler that undoes the effect of one earlier call, given that call's input and output.
 */
export interface ToolContext {
  signal: AbortSignal;
  log: Logger;
  /** the agent the call is made for, and the proposal it runs under (PROPOSE, CONFIRM) */
  agentId: string;
  proposalId?: string | undefined;
  /** the idempotency key of the call: a tool that sends something passes it on as the message id */
  idempotencyKey?: string | undefined;
  now: () => number;
}

export interface ToolDefinition<Input extends z.ZodType = z.ZodType, Output = unknown> {
  name: string;
  description: string;
  risk: RiskLevel;
  input: Input;
  handler: (input: z.infer<Input>, ctx: ToolContext) => Promise<Output>;
  /** undoes one earlier call (PROPOSE tools have one: the rollback window is what makes them PROPOSE and not CONFIRM) */
  rollback?: (input: z.infer<Input>, output: Output, ctx: ToolContext) => Promise<unknown>;
  /** host names whose tool hosts serve this tool; any host when omitted */
  hosts?: readonly string[];
  /** input fields that may carry personal data by design (an email's recipient); Sentinel's PII rule skips them */
  personalDataFields?: readonly string[];
  /** input fields that name a target (a URL, a host, a recipient): Sentinel checks them against the allow list */
  targetFields?: readonly string[];
  /**
   * A tool whose effect is a message to people (a post, an email) says where it goes and which input fields are its text,
   * so Sentinel's brand-safety rule can read it: the channel by name or from an input field, every text field for words,
   * claims and links, and the body for length and the required disclaimer. MCP and module tools may declare it too.
   */
  message?: OutgoingMessageFields;
  /** what one call costs in USD (deterministic tools: 0) */
  costUsd?: number;
  /** what this call cost, read from its output (a peer that reports its price); `costUsd` when it says nothing */
  costOf?: (output: Output) => number | undefined;
  /**
   * how long one call may run on the tool host, in place of the host's own timeout (30 s): a peer's skill whose task
   * takes minutes declares it in config (peers.<name>.timeoutSeconds, or the skill's)
   */
  timeoutMs?: number;
  /** where it comes from: "built-in" (the default), "module:<name>", "mcp:<server>" */
  source?: string;
  /**
   * The input's JSON schema as its source gave it (an MCP server's inputSchema), told to models verbatim; a tool defined
   * in TypeScript leaves it out and its zod `input` is rendered instead.
   */
  inputSchema?: unknown;
}

export interface OutgoingMessageFields {
  /** the channel's name, or the input field that holds it */
  channel: string | { field: string };
  /** input fields holding the message's text, in reading order (an email: subject, body) */
  textFields: readonly string[];
  /** the one of them that is the message's body */
  bodyField: string;
}

/** Keeps the input type of each tool while the catalogue holds them side by side. */
export function defineTool<Input extends z.ZodType, Output>(tool: ToolDefinition<Input, Output>): ToolDefinition {
  return tool as unknown as ToolDefinition;
}
