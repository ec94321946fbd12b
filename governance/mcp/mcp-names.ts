/**
 * An MCP tool's name as the fleet serves it: `<server>.<tool>`, where `<tool>` is one subject token in the alphabet of
 * fleet tool names (lowercase letters, digits, `_`, `-`). MCP allows more (upper case, dots, 128 characters); those are
 * mapped (upper case lowered, anything else to `_`), and a name that cannot be mapped faithfully — nothing left but
 * underscores, longer than 64, or the same as another tool's mapping — is refused, and the tool not served.
 */
export type NamedTool = { ok: true; fleetName: string; token: string } | { ok: false; why: string };

const MAX_TOKEN = 64;

export function sanitiseToolName(server: string, mcpName: string): NamedTool {
  const token = mcpName.toLowerCase().replace(/[^a-z0-9_-]/g, "_");
  if (!/[a-z0-9]/.test(token)) return { ok: false, why: `"${mcpName}" has no letter or digit a subject token could keep` };
  if (token.length > MAX_TOKEN) return { ok: false, why: `"${mcpName}" is longer than ${MAX_TOKEN} characters` };
  return { ok: true, fleetName: `${server}.${token}`, token };
}

/** Names every tool of a listing, refusing the ones that collide: the first of two tools with one mapping keeps it. */
export function nameTools(server: string, mcpNames: readonly string[]): { named: Map<string, string>; refused: { name: string; why: string }[] } {
  const named = new Map<string, string>();
  const taken = new Map<string, string>();
  const refused: { name: string; why: string }[] = [];
  for (const name of mcpNames) {
    const result = sanitiseToolName(server, name);
    if (!result.ok) {
      refused.push({ name, why: result.why });
      continue;
    }
    const other = taken.get(result.fleetName);
    if (other !== undefined) {
      refused.push({ name, why: `"${name}" and "${other}" would both be served as ${result.fleetName}` });
      continue;
    }
    taken.set(result.fleetName, name);
    named.set(name, result.fleetName);
  }
  return { named, refused };
}
