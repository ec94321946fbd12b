import { Cron } from "croner";
import { z } from "zod";
import { FleetError } from "../protocol/index.js";
import { localParts, nextDailyAt } from "./local-time.js";

/*
 * When scheduled work is due: a daily local time (cron jobs' `at`, optionally on some weekdays), a fixed interval
 * (`every`) or a 5-field cron expression (`cron`, evaluated by croner in the fleet's time zone, DST-correct). Duties and
 * cron jobs share these, and so do the scheduler that runs them and `fleet status` that shows the next due time, so the
 * two can never disagree. Pure: `after` and `now` are always passed in.
 *
 * Intervals run on a grid anchored at the epoch (every 30m is :00 and :30), not from the last run: a due time then
 * follows from the schedule alone, so a restarted scheduler computes the same due times, and the same task ids.
 */

export const WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"] as const;
export type Weekday = (typeof WEEKDAYS)[number];

export type Schedule =
  | { kind: "daily"; at: string; days?: readonly Weekday[] | undefined }
  | { kind: "every"; ms: number }
  | { kind: "cron"; expression: string };

/** A croner that computes only (no function, so it never starts a timer). */
function cronOf(expression: string, timeZone: string): Cron {
  return new Cron(expression, { timezone: timeZone, mode: "5-part" });
}

/** Why a cron expression is refused (croner's own words), or undefined when it is a valid 5-field expression. */
export function cronExpressionProblem(expression: string): string | undefined {
  try {
    // the zone does not change what parses; UTC keeps this independent of the config's other fields
    cronOf(expression, "UTC");
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message.replace(/^CronPattern: /, "") : String(err);
  }
}

/** A 5-field cron expression (minute hour day-of-month month day-of-week), refused at load with croner's reason. */
export const CronExpression = z
  .string()
  .min(1)
  .superRefine((expression, ctx) => {
    const problem = cronExpressionProblem(expression);
    if (problem) ctx.addIssue({ code: "custom", message: `not a 5-field cron expression (minute hour day month weekday): ${problem}` });
  });

/** The first due time strictly after `after`. */
export function nextDue(schedule: Schedule, timeZone: string, after: number): number {
  switch (schedule.kind) {
    case "every":
      return (Math.floor(after / schedule.ms) + 1) * schedule.ms;
    case "cron": {
      const next = cronOf(schedule.expression, timeZone).nextRun(new Date(after));
      // croner answers null only for an expression that can never match again (e.g. Feb 30): never due
      return next ? next.getTime() : Number.POSITIVE_INFINITY;
    }
    case "daily": {
      const { days } = schedule;
      let due = nextDailyAt(schedule.at, timeZone, after);
      for (let i = 0; i < 8 && days && !days.includes(WEEKDAYS[localParts(due, timeZone).weekday]!); i++) due = nextDailyAt(schedule.at, timeZone, due);
      return due;
    }
  }
}

/**
 * The latest due time in (after, now], or undefined when none: every earlier one missed in between coalesces into it, so
 * a scheduler that was down for three days runs a daily job once, not three times.
 */
export function latestDue(schedule: Schedule, timeZone: string, after: number, now: number): number | undefined {
  let due = nextDue(schedule, timeZone, after);
  if (due > now) return undefined;
  if (schedule.kind === "every") return Math.floor(now / schedule.ms) * schedule.ms;
  for (let next = nextDue(schedule, timeZone, due); next <= now; next = nextDue(schedule, timeZone, next)) due = next;
  return due;
}

/** How many times a day a schedule comes due, on average over a week (for projections such as `fleet simulate`). */
export function runsPerDay(schedule: Schedule, timeZone: string): number {
  if (schedule.kind === "every") return 86_400_000 / schedule.ms;
  if (schedule.kind === "daily") return schedule.days ? schedule.days.length / 7 : 1;
  // count a whole week (a Monday 00:00 UTC on, with no DST change in it) and take the mean
  const start = Date.UTC(2026, 0, 5);
  const end = start + 7 * 86_400_000;
  let runs = 0;
  for (let due = nextDue(schedule, timeZone, start - 1); due < end && runs <= 7 * 1440; due = nextDue(schedule, timeZone, due)) runs++;
  return runs / 7;
}

/** `30m`, `2h`, `90s`, `1d`: the largest unit that divides the interval exactly. */
export function formatInterval(ms: number): string {
  for (const [unit, size] of [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], ["s", 1_000]] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** How `fleet status` and the logs name a schedule: `every 30m`, `cron 0 9 * * 1`, `at 09:00 mon,thu`. */
export function describeSchedule(schedule: Schedule): string {
  switch (schedule.kind) {
    case "every":
      return `every ${formatInterval(schedule.ms)}`;
    case "cron":
      return `cron ${schedule.expression}`;
    case "daily":
      return `at ${schedule.at}${schedule.days ? ` ${schedule.days.join(",")}` : ""}`;
  }
}

/** The schedule a duty or cron job gives (the schema guarantees exactly one of `at`, `every` and `cron`). */
export function scheduleOf(item: { at?: string | undefined; days?: readonly Weekday[] | undefined; every?: number | undefined; cron?: string | undefined }): Schedule {
  if (item.every !== undefined) return { kind: "every", ms: item.every };
  if (item.cron !== undefined) return { kind: "cron", expression: item.cron };
  if (item.at !== undefined) return { kind: "daily", at: item.at, days: item.days };
  throw new FleetError("CONFIG_INVALID", "a schedule needs one of at, every or cron");
}
