/**
 * Allow lists name tools exactly (`http_check`, `files.read_file`), all of one MCP server's tools (`files.*`), a glob
 * within a server (`files.read_*`), or every tool (`*`, the orchestrator's). A `*` inside a name never crosses the dot
 * between server and tool, so `files.*` is not `files_backup.x`, and a built-in name is never matched by a server glob.
 * One function, used by every enforcement point (the agent's host, Sentinel, the tool host, the broker's grants).
 */
export function toolAllowed(allowList: readonly string[], tool: string): boolean {
  return allowList.some((entry) => entry === "*" || entry === tool || (entry.includes("*") && globMatches(entry, tool)));
}

/** Whether a glob (`*` = any run of characters but the dot) matches the whole name. */
export function globMatches(glob: string, name: string): boolean {
  const source = glob
    .split("*")
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
    .join("[^.]*");
  return new RegExp(`^${source}$`).test(name);
}

/** The MCP server a tool name belongs to (`files` for `files.read_file`), or undefined for a built-in or module tool. */
export function serverOf(tool: string): string | undefined {
  const dot = tool.indexOf(".");
  return dot < 0 ? undefined : tool.slice(0, dot);
}
