import { createActor, type Actor } from "xstate";
import type { Logger } from "pino";
import type { DailyWindow } from "../config/index.js";
import type { Clock } from "../protocol/index.js";
import type { CycleScheduler } from "./cycle-scheduler.js";
import { quietHoursMachine, type QuietHoursEmitted } from "./quiet-hours.js";

/** What the fleet's quiet hours are now, as `fleet status` shows them. */
export interface QuietHoursView {
  state: "active" | "quiet";
  /** epoch ms of the next change; null: the window is never quiet */
  nextBoundaryAt: number | null;
}

export interface QuietHoursRunnerOptions {
  window: DailyWindow;
  clock: Clock;
  /** the process's one timer for deadlines; the chart gets its TICK at each boundary from it */
  scheduler: Pick<CycleScheduler, "schedule" | "cancel">;
  log: Logger;
}

const TIMER_KEY = "quiet-hours:boundary";

/**
 * The quiet-hours chart, running: the fleet's long-lived decision whether it is quiet. The chart has no timers (they
 * would be lost on restore), so this arms one TICK for its next boundary, logs every transition once, and tells
 * subscribers (cycles pause, held work resumes, the scheduler's record) when it changes.
 *
 * `at(now)` TICKs before it answers: a boundary timer that fires late (a busy event loop, a suspended laptop) must not
 * let a cycle through that the window already holds, so the answer is never staler than the caller's own clock.
 */
export class QuietHoursRunner {
  private readonly actor: Actor<typeof quietHoursMachine>;
  private readonly listeners = new Set<(event: QuietHoursEmitted) => void>();
  private stopped = false;

  constructor(private readonly options: QuietHoursRunnerOptions) {
    this.actor = createActor(quietHoursMachine, { input: { window: options.window, now: options.clock.now() } });
    const announce = (event: QuietHoursEmitted) => {
      const until = event.type === "quietHours.began" ? event.until : event.nextQuietAt;
      options.log.info({ quietHours: event.type === "quietHours.began" ? "quiet" : "active", at: iso(event.at), next: until === null ? null : iso(until) }, "quiet hours changed");
      for (const listener of this.listeners) listener(event);
    };
    this.actor.on("quietHours.began", announce);
    this.actor.on("quietHours.ended", announce);
  }

  start(): this {
    this.actor.start();
    const view = this.view();
    this.options.log.info({ quietHours: view.state, next: view.nextBoundaryAt === null ? null : iso(view.nextBoundaryAt) }, "quiet hours running");
    this.arm();
    return this;
  }

  /** The state at `now` (TICKs the chart first). */
  at(now: number): QuietHoursView {
    if (!this.stopped) this.actor.send({ type: "TICK", now });
    return this.view();
  }

  view(): QuietHoursView {
    const snap = this.actor.getSnapshot();
    return { state: snap.value === "quiet" ? "quiet" : "active", nextBoundaryAt: snap.context.nextBoundaryAt };
  }

  /** Called on every transition, after it is logged; returns the unsubscribe. */
  onChange(listener: (event: QuietHoursEmitted) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  stop(): void {
    this.stopped = true;
    this.options.scheduler.cancel(TIMER_KEY);
    this.actor.stop();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.stop();
  }

  private arm(): void {
    const next = this.view().nextBoundaryAt;
    if (next === null || this.stopped) return;
    this.options.scheduler.schedule(TIMER_KEY, next, () => {
      if (this.stopped) return;
      this.at(this.options.clock.now());
      // early (the clock moved back) or on time: either way the chart's nextBoundaryAt is the next deadline
      this.arm();
    });
  }
}

const iso = (at: number): string => new Date(at).toISOString();
