import type { StepToolResult, StepTools } from "../actors/index.js";
import { createHash } from "node:crypto";
import type { AgentTools, ToolCatalogue, ToolDefinition } from "../governance/index.js";
import { FleetError, needsProposal, type ModelToolCall, type RiskLevel, type ToolDescription } from "../protocol/index.js";

export interface GovernedStepToolsOptions {
  /** the agent's hands: its allow list, the risk levels, direct calls and proposals */
  tools: AgentTools;
  /** where the built-in tools' descriptions and input schemas come from */
  catalogue: ToolCatalogue;
  /** tools that appear at runtime (MCP servers'), as the tool hosts list them; offered as they come and go */
  live?: { list(): ToolDefinition[]; get(name: string): ToolDefinition | undefined } | undefined;
  /** the longest tool message; a longer output is cut, so a chatty tool cannot blow the step's context or the NATS payload */
  maxContentChars?: number;
}

const DEFAULT_MAX_CONTENT_CHARS = 4_000;

/** Governance saying no (as opposed to a tool or the transport failing): the model is told, and must do without. */
const REFUSALS: ReadonlySet<string> = new Set(["TOOL_NOT_FOUND", "TOOL_NOT_ALLOWED", "TOOL_BLOCKED", "PROPOSAL_REQUIRED", "PERMISSION_DENIED", "MESSAGE_INVALID", "MESSAGE_TOO_LARGE"]);

interface Offer {
  risks: Map<string, RiskLevel>;
  definitions: unknown[];
  /** the function name a model calls → the tool's name (MCP tools' dots are not allowed in function names) */
  toolOf: Map<string, string>;
}

/**
 * A model step's tools, governed exactly like a task that names a tool (tool-task-stage.ts): the model is offered the
 * agent's allowed tools that are not BLOCK; an AUTO or AUTO+ call runs through `AgentTools.call` (so the tool host checks
 * and audits it), a PROPOSE or CONFIRM call becomes a proposal through `AgentTools.propose`, and anything else is refused.
 * Everything the model sends is model output: the arguments are parsed and checked against the tool's input schema here,
 * so a mistake comes back to the model at once, in words it can act on, instead of as a refusal one process later.
 */
