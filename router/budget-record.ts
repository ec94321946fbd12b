import { z } from "zod";
import { TierName } from "../protocol/index.js";
import { roundUsd } from "./budget-state.js";

/** A day's budget record in KV `budgets` (router/budget-ledger.ts) and the pure functions on it. */

export const ReservationEntry = z.object({
  usd: z.number().nonnegative(),
  tier: TierName,
  /** epoch ms after which a router that never settled is presumed dead and the reservation no longer counts */
  expiresAt: z.number(),
  /** tells this reservation from an earlier, settled one under the same id */
  token: z.string(),
});
export type ReservationEntry = z.infer<typeof ReservationEntry>;

/** The value under `<day>.<agentId>` and `<day>.fleet` (JSON, so `nats kv get` shows it as is). */
export const BudgetRecord = z.object({
  day: z.string(),
  spentUsd: z.number().nonnegative(),
  reservations: z.record(z.string(), ReservationEntry),
  /**
   * Reservations that expired unsettled, by token, with the worst case they were booked at: a router that died after
   * the call may have paid for it, so the worst case counts. A late settle books the difference instead.
   */
  lapsed: z.record(z.string(), z.number().nonnegative()).optional(),
});
export type BudgetRecord = z.infer<typeof BudgetRecord>;

export function empty(day: string): BudgetRecord {
  return { day, spentUsd: 0, reservations: {} };
}

/**
 * The record with reservations that expired (`<=`: expiresAt is the end) moved to `lapsed` and booked at their worst
 * case: their router is presumed dead, and it may have paid for the call before it died.
 */
export function live(record: BudgetRecord, now: number): BudgetRecord {
  const reservations: BudgetRecord["reservations"] = {};
  const lapsed = { ...(record.lapsed ?? {}) };
  let spentUsd = record.spentUsd;
  for (const [id, r] of Object.entries(record.reservations)) {
    if (r.expiresAt > now) reservations[id] = r;
    else {
      lapsed[r.token] = r.usd;
      spentUsd = roundUsd(spentUsd + r.usd);
    }
  }
  return { ...record, spentUsd, reservations, lapsed };
}

export function reservedOf(record: BudgetRecord): number {
  return roundUsd(Object.values(record.reservations).reduce((sum, r) => sum + r.usd, 0));
}

export function isWrongRevision(err: unknown): boolean {
  return err instanceof Error && /wrong last sequence/i.test(err.message);
}
