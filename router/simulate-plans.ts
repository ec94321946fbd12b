import { isQuiet, nextDue, nextMidnight, scheduleOf, type AgentConfig, type FleetConfig } from "../config/index.js";

/*
 * How many plans the orchestrator makes in a day, from the config's own timeline rather than an assumption about how
 * wake-ups fall: over one week (a Monday at local midnight on, so weekday schedules count their share) every run of
 * another agent's duties and pipeline jobs is placed at its due time, each wake-up with its probability:
 * - a run of an agent that reports to the orchestrator sends it a note when it ends: certain (and each working cycle of
 *   such an agent, at workShare);
 * - a run of a watching pipeline (one with finding rules) finds something at findingRate.
 * A wake-up is taken by the orchestrator's first cycle after it (cycles every cycleMinutes from midnight; none in quiet
 * hours, when planning waits, so the night's wake-ups make one plan in the morning). A cycle plans once however many
 * wake-ups it took, so its expected plans are 1 − Π(1 − p) over them. The week's sum ÷ 7 is the day's.
 */

const WEEK_DAYS = 7;
const DAY_MS = 86_400_000;
// the Monday runsPerDay counts from too (config/schedule.ts): no DST change in the week in either hemisphere's usual zones
const REFERENCE_MONDAY_NOON_UTC = Date.UTC(2026, 0, 4, 12);

export interface PlanTimelineAssumptions {
  workShare: number;
  findingRate: number;
}

interface WakeUp {
  at: number;
  p: number;
}

/** The orchestrator's expected plans per day. */
export function plansPerDay(config: FleetConfig, orchestrator: AgentConfig, a: PlanTimelineAssumptions): number {
  const tz = config.fleet.timeZone;
  const start = nextMidnight(REFERENCE_MONDAY_NOON_UTC, tz);
  const end = start + WEEK_DAYS * DAY_MS;
  const quiet = { ...config.fleet.quietHours, timeZone: tz };
  const wakeUps = wakeUpsOf(config, orchestrator.id, a, start, end);
  if (wakeUps.length === 0) return 0;
  wakeUps.sort((x, y) => x.at - y.at);

  const cycleMs = orchestrator.cycleMinutes * 60_000;
  let plans = 0;
  let next = 0;
  // the cycle after the week's end takes what the week's last cycle left, as the next week's first would
  for (let at = start; at <= end + cycleMs && next < wakeUps.length; at += cycleMs) {
    if (isQuiet(quiet, at)) continue;
    let none = 1;
    // a run due exactly at a cycle's tick ends after it: the next cycle takes it
    while (next < wakeUps.length && wakeUps[next]!.at < at) none *= 1 - wakeUps[next++]!.p;
    plans += 1 - none;
  }
  return plans / WEEK_DAYS;
}

function wakeUpsOf(config: FleetConfig, orchestrator: string, a: PlanTimelineAssumptions, start: number, end: number): WakeUp[] {
  const tz = config.fleet.timeZone;
  const watches = (pipeline: string) => config.pipelines[pipeline]?.steps.some((step) => "findings" in step && (step.findings?.length ?? 0) > 0) ?? false;
  const out: WakeUp[] = [];
  const place = (item: Parameters<typeof scheduleOf>[0], p: number) => {
    if (p <= 0) return;
    const schedule = scheduleOf(item);
    for (let due = nextDue(schedule, tz, start - 1); due < end; due = nextDue(schedule, tz, due)) out.push({ at: due, p });
  };
  for (const agent of config.agents) {
    if (agent.id === orchestrator) continue;
    const reports = agent.reportsTo === orchestrator;
    const jobs = config.cron.filter((job) => job.agent === agent.id && job.tool === undefined);
    for (const d of agent.duties) place(d, reports ? 1 : watches(d.pipeline) ? a.findingRate : 0);
    for (const job of jobs) place(job, reports ? 1 : job.pipeline !== undefined && watches(job.pipeline) ? a.findingRate : 0);
    if (reports && a.workShare > 0) place({ every: agent.cycleMinutes * 60_000 }, a.workShare);
  }
  return out;
}
