import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { z } from "zod";
import { FleetError, RiskLevel, type FieldIssue } from "../protocol/index.js";
import type { ToolContext, ToolDefinition } from "./tool.js";

/*
 * Tool modules: the fleet's own tools, loaded from the files `toolModules:` names (relative to the config file). Every
 * process that needs the catalogue loads them at start (tool hosts to serve them, agents for their descriptions, `fleet
 * up` and `fleet creds` for the broker's permissions), and a module that does not load, exports no tools or exports a
 * bad one is refused there with its path and what is wrong: a fleet never starts with a tool only half there.
 */

const TOOL_NAME = /^[a-z][a-z0-9_]{0,63}$/;

/** A zod v4 schema: what the catalogue validates input with and turns into the model's JSON schema. */
const isZodSchema = (value: unknown): boolean =>
  typeof value === "object" && value !== null && "_zod" in value && "safeParse" in value && typeof value.safeParse === "function";
const isFunction = (value: unknown): boolean => typeof value === "function";
const FieldList = z.array(z.string().min(1)).optional();

const ModuleToolShape = z.object({
  name: z.string().regex(TOOL_NAME, 'must be 1-64 lowercase letters, digits or "_", starting with a letter'),
  description: z.string().min(1, "must say what the tool does"),
  risk: RiskLevel,
  input: z.custom<z.ZodType>(isZodSchema, "must be a zod v4 schema (import { z } from \"zod\")"),
  run: z.custom<(input: unknown, ctx: ToolContext) => Promise<unknown>>(isFunction, "must be a function (input, ctx) => Promise<output>"),
  rollback: z.custom<(input: unknown, output: unknown, ctx: ToolContext) => Promise<unknown>>(isFunction, "must be a function (input, output, ctx) => Promise").optional(),
  targets: FieldList,
  personalData: FieldList,
  hosts: FieldList,
  costUsd: z.number().nonnegative().optional(),
});

export interface LoadedToolModule {
  /** as written in the config */
  path: string;
  /** resolved against the config file's directory */
  file: string;
  tools: ToolDefinition[];
}

function refuse(source: string, issues: FieldIssue[], cause?: unknown): FleetError {
  return new FleetError("CONFIG_INVALID", issues.map((i) => `${source}: ${i.path}: ${i.message}`).join("\n"), { details: issues, ...(cause ? { cause } : {}) });
}

/** The module's tools as the catalogue holds them, or every problem with them. */
function toolsOf(exports: Record<string, unknown>, where: string, file: string): { tools: ToolDefinition[]; issues: FieldIssue[] } {
  const list = exports.tools ?? exports.default;
  if (!Array.isArray(list) || list.length === 0) {
    return { tools: [], issues: [{ path: where, message: `${file} exports no tools: export an array of tools as default or as \`tools\`` }] };
  }
  const tools: ToolDefinition[] = [];
  const issues: FieldIssue[] = [];
  list.forEach((raw: unknown, i) => {
    const parsed = ModuleToolShape.safeParse(raw);
    const name = typeof raw === "object" && raw !== null && "name" in raw && typeof raw.name === "string" ? ` ("${raw.name}")` : "";
    if (!parsed.success) {
      for (const issue of parsed.error.issues) issues.push({ path: where, message: `${file}: tool [${i}]${name}: ${issue.path.join(".") || "(tool)"}: ${issue.message}` });
      return;
    }
    const t = parsed.data;
    if (t.risk === "PROPOSE" && !t.rollback) {
      issues.push({ path: where, message: `${file}: tool [${i}]${name}: a PROPOSE tool needs a rollback (the rollback window is what makes it PROPOSE rather than CONFIRM)` });
      return;
    }
    try {
      // the model is shown the input as JSON schema: a schema that cannot be shown is refused now, not at the first step
      z.toJSONSchema(t.input, { io: "input", unrepresentable: "any" });
    } catch (err) {
      issues.push({ path: where, message: `${file}: tool [${i}]${name}: input cannot be described as JSON schema: ${err instanceof Error ? err.message : String(err)}` });
      return;
    }
    const run = t.run;
    const rollback = t.rollback;
    tools.push({
      name: t.name,
      description: t.description,
      risk: t.risk,
      input: t.input,
      handler: (input, ctx) => run(input, ctx),
      ...(rollback ? { rollback: (input: unknown, output: unknown, ctx: ToolContext) => rollback(input, output, ctx) } : {}),
      ...(t.targets ? { targetFields: t.targets } : {}),
      ...(t.personalData ? { personalDataFields: t.personalData } : {}),
      ...(t.hosts ? { hosts: t.hosts } : {}),
      ...(t.costUsd !== undefined ? { costUsd: t.costUsd } : {}),
    });
  });
  return { tools, issues };
}

/**
 * Imports each module named in `paths` (relative to `baseDir`, the config file's directory) and checks its tools.
 * `source` (the config file) prefixes every message; the path of each refusal is `toolModules[i]`.
 */
export async function loadToolModules(paths: readonly string[], baseDir: string, source: string): Promise<LoadedToolModule[]> {
  const loaded: LoadedToolModule[] = [];
  const issues: FieldIssue[] = [];
  const seen = new Map<string, string>();
  for (const [i, path] of paths.entries()) {
    const where = `toolModules[${i}]`;
    const file = isAbsolute(path) ? path : resolve(baseDir, path);
    let exports: Record<string, unknown>;
    try {
      exports = { ...(await import(pathToFileURL(file).href)) };
    } catch (err) {
      throw refuse(source, [{ path: where, message: `${file} did not load: ${err instanceof Error ? err.message : String(err)}` }], err);
    }
    const found = toolsOf(exports, where, file);
    issues.push(...found.issues);
    for (const tool of found.tools) {
      const other = seen.get(tool.name);
      if (other) issues.push({ path: where, message: `${file}: tool "${tool.name}" is also defined by ${other}` });
      seen.set(tool.name, file);
    }
    loaded.push({ path, file, tools: found.tools });
  }
  if (issues.length > 0) throw refuse(source, issues);
  return loaded;
}
