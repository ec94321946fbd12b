import { addDays, formatter, localParts, parseHhmm, zonedTimeToEpoch } from "./local-time.js";

/**
 * Quiet hours as pure functions of (window, now): no clock is read here; the host passes `now` in epoch ms.
 *
 * Wall-clock times are resolved the way an operator expects across DST: a time skipped by spring-forward means the
 * first instant after the gap (02:30 on a 02:00→03:00 day is 03:00); a time repeated by fall-back means its first
 * occurrence. A boundary therefore happens once a day, so a window never re-opens in the repeated hour.
 */

export interface DailyWindow {
  /** local "HH:MM" when quiet begins */
  start: string;
  /** local "HH:MM" when quiet ends; may be before `start` (the window crosses midnight); equal to it means never quiet */
  end: string;
  /** IANA time-zone name, e.g. "Europe/Berlin" */
  timeZone: string;
}

/** Checks a window once: bad "HH:MM" or an unknown zone is CONFIG_INVALID. Returns whether it can ever be quiet. */
export function validateWindow(window: DailyWindow): boolean {
  const start = parseHhmm(window.start);
  const end = parseHhmm(window.end);
  formatter(window.timeZone);
  return start.hour !== end.hour || start.minute !== end.minute;
}

export type Boundary = { at: number; quiet: boolean };

/** Every boundary from the day before `now` to the day after, in time order, zero-length windows dropped. */
function boundaries(window: DailyWindow, now: number): Boundary[] {
  const today = localParts(now, window.timeZone);
  const out: Boundary[] = [];
  for (const days of [-1, 0, 1]) {
    const date = addDays(today, days);
    out.push({ at: zonedTimeToEpoch(date, window.start, window.timeZone), quiet: true });
    out.push({ at: zonedTimeToEpoch(date, window.end, window.timeZone), quiet: false });
  }
  // on a tie the end wins: a window whose start and end both fall into one spring-forward gap never opens
  out.sort((a, b) => a.at - b.at || Number(b.quiet) - Number(a.quiet));
  return out.filter((b, i) => !(b.quiet && out[i + 1]?.at === b.at));
}

/** True when `now` falls in [start, end) of the window, read on the zone's wall clock. */
export function isQuiet(window: DailyWindow, now: number): boolean {
  if (!validateWindow(window)) return false;
  return boundaries(window, now).filter((b) => b.at <= now).at(-1)?.quiet ?? false;
}

/** The next instant the state changes and the state it enters; `at` is Infinity for a window that is never quiet. */
export function nextBoundary(window: DailyWindow, now: number): Boundary {
  if (!validateWindow(window)) return { at: Number.POSITIVE_INFINITY, quiet: false };
  const quiet = isQuiet(window, now);
  const next = boundaries(window, now).find((b) => b.at > now && b.quiet !== quiet);
  // boundaries span the day before to the day after, so one always follows now
  return next ?? { at: Number.POSITIVE_INFINITY, quiet };
}

/** When to deliver a notification to a principal with this window: the end of quiet, else at once. Never drops. */
export function deferUntil(window: DailyWindow, now: number): number {
  return isQuiet(window, now) ? nextBoundary(window, now).at : now;
}
