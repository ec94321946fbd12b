import { AjvJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/ajv";
import type { Tool } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import type { McpServerConfig } from "../../config/index.js";
import { FleetError } from "../../protocol/index.js";
import type { ToolContext, ToolDefinition } from "../tool.js";
import { mcpToolRisk, type McpRisk } from "./mcp-risk.js";
import { globMatches } from "../tool-globs.js";

/** How a tool host reaches one MCP server's tools (mcp-connection.ts): the raw result, or a typed error. */
export interface McpCaller {
  call(name: string, args: unknown, options: McpCallOptions): Promise<unknown>;
}

export interface McpCallOptions {
  signal: AbortSignal;
  timeoutMs: number;
  /** passed to the server in `_meta`, for a server that deduplicates effects itself */
  idempotencyKey?: string | undefined;
  /**
   * Whether asking again after the call was lost on the way (the server died, no answer in time) is safe: the tool is
   * read-only or idempotent. Decides between TOOL_SOURCE_UNAVAILABLE (retryable) and TOOL_OUTCOME_UNKNOWN.
   */
  repeatable: boolean;
}

/** The part of a tools/call result the fleet reads; the rest (`_meta`, unknown keys) is passed over. */
const ContentPart = z.looseObject({ type: z.string() }).superRefine((part, ctx) => {
  if (part.type === "text" && typeof part["text"] !== "string") ctx.addIssue({ code: "custom", message: "a text part without its text" });
});
const McpCallResult = z.looseObject({
  content: z.array(ContentPart),
  structuredContent: z.record(z.string(), z.unknown()).optional(),
  isError: z.boolean().optional(),
});

/** The JSON-schema validator the SDK ships (ajv): the same checks the server's schema promises, before the call. */
const validators = new AjvJsonSchemaValidator();

export interface McpToolBuild {
  server: string;
  config: McpServerConfig;
  /** the MCP tool as listed */
  tool: Tool;
  /** its fleet name (`<server>.<token>`) and token */
  fleetName: string;
  token: string;
  caller: McpCaller;
  /** the compensating tool's MCP name, when config names one and the server lists it */
  compensation?: string | undefined;
}

/**
 * One MCP tool as a fleet tool: the server's input schema (checked with ajv before the call, by the tool host and by
 * Sentinel), the risk (mcp-risk.ts), and a handler that calls the server and turns its answer into the tool's output.
 * A result that is not a tools/call result, or whose structured content breaks the tool's own output schema, is
 * TOOL_RESULT_INVALID; a result flagged `isError` is TOOL_FAILED with the server's words.
 */
export function mcpToolDefinition(b: McpToolBuild): { definition: ToolDefinition; risk: McpRisk } {
  const validate = validators.getValidator(b.tool.inputSchema);
  const validateOutput = b.tool.outputSchema ? validators.getValidator(b.tool.outputSchema) : undefined;
  const input = z.unknown().superRefine((value, ctx) => {
    const checked = validate(value);
    if (!checked.valid) ctx.addIssue({ code: "custom", message: `does not match the server's input schema: ${checked.errorMessage}` });
  });
  const annotations = b.tool.annotations;
  const risk = mcpToolRisk(b.config, b.token, annotations, b.compensation !== undefined);
  const repeatable = annotations?.readOnlyHint === true || annotations?.idempotentHint === true;
  const timeoutMs = b.config.timeoutSeconds * 1000;

  const invoke = async (name: string, args: unknown, ctx: ToolContext, canRepeat: boolean): Promise<unknown> => {
    const raw = await b.caller.call(name, args, { signal: ctx.signal, timeoutMs, idempotencyKey: ctx.idempotencyKey, repeatable: canRepeat });
    return resultOf(b.fleetName, raw, validateOutput);
  };

  const definition: ToolDefinition = {
    name: b.fleetName,
    description: b.tool.description ?? b.tool.title ?? `${b.tool.name} (MCP server ${b.server})`,
    risk: risk.risk,
    input,
    inputSchema: b.tool.inputSchema,
    source: `mcp:${b.server}`,
    handler: (args, ctx) => invoke(b.tool.name, args, ctx, repeatable),
    // a compensating tool undoes the call given the same input (config `compensations`: create_x → delete_x)
    ...(b.compensation ? { rollback: (args: unknown, _output: unknown, ctx: ToolContext) => invoke(b.compensation!, args, ctx, false) } : {}),
    targetFields: Object.entries(b.config.targetFields).flatMap(([glob, fields]) => (globMatches(glob, b.token) ? fields : [])),
    costUsd: 0,
  };
  return { definition, risk };
}

/** The output an agent sees: the structured content when there is one, else the text, else the content parts. */
function resultOf(tool: string, raw: unknown, validateOutput: ((value: unknown) => { valid: boolean; errorMessage?: string | undefined }) | undefined): unknown {
  const parsed = McpCallResult.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new FleetError("TOOL_RESULT_INVALID", `${tool} answered with something that is not a tool result (${issue ? `${issue.path.join(".") || "(root)"}: ${issue.message}` : "invalid"})`);
  }
  const result = parsed.data;
  const texts = result.content.filter((p) => p.type === "text").map((p) => String(p["text"]));
  if (result.isError === true) throw new FleetError("TOOL_FAILED", `${tool} failed: ${texts.join("\n").slice(0, 2_000) || "the server gave no reason"}`);
  if (validateOutput) {
    if (result.structuredContent === undefined) throw new FleetError("TOOL_RESULT_INVALID", `${tool} declares an output schema but answered without structured content`);
    const checked = validateOutput(result.structuredContent);
    if (!checked.valid) throw new FleetError("TOOL_RESULT_INVALID", `${tool} answered against its own output schema: ${checked.errorMessage ?? "invalid"}`);
  }
  if (result.structuredContent !== undefined) return result.structuredContent;
  if (texts.length === result.content.length) return { text: texts.join("\n") };
  return { content: result.content };
}
