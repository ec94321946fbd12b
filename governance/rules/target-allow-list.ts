import { redactedPath } from "./pii-detectors.js";
import { defineRule, fail, noTool, pass } from "./rule.js";
import { hostAllowed, targetHost } from "./target-host.js";
import { valuesAt } from "./walk.js";
import type { ToolDefinition } from "../tool.js";

/**
 * Every target a tool's input names (its declared targetFields: a URL, a host, a recipient) must be on the fleet's allow
 * list. A field holding a list is checked entry by entry; a field that is present but holds no readable host (a number,
 * an object, an unparsable URL) is refused — a target Sentinel cannot read is not one it can allow.
 */
export const targetAllowList = defineRule("target_allow_list", (input) => {
  const { tool, proposal, rules } = input;
  if (!tool) return noTool(input);
  const fields = tool.targetFields ?? [];
  if (fields.length === 0) return pass(`${tool.name} names no targets`);
  const checked = checkTargets(tool, proposal.input, rules.targetAllowList);
  if (!checked.ok) return fail(checked.why);
  if (checked.hosts.length === 0) return pass(`no target field present (${fields.join(", ")})`);
  return pass(`every target is allowed (${checked.hosts.join(", ")})`);
});

/**
 * The targets a call's input names, checked against the allow list: Sentinel's rule for proposals, and the tool host's
 * check on every call (an AUTO `http_check` never meets Sentinel, and must not reach a host nobody allowed).
 */
export function checkTargets(
  tool: Pick<ToolDefinition, "targetFields">,
  input: unknown,
  allowList: readonly string[],
): { ok: true; hosts: string[] } | { ok: false; why: string } {
  const hosts = new Set<string>();
  for (const field of tool.targetFields ?? []) {
    for (const { path, value } of valuesAt(input, field)) {
      if (value === undefined || value === null) continue;
      const where = redactedPath(path);
      if (typeof value !== "string") return { ok: false, why: `field ${where}: a ${typeof value} is not a target host` };
      const host = targetHost(value);
      if (host === undefined) return { ok: false, why: `field ${where}: no host can be read from the target` };
      if (!hostAllowed(host, allowList)) return { ok: false, why: `field ${where}: host ${host} is not in the target allow list` };
      hosts.add(host);
    }
  }
  return { ok: true, hosts: [...hosts] };
}
