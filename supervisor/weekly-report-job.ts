import type { JetStreamClient } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { Logger } from "pino";
import { TaskStore } from "../actors/index.js";
import { localParts, nextDailyAt, type FleetConfig, type WeeklyReportConfig } from "../config/index.js";
import type { Clock, CodecName, FleetNames, Task } from "../protocol/index.js";
import { buildWeeklyReport, deploymentPools, readUsage, WEEK_MS, weeklyReportText, type WeeklyReport } from "../router/index.js";
import { LastRun } from "./last-run.js";
import { publishNotice } from "./notice.js";

const WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"] as const;
const RECORD_KEY = "report.weekly";

export interface WeeklyReportSource {
  js: JetStreamClient;
  tasks: KV;
  names: FleetNames;
  codec: CodecName;
  config: Pick<FleetConfig, "tiers" | "fleet">;
}

/** Reads the two weeks of USAGE ending at `to` and the tasks they worked for, and builds the report. */
export async function loadWeeklyReport(source: WeeklyReportSource, to: number): Promise<{ report: WeeklyReport; text: string; malformed: number }> {
  const read = await readUsage(source.js, source.names, to - 2 * WEEK_MS, to);
  const tasks = new Map<string, Task>();
  const codecs: CodecName[] = [source.codec, source.codec === "msgpack" ? "json" : "msgpack"];
  const stores = codecs.map((codec) => new TaskStore(source.tasks, source.names, codec));
  const wanted = new Map<string, string>();
  for (const r of read.records) if (r.taskId && r.at >= to - WEEK_MS) wanted.set(r.taskId, r.agentId);
  for (const [taskId, agentId] of wanted) {
    for (const store of stores) {
      const task = await store.get(agentId, taskId).catch(() => undefined);
      if (task) {
        tasks.set(taskId, task);
        break;
      }
    }
  }
  const report = buildWeeklyReport(read.records, tasks, deploymentPools(source.config.tiers), to);
  return { report, text: weeklyReportText(report, source.config.fleet.timeZone), malformed: read.malformed };
}

/** The first `day` at `at` (local, DST-correct) strictly after `after`. */
export function nextWeeklyAt(at: string, day: (typeof WEEKDAYS)[number], timeZone: string, after: number): number {
  let due = nextDailyAt(at, timeZone, after);
  for (let i = 0; i < 7 && WEEKDAYS[localParts(due, timeZone).weekday] !== day; i++) due = nextDailyAt(at, timeZone, due);
  return due;
}

export interface WeeklyReportJobOptions extends WeeklyReportSource {
  schedules: KV;
  weekly: WeeklyReportConfig;
  clock: Clock;
  log: Logger;
}

/**
 * The built-in weekly cost report, run by the scheduler like a cron job: due at its day and time, its last run kept in
 * KV `schedules` (a restarted scheduler does not send a week twice; weeks missed while down coalesce into one report),
 * delivered only where `reports.weekly.delivery` says.
 */
export class WeeklyReportJob {
  private busy = false;
  private readonly lastRun: LastRun;
  private readonly log: Logger;

  constructor(private readonly options: WeeklyReportJobOptions) {
    this.lastRun = new LastRun(options.schedules, RECORD_KEY, options.codec);
    this.log = options.log.child({ component: "weekly-report" });
  }

  /** Runs the report if it is due; returns its text when it ran. */
  async tick(): Promise<string | undefined> {
    if (this.busy) return undefined;
    const { weekly, config } = this.options;
    const now = this.options.clock.now();
    const last = await this.lastRun.get();
    if (last === undefined) {
      // a new job counts from now: nothing before it was due
      await this.lastRun.set(now);
      return undefined;
    }
    const next = (after: number) => nextWeeklyAt(weekly.at, weekly.day, config.fleet.timeZone, after);
    let due = next(last);
    if (due > now) return undefined;
    for (let n = next(due); n <= now; n = next(n)) due = n;
    this.busy = true;
    try {
      const { text } = await loadWeeklyReport(this.options, due);
      if (weekly.delivery !== "none") {
        await publishNotice(this.options.js, this.options.names, this.options.codec, weekly.delivery, { text, jobId: RECORD_KEY, msgId: `${RECORD_KEY}:${due}`, at: now });
      }
      await this.lastRun.set(due);
      this.log.info({ dueAt: new Date(due).toISOString(), delivery: weekly.delivery === "none" ? "none" : weekly.delivery.channel }, "weekly report sent");
      return text;
    } catch (err) {
      this.log.error({ err }, "weekly report failed; it will be retried");
      return undefined;
    } finally {
      this.busy = false;
    }
  }
}
