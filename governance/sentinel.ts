import type { RuleResult, SentinelVerdict } from "../protocol/index.js";
import { personalDataIn, RULES, type SentinelInput } from "./rules/index.js";

/**
 * Sentinel: the deterministic rules every proposal passes before anything runs (DESIGN.md, Governance). Pure — the
 * caller gathers the agent, tool, budget and the agent's other proposals, and passes `now` — so a verdict can be
 * recomputed from the audit trail and tested without a clock.
 *
 * Every rule runs, even after one has failed: the verdict is the record of why, and an agent (or the operator reading
 * the log) sees all that is wrong with a proposal at once instead of one refusal per attempt.
 */
export function evaluateProposal(input: SentinelInput): SentinelVerdict {
  const results = RULES.map((rule) => runRule(rule.name, () => rule.check(input)));
  const failed = results.find((result) => result.outcome === "fail");
  const base = { results, at: input.now };
  if (failed) return { ...base, outcome: "rejected", rejectedBy: { rule: failed.rule, reason: failed.reason } };
  if (results.some((result) => result.outcome === "needs_human")) return { ...base, outcome: "needs_human" };
  return { ...base, outcome: "approved" };
}

/**
 * A rule that throws fails closed: rules are written not to throw on anything the wire can carry, but a gate must not
 * open because of a bug (or a tool schema whose refinement throws). The error's message is recorded for whoever debugs
 * it, cut short and left out when it quotes personal data.
 */
function runRule(name: string, check: () => RuleResult): RuleResult {
  try {
    return check();
  } catch (err) {
    const message = (err instanceof Error ? `${err.name}: ${err.message}` : String(err)).slice(0, 120);
    const shown = personalDataIn(message).length > 0 ? "message withheld: it quotes personal data" : message;
    return { rule: name, outcome: "fail", reason: `the rule could not be checked (${shown})` };
  }
}

export { canonicalJson } from "./canonical-json.js";
export { RULE_NAMES, actionKey, type OtherProposal, type RuleName, type SentinelInput } from "./rules/index.js";
