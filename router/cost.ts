/** Dollars for a call at a tier's prices per million tokens; cached input tokens are billed at the cached price. */
export function costUsd(
  prices: { inputPerM: number; outputPerM: number; cachedPerM: number },
  usage: { inputTokens: number; outputTokens: number; cachedTokens: number },
): number {
  const uncached = Math.max(0, usage.inputTokens - usage.cachedTokens);
  return (uncached * prices.inputPerM + usage.cachedTokens * prices.cachedPerM + usage.outputTokens * prices.outputPerM) / 1_000_000;
}
