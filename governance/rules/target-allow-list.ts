import { redactedPath } from "./pii-detectors.js";
import { defineRule, fail, noTool, pass } from "./rule.js";
import { hostAllowed, targetHost } from "./target-host.js";
import { valuesAt } from "./walk.js";

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
  const hosts = new Set<string>();
  for (const field of fields) {
    for (const { path, value } of valuesAt(proposal.input, field)) {
      if (value === undefined || value === null) continue;
      const where = redactedPath(path);
      if (typeof value !== "string") return fail(`field ${where}: a ${typeof value} is not a target host`);
      const host = targetHost(value);
      if (host === undefined) return fail(`field ${where}: no host can be read from the target`);
      if (!hostAllowed(host, rules.targetAllowList)) return fail(`field ${where}: host ${host} is not in the target allow list`);
      hosts.add(host);
    }
  }
  if (hosts.size === 0) return pass(`no target field present (${fields.join(", ")})`);
  return pass(`every target is allowed (${[...hosts].join(", ")})`);
});
