import { createActor, type Actor } from "xstate";
import type { Logger } from "pino";
import { allowsWork, breakerMachine, breakerSummary, type BreakerSummary } from "./breaker-machine.js";
import type { QuietHoursRunner } from "./quiet-hours-runner.js";

/**
 * The operating discipline one agent runs under: its circuit breaker (no work while open, one trial task when half-open)
 * and the fleet's quiet hours (no cycles inside the window; tasks wait through the model-work gate instead). Both are charts: the
 * breaker is this agent's, the quiet-hours chart is the process's running one; this binds them to the host's clock and
 * persistence.
 */
export class AgentDiscipline {
  private readonly breaker: Actor<typeof breakerMachine>;

  constructor(
    private readonly options: {
      /** the running quiet-hours chart the cycles pause by */
      quietHours: Pick<QuietHoursRunner, "at">;
      now: () => number;
      log: Logger;
      /** the breaker snapshot persisted in the agent's record, if any */
      restored: unknown;
      /** called when the breaker changes, so the record is rewritten at once */
      onChange: () => void;
    },
  ) {
    this.breaker = this.createBreaker(options.restored);
    this.breaker.on("*", (event) => options.log.warn({ breaker: event.type, ...("openUntil" in event ? { openUntil: new Date(event.openUntil).toISOString() } : {}) }, "circuit breaker"));
    // XState notifies after every event, changed or not (a TICK that finds the cooldown not over): rewrite the record only
    // on a real change
    let last = this.breaker.getSnapshot();
    this.breaker.subscribe((snap) => {
      if (snap === last) return;
      const changed = snap.value !== last.value || snap.context.consecutiveFailures !== last.context.consecutiveFailures || snap.context.trialInFlight !== last.context.trialInFlight;
      last = snap;
      if (changed) options.onChange();
    });
    this.breaker.start();
    // a trial that was running when the process died did not succeed: count it as failed instead of waiting forever
    const snap = this.breaker.getSnapshot();
    if (snap.value === "halfOpen" && snap.context.trialInFlight) this.breaker.send({ type: "TASK_FAILED", now: options.now() });
  }

  private createBreaker(restored: unknown): Actor<typeof breakerMachine> {
    if (restored && typeof restored === "object" && (restored as { status?: unknown }).status === "active") {
      try {
        return createActor(breakerMachine, { input: {}, snapshot: restored as Parameters<typeof createActor<typeof breakerMachine>>[1] extends { snapshot?: infer S } ? S : never });
      } catch (err) {
        this.options.log.warn({ err }, "breaker snapshot could not be restored; starting closed");
      }
    }
    return createActor(breakerMachine, { input: {} });
  }

  /** Cycles may wake models, so they need a closed breaker and a waking fleet. */
  mayRunCycle(now: number): boolean {
    return this.breaker.getSnapshot().value === "closed" && this.options.quietHours.at(now).state === "active";
  }

  /**
   * When a due cycle may run: `now` when it may run now, the end of quiet hours when only they hold it back, undefined
   * while the breaker does (its cooldown and its transitions are the host's cue to ask again).
   */
  cycleAllowedAt(now: number): number | undefined {
    if (this.breaker.getSnapshot().value !== "closed") return undefined;
    const quiet = this.options.quietHours.at(now);
    return quiet.state === "quiet" ? (quiet.nextBoundaryAt ?? Number.POSITIVE_INFINITY) : now;
  }

  /**
   * When an open breaker's cooldown ends: the chart has no timer of its own, so the host sends `tick` then and the
   * breaker half-opens. Undefined unless open.
   */
  cooldownEndsAt(): number | undefined {
    const snap = this.breaker.getSnapshot();
    return snap.value === "open" ? (snap.context.openUntil ?? 0) : undefined;
  }

  /** False while the breaker holds tasks back: the task consumer keeps such a task, with its claim, until it is true. */
  mayTakeTask(): boolean {
    return allowsWork(this.breaker.getSnapshot());
  }

  tick(now: number): void {
    this.breaker.send({ type: "TICK", now });
  }

  taskStarted(): void {
    this.breaker.send({ type: "TASK_STARTED", now: this.options.now() });
  }

  taskSucceeded(): void {
    this.breaker.send({ type: "TASK_SUCCEEDED", now: this.options.now() });
  }

  taskFailed(): void {
    this.breaker.send({ type: "TASK_FAILED", now: this.options.now() });
  }

  /** The task waits (quiet hours, a spent budget): no failure, and a half-open trial is free again. */
  taskHeld(): void {
    this.breaker.send({ type: "TASK_HELD", now: this.options.now() });
  }

  reset(): BreakerSummary {
    this.breaker.send({ type: "RESET", now: this.options.now() });
    return this.summary();
  }

  summary(): BreakerSummary {
    return breakerSummary(this.breaker.getSnapshot());
  }

  persisted(): unknown {
    return this.breaker.getPersistedSnapshot();
  }

  stop(): void {
    this.breaker.stop();
  }
}
