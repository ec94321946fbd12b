import { z } from "zod";
import { RiskLevel } from "../protocol/index.js";
import { strict } from "./strict-object.js";

/*
 * MCP servers as tool sources (`mcpServers:` in the fleet config). A tool host connects to each with the official MCP
 * SDK client, lists its tools and serves each as the fleet tool `<server>.<tool>`. Secrets never sit in the config: a
 * stdio server gets the values of the variables `env` names, an HTTP server the bearer token in the variable `tokenEnv`
 * names, both read where the tool host is wired.
 */

/** A server's name is the first token of its tools' names and subjects: lowercase, like agent ids. */
export const McpServerName = z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/, "must be 1-32 lowercase letters, digits, '_' or '-', starting with a letter (one subject token)");
/** A tool of the server as the fleet names it (lowercase; see the tool host's sanitising), or a glob of such names. */
const McpToolGlob = z.string().regex(/^[a-z0-9_*-]{1,64}$/, "must be a tool name of this server (lowercase letters, digits, '_', '-') or a glob with '*'");
const McpToolName = z.string().regex(/^[a-z0-9_-]{1,64}$/, "must be a tool name of this server (lowercase letters, digits, '_', '-')");
const EnvName = z.string().regex(/^[A-Z_][A-Z0-9_]*$/, "must be the NAME of an environment variable");

const common = {
  /** risk per tool or glob (`read_*`), first match in the order written; beats the server's annotations */
  risk: z.record(McpToolGlob, RiskLevel).default({}),
  /** host names whose tool hosts connect to this server; every tool host when omitted */
  hosts: z.array(z.string().min(1)).min(1).optional(),
  /**
   * tool → the tool of this server that undoes it. A tool with a compensation is PROPOSE (it runs after Sentinel, with
   * a rollback window) unless its risk is configured or annotated otherwise; without one, a tool that writes is CONFIRM.
   */
  compensations: z.record(McpToolName, McpToolName).default({}),
  /** input fields that name a target (a URL, a host): Sentinel and the tool host check them against the allow list */
  targetFields: z.record(McpToolGlob, z.array(z.string().min(1))).default({}),
  /** a call that has not answered in this time is given up (its outcome unknown unless the tool is idempotent) */
  timeoutSeconds: z.number().positive().max(600).default(30),
};

/**
 * One server: `command` (with `args`, `env`, `cwd`) for a child process spoken to over stdio, or `url` (with `tokenEnv`)
 * for streamable HTTP. One strict object rather than a union, so a misspelt key gets its own "did you mean".
 */
export const McpServerConfig = strict({
  /** the program to start (found on PATH) and its arguments; it speaks MCP on stdin/stdout */
  command: z.string().min(1).optional(),
  args: z.array(z.string()).optional(),
  /** the NAMES of the variables the server gets (besides PATH and HOME); their values come from the tool host's environment */
  env: z.array(EnvName).optional(),
  /** its working directory; the tool host's own when omitted */
  cwd: z.string().min(1).optional(),
  /** the server's streamable HTTP endpoint */
  url: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).optional(),
  /** the NAME of the variable holding its bearer token; no Authorization header when omitted */
  tokenEnv: EnvName.optional(),
  ...common,
}).superRefine((server, ctx) => {
  const report = (path: string, message: string) => ctx.addIssue({ code: "custom", path: [path], message });
  if (server.command === undefined && server.url === undefined) report("command", 'an MCP server needs "command" (stdio) or "url" (streamable HTTP)');
  if (server.command !== undefined && server.url !== undefined) report("url", 'an MCP server has "command" (stdio) or "url" (streamable HTTP), not both');
  if (server.url !== undefined) for (const key of ["args", "env", "cwd"] as const) if (server[key] !== undefined) report(key, `"${key}" is for a stdio server (one with "command")`);
  if (server.command !== undefined && server.tokenEnv !== undefined) report("tokenEnv", '"tokenEnv" is for an HTTP server (one with "url"); a stdio server gets its secrets through "env"');
  for (const [tool, undo] of Object.entries(server.compensations)) if (tool === undo) report("compensations", `${tool} cannot undo itself`);
});
export type McpServerConfig = z.infer<typeof McpServerConfig>;

export const McpServersConfig = z.record(McpServerName, McpServerConfig).default({});
export type McpServersConfig = z.infer<typeof McpServersConfig>;

/** The subject-token test a server name passes (config/schema.ts checks allow lists against the configured servers). */
export const MCP_SERVER_NAME = /^[a-z][a-z0-9_-]{0,31}$/;
