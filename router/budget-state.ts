import type { BudgetState } from "../protocol/index.js";

/**
 * A daily budget's state (one agent's, or the fleet's) as a pure function of the day's spend: normal → downgraded at
 * `downgradeAt` of the cap → nanoOnly at the cap.
 *
 * There is no budget chart. The spend is shared by every router process and reserved by compare-and-set in KV `budgets`
 * under a key of the fleet's day (budget-ledger.ts), so the state is always this function of the KV totals, and the
 * midnight reset happens by construction: a new day is a new key. A chart per router process would be a second copy of
 * that truth, able to disagree with the ledger that admits calls; the chart the first draft had ran only in tests.
 */

/**
 * Dollars are kept to a nano-dollar so that sums of prices (0.1 + 0.2) and products of shares (3 × 0.8) compare as the
 * operator wrote them: without it 2.4 of a $3 cap would read as under 80 %.
 */
export function roundUsd(usd: number): number {
  return Math.round(usd * 1e9) / 1e9;
}

/** The state a spend (spent + live reservations) puts a cap in. Comparisons are `>=`: exactly 80 % is downgraded. */
export function budgetStateOf(spentUsd: number, capUsd: number, downgradeAt: number): BudgetState {
  const spent = roundUsd(spentUsd);
  if (spent >= roundUsd(capUsd)) return "nanoOnly";
  if (spent >= roundUsd(capUsd * downgradeAt)) return "downgraded";
  return "normal";
}

const SEVERITY: Record<BudgetState, number> = { normal: 0, downgraded: 1, nanoOnly: 2 };

/** The more restrictive of two states: a call must pass both the agent's cap and the fleet's. */
export function stricter(a: BudgetState, b: BudgetState): BudgetState {
  return SEVERITY[b] > SEVERITY[a] ? b : a;
}