export function governedStepTools(o: GovernedStepToolsOptions): StepTools {
  const maxChars = o.maxContentChars ?? DEFAULT_MAX_CONTENT_CHARS;
  // the allow list and the built-in catalogue are fixed for the life of the process: their schemas are rendered once;
  // the live tools (MCP servers') are offered as they are listed now
  let builtIn: Offer | undefined;
  let last: Offer | undefined;
  const offer = (): Offer => {
    builtIn ??= offerable(o.tools, o.catalogue.list().map((t) => o.catalogue.describe(t.name)));
    if (!o.live) return builtIn;
    const live = offerable(o.tools, o.live.list().filter((t) => !o.catalogue.has(t.name)).map(describeLive));
    last = {
      risks: new Map([...builtIn.risks, ...live.risks]),
      definitions: [...builtIn.definitions, ...live.definitions],
      toolOf: new Map([...builtIn.toolOf, ...live.toolOf]),
    };
    return last;
  };
  const definitionOf = (name: string) => o.catalogue.get(name) ?? o.live?.get(name);

  return {
    definitions: () => offer().definitions,

    async run(modelCall: ModelToolCall, taskId?: string): Promise<StepToolResult> {
      const offered = last ?? offer();
      const call = { ...modelCall, name: offered.toolOf.get(modelCall.name) ?? unoffered(o.tools, modelCall.name) };
      const named = call.name === modelCall.name ? {} : { tool: call.name };
      return { ...(await runCall(call, taskId)), ...named };
    },
  };

  async function runCall(call: ModelToolCall, taskId: string | undefined): Promise<StepToolResult> {
    try {
      const risk = (last ?? offer()).risks.get(call.name) ?? (await refuseUnoffered(o.tools, call, taskId));
      const input = parseArguments(call);
      const definition = definitionOf(call.name);
      if (!definition) throw new FleetError("TOOL_NOT_FOUND", `no tool "${call.name}" in the catalogue`);
      const checked = definition.input.safeParse(input);
      if (!checked.success) {
        const issues = checked.error.issues.slice(0, 5).map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`);
        throw new FleetError("MESSAGE_INVALID", `${call.name} does not take these arguments: ${issues.join("; ")}`);
      }
      if (needsProposal(risk)) {
        // the input as the model wrote it, not with the schema's defaults: the tool host applies them when it runs
        const proposalId = await o.tools.propose({ tool: call.name, input, reason: `asked for by the model in task ${taskId ?? "(none)"}`, taskId });
        const decides = risk === "CONFIRM" ? "a person decides" : "Sentinel decides";
        return { outcome: "proposed", content: `proposal ${proposalId} submitted (${call.name}, ${risk}); ${decides}; it has not run; do not wait for it` };
      }
      const result = await o.tools.call(call.name, input, taskId);
      return { outcome: "ok", content: cut(JSON.stringify(result.output) ?? "null", maxChars) };
    } catch (err) {
      const error = FleetError.from(err);
      return { outcome: REFUSALS.has(error.code) ? "refused" : "failed", content: cut(`${error.code}: ${error.message}`, maxChars) };
    }
  }
}

/** A name the model used that was not offered: `server__tool` read as the MCP tool it would have been offered as. */
function unoffered(tools: AgentTools, fn: string): string {
  if (!fn.includes("__") || fn.includes(".")) return fn;
  try {
    tools.riskOf(fn);
    return fn;
  } catch {
    return fn.replace("__", ".");
  }
}

/** A listed tool as a model is told about it: the input schema its source gave. */
function describeLive(tool: ToolDefinition): ToolDescription {
  return { name: tool.name, description: tool.description, risk: tool.risk, reversible: tool.rollback !== undefined, inputSchema: tool.inputSchema ?? {}, source: tool.source ?? "built-in" };
}

/** The agent's allowed tools that are not BLOCK, as OpenAI function tools, with each one's risk. */
function offerable(tools: AgentTools, described: readonly ToolDescription[]): Offer {
  const risks = new Map<string, RiskLevel>();
  const definitions: unknown[] = [];
  const toolOf = new Map<string, string>();
  for (const tool of described) {
    if (!tools.isAllowed(tool.name)) continue;
    // the risk governance acts on is AgentTools' (the one the broker's permissions were written from), not the definition's
    let risk: RiskLevel;
    try {
      risk = tools.riskOf(tool.name);
    } catch {
      continue;
    }
    if (risk === "BLOCK") continue;
    const fn = functionName(tool.name);
    risks.set(tool.name, risk);
    toolOf.set(fn, tool.name);
    definitions.push({
      type: "function",
      function: { name: fn, description: describeForModel(tool.description, risk), parameters: withoutMetaSchema(tool.inputSchema) },
    });
  }
  return { risks, definitions, toolOf };
}

/**
 * Providers take function names of `[a-zA-Z0-9_-]{1,64}`: an MCP tool's `<server>.<tool>` is offered as
 * `<server>__<tool>` (cut to 64 with a hash of the whole when longer), and mapped back when the model calls it.
 */
function functionName(tool: string): string {
  const fn = tool.replace(".", "__");
  if (fn.length <= 64) return fn;
  return `${fn.slice(0, 55)}_${createHash("sha256").update(tool).digest("hex").slice(0, 8)}`;
}

/** What a model must know before it calls a tool that does not run at once. */
function describeForModel(description: string, risk: RiskLevel): string {
  if (risk === "PROPOSE") return `${description} (PROPOSE: calling it submits a proposal that Sentinel decides; it runs later, not now.)`;
  if (risk === "CONFIRM") return `${description} (CONFIRM: calling it submits a proposal a person must approve; it runs later, not now.)`;
  return description;
}

/** Providers take a plain JSON schema object as `parameters`; the `$schema` dialect marker is noise some of them refuse. */
function withoutMetaSchema(schema: unknown): unknown {
  if (typeof schema !== "object" || schema === null || Array.isArray(schema)) return { type: "object", properties: {} };
  return Object.fromEntries(Object.entries(schema).filter(([key]) => key !== "$schema"));
}

/**
 * Why a tool that was not offered may not run, in the same words the direct path would use; a BLOCK or not-allowed tool
 * the model named is reported to the audit trail (AgentTools.refuse), with the arguments as the model wrote them.
 */
async function refuseUnoffered(tools: AgentTools, call: ModelToolCall, taskId: string | undefined): Promise<never> {
  const name = call.name;
  const risk = tools.riskOf(name); // TOOL_NOT_FOUND for a name the model made up
  if (risk !== "BLOCK" && tools.isAllowed(name)) throw new FleetError("TOOL_NOT_FOUND", `"${name}" has no description in this process's catalogue`);
  const refusal = risk === "BLOCK" ? new FleetError("TOOL_BLOCKED", `"${name}" is BLOCK: it never runs`) : new FleetError("TOOL_NOT_ALLOWED", `this agent is not allowed "${name}"`);
  let input: unknown;
  try {
    input = parseArguments(call);
  } catch {
    input = call.arguments;
  }
  throw await tools.refuse(refusal, name, input, taskId);
}

function parseArguments(call: ModelToolCall): unknown {
  // some models send "" for a tool without parameters
  if (call.arguments.trim() === "") return {};
  try {
    const input: unknown = JSON.parse(call.arguments);
    return input;
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new FleetError("MESSAGE_INVALID", `the arguments of ${call.name} are not JSON (${why}); call it again with a JSON object`);
  }
}

function cut(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text;
  return `${text.slice(0, maxChars)}… (cut: ${text.length - maxChars} more characters)`;
}
