import { z } from "zod";
import { ToolDescription } from "./governance.js";

/**
 * What one tool host serves from one source, in KV `tools` under `<source key>.<host>` (`builtin.web1`, `mcp.files.web1`).
 * Written by the tool host when the source's tools are listed (at start, after a restart, on an MCP server's list-changed
 * notification) and deleted when the host stops serving them. Agents and governance read the MCP entries to learn tools
 * that appear at runtime (description, risk, input schema); `fleet tools` reads every entry. Whether a host is serving
 * right now is the micro discovery's answer, not this record's: a host that crashed leaves its record behind.
 */
export const ToolListing = z.object({
  host: z.string().min(1),
  /** "built-in", "module:<name>", "mcp:<server>" */
  source: z.string().min(1),
  /** false while the source is down (an MCP server restarting): its tools answer TOOL_SOURCE_UNAVAILABLE */
  available: z.boolean(),
  tools: z.array(ToolDescription),
  /** epoch ms */
  listedAt: z.number(),
});
export type ToolListing = z.infer<typeof ToolListing>;

/** The KV key token of a source: "builtin", "module.<name>", "mcp.<server>". */
export function toolListingKey(source: string, host: string): string {
  const token = (s: string) => s.replace(/[^A-Za-z0-9_-]/g, "_");
  const [kind, name] = source.split(":", 2);
  const sourceKey = name === undefined ? token(kind ?? source) : `${token(kind ?? "")}.${token(name)}`;
  return `${sourceKey.replace(/^built-in$/, "builtin")}.${token(host)}`;
}

/** The KV keys of one MCP server's listings, on every host (a watch filter). */
export function mcpListingKeys(server: string): string {
  return `mcp.${server}.*`;
}
