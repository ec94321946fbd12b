import { z } from "zod";
import { FleetError, ToolDescription, type RiskLevel } from "../protocol/index.js";
import type { ToolDefinition } from "./tool.js";

/** a built-in or module tool, or `<server>.<tool>` for an MCP server's (two subject tokens) */
const TOOL_NAME = /^[a-z][a-z0-9_]{0,63}(\.[a-z0-9_-]{1,64})?$/;

/**
 * The tools a process knows, by name. Built once at start and checked then: a duplicate name, a name that is not a subject
 * token, or a PROPOSE tool without a rollback (the rollback window is what makes a tool PROPOSE rather than CONFIRM) is a
 * configuration error, not something to discover at the first call.
 */
export class ToolCatalogue {
  private readonly byName = new Map<string, ToolDefinition>();

  constructor(tools: readonly ToolDefinition[]) {
    for (const tool of tools) this.add(tool);
  }

  /** Adds a tool (at start, or when a source lists a new one at runtime); the same checks as at start. */
  add(tool: ToolDefinition): void {
    if (!TOOL_NAME.test(tool.name)) throw new FleetError("CONFIG_INVALID", `tool name "${tool.name}" must be lowercase letters, digits or "_" (MCP tools: "<server>.<tool>")`);
    if (this.byName.has(tool.name)) throw new FleetError("CONFIG_INVALID", `two tools are named "${tool.name}"`);
    if (tool.risk === "PROPOSE" && !tool.rollback) throw new FleetError("CONFIG_INVALID", `PROPOSE tool "${tool.name}" has no rollback`);
    this.byName.set(tool.name, tool);
  }

  /** Removes a tool its source no longer lists; true when it was there. */
  remove(name: string): boolean {
    return this.byName.delete(name);
  }

  get(name: string): ToolDefinition | undefined {
    return this.byName.get(name);
  }

  /** The tool, or TOOL_NOT_FOUND. */
  require(name: string): ToolDefinition {
    const tool = this.byName.get(name);
    if (!tool) throw new FleetError("TOOL_NOT_FOUND", `no tool "${name}" in the catalogue`);
    return tool;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  list(filter: { risk?: RiskLevel; host?: string } = {}): ToolDefinition[] {
    return [...this.byName.values()].filter(
      (tool) => (!filter.risk || tool.risk === filter.risk) && (!filter.host || !tool.hosts || tool.hosts.includes(filter.host)),
    );
  }

  /** What a model is told about a tool: its input as JSON schema (the shape it must send, before defaults apply). */
  describe(name: string): ToolDescription {
    const tool = this.require(name);
    return {
      name: tool.name,
      description: tool.description,
      risk: tool.risk,
      reversible: tool.rollback !== undefined,
      inputSchema: tool.inputSchema ?? z.toJSONSchema(tool.input, { io: "input", unrepresentable: "any" }),
      source: tool.source ?? "built-in",
      ...(tool.targetFields?.length ? { targetFields: [...tool.targetFields] } : {}),
    };
  }

  describeAll(): ToolDescription[] {
    return [...this.byName.keys()].map((name) => this.describe(name));
  }
}
