import { defineRule, fail, pass, percent, usd } from "./rule.js";

/**
 * A proposal runs only while the agent has headroom left under its daily cap: an action started at the cap could not
 * pay for the model calls its own follow-up needs. Unknown spend is no spend: the rule fails closed.
 */
export const budgetHeadroom = defineRule("budget_headroom", ({ budget, rules }) => {
  if (!budget) return fail("today's spend is unknown (the ledger could not be read): refused until it can be");
  const { spentUsd, capUsd } = budget;
  if (!Number.isFinite(spentUsd) || !Number.isFinite(capUsd) || capUsd <= 0) {
    return fail(`the budget figures are not usable (spent ${spentUsd}, cap ${capUsd})`);
  }
  const stopAt = capUsd * (1 - rules.budgetHeadroom);
  const figures = `spent ${usd(spentUsd)} of the ${usd(capUsd)} daily cap; proposals stop at ${usd(stopAt)} (${percent(rules.budgetHeadroom)} headroom)`;
  return spentUsd >= stopAt ? fail(figures) : pass(figures);
});
