import { FleetError } from "../protocol/index.js";

/*
 * The fleet's wall clock: local dates and times in its time zone, resolved the way an operator expects across DST. A time
 * skipped by spring-forward means the first instant after the gap (02:30 on a 02:00→03:00 day is 03:00); a time repeated
 * by fall-back means its first occurrence. Quiet hours, cron jobs, nightly jobs and the budget's day all use these, so
 * they can never disagree about when a day or a window begins. Pure: `now` is always passed in.
 */

export type LocalDate = { year: number; month: number; day: number };
/** `weekday`: 0 = Sunday … 6 = Saturday */
export type LocalParts = LocalDate & { hour: number; minute: number; weekday: number };

export const DAY_MS = 86_400_000;
const HHMM = /^([01]\d|2[0-3]):([0-5]\d)$/;
const formatters = new Map<string, Intl.DateTimeFormat>();

export function parseHhmm(hhmm: string): { hour: number; minute: number } {
  const match = typeof hhmm === "string" ? HHMM.exec(hhmm) : null;
  if (!match) throw new FleetError("CONFIG_INVALID", `"${String(hhmm)}" is not a 24-hour "HH:MM" time`);
  return { hour: Number(match[1]), minute: Number(match[2]) };
}

export function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (f) return f;
  try {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric",
      hour: "numeric", minute: "numeric", second: "numeric",
    });
  } catch (cause) {
    throw new FleetError("CONFIG_INVALID", `"${String(timeZone)}" is not a known time zone`, { cause });
  }
  formatters.set(timeZone, f);
  return f;
}

/** The zone's wall clock at an instant, to the second, read as if it were UTC. */
function wallClockAsUtc(now: number, timeZone: string): number {
  const p: Record<string, number> = {};
  for (const part of formatter(timeZone).formatToParts(now)) if (part.type !== "literal") p[part.type] = Number(part.value);
  return Date.UTC(p.year!, p.month! - 1, p.day!, p.hour!, p.minute!, p.second!);
}

/** The zone's UTC offset in ms at an instant (sub-second part of `now` ignored). */
function offsetAt(now: number, timeZone: string): number {
  return wallClockAsUtc(now, timeZone) - Math.floor(now / 1000) * 1000;
}

/** The local calendar date and time at `now` in `timeZone`. */
export function localParts(now: number, timeZone: string): LocalParts {
  const d = new Date(wallClockAsUtc(now, timeZone));
  return {
    year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate(),
    hour: d.getUTCHours(), minute: d.getUTCMinutes(), weekday: d.getUTCDay(),
  };
}

/**
 * The instant a local wall-clock time happens on a local date. Guess the offset from instants around the target read
 * as UTC, apply each, and keep those the zone confirms: two confirmed is a fall-back overlap (take the first), none is
 * a spring-forward gap (bisect to the transition, the first instant after the gap).
 */
export function zonedTimeToEpoch(date: LocalDate, hhmm: string, timeZone: string): number {
  const { hour, minute } = parseHhmm(hhmm);
  const target = Date.UTC(date.year, date.month - 1, date.day, hour, minute);
  const offsets = [...new Set([target - DAY_MS, target, target + DAY_MS].map((t) => offsetAt(t, timeZone)))];
  const confirmed = offsets.filter((o) => offsetAt(target - o, timeZone) === o).map((o) => target - o);
  if (confirmed.length > 0) return Math.min(...confirmed);
  let lo = target - Math.max(...offsets);
  let hi = target - Math.min(...offsets);
  const after = offsetAt(hi, timeZone);
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (offsetAt(mid, timeZone) === after) hi = mid;
    else lo = mid;
  }
  return hi;
}

export function addDays(date: LocalDate, days: number): LocalDate {
  const d = new Date(Date.UTC(date.year, date.month - 1, date.day + days));
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate() };
}

/** The next occurrence of local `hhmm` strictly after `now` (for the 23:00 distillation and 02:00 backup jobs). */
export function nextDailyAt(hhmm: string, timeZone: string, now: number): number {
  parseHhmm(hhmm);
  const today = localParts(now, timeZone);
  for (let days = 0; ; days++) {
    const at = zonedTimeToEpoch(addDays(today, days), hhmm, timeZone);
    if (at > now) return at;
  }
}

