import { z } from "zod";
import { Delivery } from "./pipeline-schema.js";
import { strict } from "./strict-object.js";

/*
 * The operator's reports and alerts: the weekly cost report, the alert watcher and the closeout sweeper. Each delivers only where its `delivery` says (a channel and recipient, or "none"): nothing lands
 * with a default recipient.
 */

const HourMinute = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, "must be HH:MM (24 h)");
const Weekday = z.enum(["sun", "mon", "tue", "wed", "thu", "fri", "sat"]);

/** A deployment pool's rate limits (a tier's deployments together), as its provider grants them. */
export const RateLimit = strict({
  requestsPerMinute: z.number().int().positive().optional(),
  tokensPerMinute: z.number().int().positive().optional(),
});
export type RateLimit = z.infer<typeof RateLimit>;

/** The weekly cost report: Monday 09:00 in the fleet's zone unless said otherwise. */
export const WeeklyReportConfig = strict({
  at: HourMinute.default("09:00"),
  day: Weekday.default("mon"),
  delivery: Delivery,
});
export type WeeklyReportConfig = z.infer<typeof WeeklyReportConfig>;

export const ReportsConfig = strict({
  weekly: WeeklyReportConfig.optional(),
});
export type ReportsConfig = z.infer<typeof ReportsConfig>;

/** What the alert watcher watches, and where its notices go. */
export const AlertsConfig = strict({
  delivery: Delivery,
  /** shares of a daily cap (fleet's and each agent's) whose crossing is announced, once per day each */
  spendShares: z.array(z.number().positive().max(10)).default([0.5, 0.8, 1]),
  /** this many new dead letters within `dlqWindowMinutes` is an alert (once per window) */
  dlqGrowth: z.number().int().positive().default(5),
  dlqWindowMinutes: z.number().positive().default(60),
  /** a premium call waiting longer than this is an alert */
  premiumWaitMinutes: z.number().positive().default(30),
  /** a deployment pool using this share of its rate limit in a minute is an alert (once per hour) */
  rateLimitShare: z.number().positive().max(1).default(0.8),
  /** how often the watcher looks */
  everySeconds: z.number().int().positive().default(60),
});
export type AlertsConfig = z.infer<typeof AlertsConfig>;

/** The report-only closeout sweeper: lists stale work, changes nothing. */
export const SweeperConfig = strict({
  at: HourMinute.default("08:00"),
  delivery: Delivery,
  /** a task WORKING longer than this is stale */
  staleHours: z.number().positive().default(24),
  /** a task waiting on a human (INPUT_REQUIRED) longer than this is listed; every proposal awaiting a human is listed */
  waitingHours: z.number().positive().default(24),
});
export type SweeperConfig = z.infer<typeof SweeperConfig>;
