import { agentKnown, toolPermission } from "./access.js";
import { blockedPatterns } from "./blocked-patterns.js";
import { brandSafety } from "./brand-safety.js";
import { budgetHeadroom } from "./budget-headroom.js";
import { inputSchema } from "./input-schema.js";
import { payloadSize } from "./payload-size.js";
import { personalData } from "./personal-data.js";
import { proposalDedup } from "./proposal-dedup.js";
import { quietHours } from "./quiet-hours.js";
import { rateLimit } from "./rate-limit.js";
import { humanConfirmation, riskBlocked } from "./risk.js";
import { targetAllowList } from "./target-allow-list.js";

/**
 * Sentinel's rules, in the order they run and are recorded. Who and what first (so the first refusal names the most
 * basic problem), then money, content and timing, then the input's shape, and the human question last: a person is
 * only asked about a proposal that passed everything else. The order is part of the contract — verdicts in the audit
 * trail list results in it — so new rules go at the end or in a deliberate place, never by accident.
 */
export const RULES = [
  agentKnown,
  toolPermission,
  riskBlocked,
  budgetHeadroom,
  blockedPatterns,
  rateLimit,
  proposalDedup,
  quietHours,
  targetAllowList,
  payloadSize,
  personalData,
  // what a post or an email says, after the checks of its input as data and before its shape
  brandSafety,
  inputSchema,
  humanConfirmation,
] as const;

export type RuleName = (typeof RULES)[number]["name"];
export const RULE_NAMES: readonly RuleName[] = RULES.map((rule) => rule.name);

export { actionKey } from "./action-key.js";
export { linksIn, messageProblems, policyFor } from "./brand-safety.js";
export { personalDataIn, type PersonalDataKind } from "./pii-detectors.js";
export { defineRule, type Finding, type OtherProposal, type SentinelInput, type SentinelRule } from "./rule.js";
export { hostAllowed, targetHost } from "./target-host.js";
