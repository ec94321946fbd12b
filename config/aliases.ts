import type { TierName } from "../protocol/index.js";

/** The aliases every fleet has: pipelines, duties, cron jobs and skills may name them without configuring them. */
export const DEFAULT_ALIASES: Readonly<Record<string, { tier: TierName; chain?: TierName[] }>> = { triage: { tier: "nano" }, standard: { tier: "capable" }, heavy: { tier: "power" } };
