import type { Clock } from "../protocol/index.js";
import type { CycleScheduler } from "./cycle-scheduler.js";
import type { AgentDiscipline } from "./discipline.js";

export interface CycleGateOptions {
  agentId: string;
  /** the runtime's one timer for every host's deadlines */
  scheduler: CycleScheduler;
  clock: Clock;
  /** the agent's breaker and quiet hours (created after the gate; read when a check runs) */
  discipline: () => AgentDiscipline;
  /** whether the chart is idle, and when its next cycle is due */
  chart: () => { idle: boolean; nextCycleAt: number };
  /** runs the cycle now, as taken at `at` */
  tick: (at: number) => void;
  /** the agent's cycle: a tick on schedule (less than a cycle late) is taken at the time it was due */
  cycleMs?: number;
}

/**
 * When an agent's next cycle runs. No timer of its own: at most two entries in the runtime's scheduler — the next check
 * (armed when the chart comes back to idle, on a wake-up, at the end of quiet hours) and, while the breaker is open, its
 * cooldown's end (the one TICK that half-opens it). Every deadline is absolute and re-read at each check, so a check
 * that comes early or twice does no harm, and missed cycles and wake-ups that came while busy coalesce into one tick.
 */
export class CycleGate {
  private wakeRequested = false;
  private stopped = false;
  private readonly checkKey: string;
  private readonly cooldownKey: string;

  constructor(private readonly options: CycleGateOptions) {
    // agent ids are unique within a runtime, so are these keys
    this.checkKey = `${options.agentId}:cycle`;
    this.cooldownKey = `${options.agentId}:breaker`;
  }

  /** A wake-up (`fleet wake`, `<prefix>.wake.<agent>`): the cycle runs now, or as soon as the agent is idle and may. */
  wake(): void {
    this.wakeRequested = true;
    this.check();
  }

  /** The chart came back to idle: the next cycle is due at its time, at once if that passed or a wake-up came meanwhile. */
  onIdle(nextCycleAt: number): void {
    this.schedule(this.wakeRequested ? this.options.clock.now() : nextCycleAt);
  }

  /** The breaker changed: re-arm its cooldown, and look again from the scheduler (a closed breaker may release a cycle). */
  onBreakerChange(): void {
    this.armCooldown();
    this.schedule(this.options.clock.now());
  }

  /** Runs the cycle if one is due and may run, else arms the scheduler for when it can. */
  check(): void {
    if (this.stopped) return;
    const chart = this.options.chart();
    // busy: reaching idle arms the next check
    if (!chart.idle) return;
    const now = this.options.clock.now();
    const due = this.wakeRequested ? now : chart.nextCycleAt;
    if (now < due) return this.schedule(due);
    // quiet hours: the tick (or wake-up) comes once, when they end; an open breaker: when it closes (onBreakerChange)
    const allowedAt = this.options.discipline().cycleAllowedAt(now);
    if (allowedAt === undefined) return this.options.scheduler.cancel(this.checkKey);
    if (now < allowedAt) return this.schedule(allowedAt);
    // on schedule, the cycle is taken at the time it was due: a timer a few ms late must not push every later cycle (the
    // chart counts the next from it), so cycles keep their phase; a wake-up, or a cycle long overdue (busy, quiet hours,
    // a breaker), starts the count again from now
    const onSchedule = !this.wakeRequested && now - due < (this.options.cycleMs ?? 0);
    this.wakeRequested = false;
    this.options.tick(onSchedule ? due : now);
  }

  /** The breaker has no timer of its own: an open one gets its TICK when its cooldown ends, and half-opens. */
  armCooldown(): void {
    const at = this.options.discipline().cooldownEndsAt();
    if (at === undefined || this.stopped) return this.options.scheduler.cancel(this.cooldownKey);
    this.options.scheduler.schedule(this.cooldownKey, at, () => {
      if (this.stopped) return;
      this.options.discipline().tick(this.options.clock.now());
      // still open (the clock moved back): arm again; a transition re-armed through onBreakerChange already
      this.armCooldown();
    });
  }

  stop(): void {
    this.stopped = true;
    this.options.scheduler.cancel(this.checkKey);
    this.options.scheduler.cancel(this.cooldownKey);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.stop();
  }

  private schedule(at: number): void {
    if (!this.stopped) this.options.scheduler.schedule(this.checkKey, at, () => this.check());
  }
}
