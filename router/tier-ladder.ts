import type { FleetConfig, TierName } from "../config/index.js";
import { TIER_NAMES } from "../config/index.js";

/*
 * Which tier is "up" and which is "cheaper" is decided by price, not by the tiers' names: in the reference fleet the
 * capable tier (Gemini-Flash-class, $0.10/M) is cheaper than the workhorse tier (DeepSeek-class, $0.27/M). Escalation
 * climbs this ladder, a fallback may only climb it, and a budget downgrade steps down it. The price of a tier is its
 * input plus output price per million tokens; ties keep the order of TIER_NAMES.
 */

export type TierPrices = FleetConfig["tiers"];

export function tierPrice(tiers: TierPrices, tier: TierName): number {
  return tiers[tier].inputPerM + tiers[tier].outputPerM;
}

/** All tiers, cheapest first. */
export function ladder(tiers: TierPrices): TierName[] {
  return [...TIER_NAMES].sort((a, b) => tierPrice(tiers, a) - tierPrice(tiers, b) || TIER_NAMES.indexOf(a) - TIER_NAMES.indexOf(b));
}

/** The next tier up the price ladder, or undefined at the top or past the ceiling. */
export function escalateOneStep(tiers: TierPrices, tier: TierName, ceiling: TierName): TierName | undefined {
  const order = ladder(tiers);
  const next = order[order.indexOf(tier) + 1];
  if (next === undefined || order.indexOf(next) > order.indexOf(ceiling)) return undefined;
  return next;
}

/** The budget chart's downgrade: one step cheaper; the cheapest tier stays where it is. */
export function cheaperStep(tiers: TierPrices, tier: TierName): TierName {
  const order = ladder(tiers);
  return order[Math.max(0, order.indexOf(tier) - 1)] ?? tier;
}

export function cheapestTier(tiers: TierPrices): TierName {
  return ladder(tiers)[0] ?? "nano";
}

/**
 * The tiers tried after `tier` fails, in order. An alias's own chain, then the configured chain for the tier, else every
 * more expensive tier, cheapest first. Premium never falls back: the step waits for it instead (see the router).
 * Config validation already refused chains that do not climb; the filter here keeps that true for the default chain.
 */
export function fallbackChain(
  tiers: TierPrices,
  routing: FleetConfig["routing"],
  tier: TierName,
  alias?: string,
): TierName[] {
  if (tier === "premium") return [];
  const aliasChain = alias === undefined ? undefined : routing.aliases[alias]?.chain;
  const configured = aliasChain ?? routing.fallback[tier];
  if (configured) return configured.filter((t) => t !== tier);
  const price = tierPrice(tiers, tier);
  return ladder(tiers).filter((t) => tierPrice(tiers, t) > price);
}
