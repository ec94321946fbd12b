import type { AlertsConfig, RateLimit, TierName } from "../config/index.js";
import type { UsageRecord } from "../protocol/index.js";
import { peakPerMinute, usdText } from "../router/index.js";

/*
 * Which alerts hold now, as data: pure, so every rule is tested on figures without a fleet. Each alert's key names its
 * condition and its period (the day for spend, the window for DLQ growth, the hour for a pool, the opening for a
 * breaker): the watcher sends a key once, ever, so the same condition is announced once per period.
 */

export interface Alert {
  key: string;
  text: string;
}

export interface AlertInput {
  now: number;
  /** the fleet's day (yyyy-mm-dd) */
  day: string;
  /** today's real spend and the daily caps, for the fleet and each agent */
  spend: { fleet: number; agents: Record<string, number> };
  caps: { fleet: number; agents: Record<string, number> };
  breakers: { agentId: string; state: "closed" | "open" | "half-open"; openUntil?: number | undefined }[];
  /** dead letters that arrived in the last dlqWindowMinutes */
  newDeadLetters: number;
  /** premium calls waiting for their provider */
  waiting: { callId: string; agentId: string; since: number }[];
  /** USAGE records of the last few minutes, for the pools' rates */
  recentUsage: readonly UsageRecord[];
  pools: readonly { tier: TierName; deployments: string[]; rateLimit: RateLimit | undefined }[];
}

const HOUR = 3_600_000;
const pct = (share: number) => `${Math.round(share * 100)}`;

export function evaluateAlerts(input: AlertInput, config: AlertsConfig): Alert[] {
  const out: Alert[] = [];
  const shares = [...config.spendShares].sort((a, b) => a - b);
  const spend = (scope: string, spent: number, cap: number) => {
    if (cap <= 0) return;
    // only the highest share crossed is announced: a jump from 40 % to 110 % is one notice, not three
    const crossed = shares.filter((s) => spent >= s * cap).at(-1);
    if (crossed === undefined) return;
    out.push({
      key: `alert.spend.${scope}.${pct(crossed)}.${input.day}`,
      text: `Alert: ${scope === "fleet" ? "the fleet" : `agent ${scope}`} has spent ${usdText(spent)} of its ${usdText(cap)} daily cap today (${pct(spent / cap)} %, past ${pct(crossed)} %)`,
    });
  };
  spend("fleet", input.spend.fleet, input.caps.fleet);
  for (const [agentId, cap] of Object.entries(input.caps.agents).sort()) spend(agentId, input.spend.agents[agentId] ?? 0, cap);
  for (const b of input.breakers) {
    if (b.state !== "open") continue;
    out.push({ key: `alert.breaker.${b.agentId}.${b.openUntil ?? input.day}`, text: `Alert: agent ${b.agentId}'s breaker is open${b.openUntil ? ` until ${new Date(b.openUntil).toISOString()}` : ""}` });
  }
  if (input.newDeadLetters >= config.dlqGrowth) {
    const windowMs = config.dlqWindowMinutes * 60_000;
    out.push({ key: `alert.dlq.${Math.floor(input.now / windowMs)}`, text: `Alert: ${input.newDeadLetters} new dead letters in the last ${config.dlqWindowMinutes} minutes (fleet streams DLQ shows them)` });
  }
  for (const w of input.waiting) {
    const minutes = (input.now - w.since) / 60_000;
    if (minutes < config.premiumWaitMinutes) continue;
    out.push({ key: `alert.premium.${w.callId.replace(/[^A-Za-z0-9_-]/g, "_")}`, text: `Alert: a premium call of ${w.agentId} has waited ${Math.floor(minutes)} minutes for its provider` });
  }
  for (const pool of input.pools) {
    const limit = pool.rateLimit;
    if (!limit) continue;
    const peak = peakPerMinute(input.recentUsage, pool.deployments);
    const near = [
      limit.requestsPerMinute && peak.requests >= config.rateLimitShare * limit.requestsPerMinute ? `${peak.requests} of ${limit.requestsPerMinute} requests/min` : undefined,
      limit.tokensPerMinute && peak.tokens >= config.rateLimitShare * limit.tokensPerMinute ? `${peak.tokens} of ${limit.tokensPerMinute} tokens/min` : undefined,
    ].filter((x) => x !== undefined);
    if (near.length === 0) continue;
    out.push({ key: `alert.rate.${pool.tier}.${Math.floor(input.now / HOUR)}`, text: `Alert: the ${pool.tier} pool is near its rate limit: ${near.join(", ")}` });
  }
  return out;
}
