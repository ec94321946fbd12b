import type { KV } from "@nats-io/kv";
import type { Logger } from "pino";
import { localParts, nextDailyAt } from "../config/index.js";
import { LastRun } from "./last-run.js";
import { FleetError, type Clock, type CodecName } from "../protocol/index.js";

/** What the job needs to know of one agent's distilled day (memory/distiller.ts's DistillResult is one). */
export interface DistilledDay {
  status: "applied" | "empty";
  alreadyDone: boolean;
  added: readonly string[];
  replaced: readonly unknown[];
  dropped: readonly string[];
  pruned: number;
}

export interface NightlyDistillationOptions {
  kv: { schedules: KV };
  codec: CodecName;
  /** every agent of the config */
  agents: readonly string[];
  /** `memory.distillAt`, local time in the fleet's time zone */
  at: string;
  timeZone: string;
  /** distils one agent's day; the host binds it to `distillDay` and its stores */
  distill: (agentId: string, day: string) => Promise<DistilledDay>;
  clock: Clock;
  log: Logger;
  /** a failed agent is tried again after each of these delays in turn, then given up for the day */
  retryDelaysMs?: readonly number[];
  tickMs?: number;
}

export interface DistillationSummary {
  day: string;
  dueAt: number;
  applied: string[];
  empty: string[];
  failed: { agentId: string; error: string }[];
}

type AgentRun = { attempts: number; nextAt: number; outcome?: "applied" | "empty" | "failed"; error?: string };
type Run = { dueAt: number; day: string; agents: Map<string, AgentRun> };

const RECORD_KEY = "distill.nightly";
const DEFAULT_RETRY_DELAYS_MS = [60_000, 5 * 60_000, 15 * 60_000, 60 * 60_000];
const HALF_DAY_MS = 43_200_000;
const pad = (n: number): string => String(n).padStart(2, "0");

/**
 * The nightly distillation (23:00 by default, inside quiet hours so the day's log is nearly complete): distils every
 * agent's day at `memory.distillTier` (capable by default; the host binds it into `distill`). Modelled on the nightly backup: the last due time run is kept in KV `schedules`, so a
 * restarted scheduler does not run a night twice and a night missed while down is made up once. It is recorded only when
 * every agent of the night is settled (distilled, empty, or given up after its retries), so a scheduler that dies
 * mid-run runs the night again — cheaply, since a distilled day returns at once without a model call.
 */
export class NightlyDistillation {
  private readonly log: Logger;
  private readonly lastRun: LastRun;
  private run: Run | undefined;
  private running: Promise<DistillationSummary | undefined> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: NightlyDistillationOptions) {
    this.log = options.log.child({ component: "nightly-distillation" });
    this.lastRun = new LastRun(options.kv.schedules, RECORD_KEY, options.codec);
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.tick(), this.options.tickMs ?? 30_000);
    void this.tick();
  }

  /** Stops ticking and waits for a distillation in flight (its record says where it got to if it is cut short). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => undefined);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** One step: starts the night's run when it is due, attempts the agents due for an attempt; a summary once it settles. */
  tick(): Promise<DistillationSummary | undefined> {
    if (this.running) return Promise.resolve(undefined);
    const running = this.step()
      .catch((err: unknown) => {
        this.log.error({ err }, "nightly distillation could not run; it will be tried at the next tick");
        return undefined;
      })
      .finally(() => (this.running = undefined));
    this.running = running;
    return running;
  }

  private async step(): Promise<DistillationSummary | undefined> {
    const run = this.run ?? (await this.due());
    if (!run) return undefined;
    this.run = run;
    const retryDelays = this.options.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS;
    for (const [agentId, state] of run.agents) {
      if (state.outcome || state.nextAt > this.options.clock.now()) continue;
      const log = this.log.child({ agentId, day: run.day });
      try {
        const done = await this.options.distill(agentId, run.day);
        state.outcome = done.status;
        log.info(
          { status: done.status, alreadyDone: done.alreadyDone, added: done.added.length, replaced: done.replaced.length, dropped: done.dropped.length, pruned: done.pruned },
          "agent's day distilled",
        );
      } catch (err) {
        const error = FleetError.from(err);
        state.error = `${error.code}: ${error.message}`;
        const delay = retryDelays[state.attempts];
        state.attempts += 1;
        if (delay === undefined) {
          state.outcome = "failed";
          log.error({ code: error.code, reason: error.message, attempts: state.attempts }, "distillation failed for good; the day is left undistilled");
        } else {
          state.nextAt = this.options.clock.now() + delay;
          log.warn({ code: error.code, reason: error.message, attempts: state.attempts, retryAt: state.nextAt }, "distillation failed; it will be retried");
        }
      }
    }
    if ([...run.agents.values()].some((s) => !s.outcome)) return undefined;
    await this.lastRun.set(run.dueAt);
    this.run = undefined;
    const summary: DistillationSummary = { day: run.day, dueAt: run.dueAt, applied: [], empty: [], failed: [] };
    for (const [agentId, s] of run.agents) {
      if (s.outcome === "applied") summary.applied.push(agentId);
      else if (s.outcome === "empty") summary.empty.push(agentId);
      else summary.failed.push({ agentId, error: s.error ?? "unknown" });
    }
    const report = { day: summary.day, applied: summary.applied.length, empty: summary.empty.length, failed: summary.failed };
    if (summary.failed.length > 0) this.log.error(report, "nightly distillation finished with failures");
    else this.log.info(report, "nightly distillation finished");
    return summary;
  }

  /** The night to run now, if one is due: the latest due time since the last run, so downtime is made up once. */
  private async due(): Promise<Run | undefined> {
    const now = this.options.clock.now();
    const last = await this.lastRun.get();
    if (last === undefined) {
      // first sight of this fleet: nothing was promised for the past
      await this.lastRun.set(now);
      return undefined;
    }
    let due = nextDailyAt(this.options.at, this.options.timeZone, last);
    if (due > now) return undefined;
    for (let next = nextDailyAt(this.options.at, this.options.timeZone, due); next <= now; next = nextDailyAt(this.options.at, this.options.timeZone, next)) due = next;
    const day = dayEnding(due, this.options.timeZone);
    this.log.info({ day, agents: this.options.agents.length }, "nightly distillation started");
    return { dueAt: due, day, agents: new Map(this.options.agents.map((id) => [id, { attempts: 0, nextAt: 0 }])) };
  }
}

/**
 * The local day a run at `dueAt` distils: the day that is ending. At 23:00 that is today; a distillAt set just after
 * midnight (00:30) means yesterday, so a due time before local noon belongs to the day before.
 */
export function dayEnding(dueAt: number, timeZone: string): string {
  const local = localParts(dueAt, timeZone);
  const d = local.hour < 12 ? localParts(dueAt - HALF_DAY_MS, timeZone) : local;
  return `${String(d.year).padStart(4, "0")}-${pad(d.month)}-${pad(d.day)}`;
}
