import { localParts, nextDailyAt } from "./local-time.js";

/**
 * The fleet's day: budgets are counted per local calendar day in the fleet's time zone and reset at its local midnight.
 * The DST arithmetic is local-time.ts, shared with quiet hours, so the two can never disagree about when a day begins: a
 * local day is 23 or 25 hours long on a DST day, and a midnight skipped by a spring-forward (America/Santiago) happens
 * at the first instant after the gap.
 */

const pad = (n: number, width: number): string => String(n).padStart(width, "0");

/** The local date at `epochMs` in `timeZone` as "yyyy-mm-dd": the budget keys' day. */
export function fleetDay(epochMs: number, timeZone: string): string {
  const { year, month, day } = localParts(epochMs, timeZone);
  return `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}`;
}

/** Epoch ms of the next local 00:00 strictly after `epochMs`: the instant `fleetDay` changes. */
export function nextMidnight(epochMs: number, timeZone: string): number {
  return nextDailyAt("00:00", timeZone, epochMs);
}
