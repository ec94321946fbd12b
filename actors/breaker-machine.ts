import { assign, emit, setup, type SnapshotFrom } from "xstate";

/**
 * The per-agent circuit breaker: closed → open after `threshold` consecutive task failures (a held task, one that waits
 * for the end of quiet hours or for midnight after a spent budget, is no failure: `TASK_HELD` counts nothing); open waits out a cooldown
 * (5, 10, 20, 40, then 60 min for every further re-open) → halfOpen, which lets exactly one trial task through: its
 * success closes the breaker, its failure re-opens it with the next cooldown.
 *
 * Time: the chart has no clock and no `after` timers. Every event carries `now` (epoch ms from the host's injected
 * clock), the deadline is kept absolute in `openUntil`, and the host sends `TICK {now}` periodically. An `after` delay
 * would run on a second clock (the actor's) and is lost when a snapshot is restored, so the TICK would be needed anyway;
 * with TICK alone a restored breaker behaves exactly like one that never stopped.
 *
 * Effects: none. The chart emits `breaker.opened`, `breaker.halfOpened` and `breaker.closed`; the host subscribes with
 * `actor.on(...)` to record the state in the agents KV and tell the operator.
 */

export const DEFAULT_COOLDOWNS_MINUTES: readonly number[] = [5, 10, 20, 40, 60];
export const DEFAULT_THRESHOLD = 3;
const MINUTE_MS = 60_000;

export interface BreakerInput {
  /** cooldown before each half-open trial, by re-open count; the last one repeats for every further re-open */
  cooldownsMinutes?: number[];
  /** consecutive failures that open a closed breaker */
  threshold?: number;
}

export interface BreakerContext {
  cooldownsMs: number[];
  threshold: number;
  /** failures in a row while closed; a success resets it */
  consecutiveFailures: number;
  /** re-opens since the breaker last closed: the index into `cooldownsMs` */
  reopenCount: number;
  /** epoch ms when an open breaker may let a trial through; absolute so it survives a restart */
  openUntil: number | undefined;
  /** halfOpen only: the one trial task has started and its outcome is not in yet */
  trialInFlight: boolean;
}

export type BreakerEvent =
  | { type: "TASK_STARTED"; now: number }
  | { type: "TASK_SUCCEEDED"; now: number }
  | { type: "TASK_FAILED"; now: number }
  /**
   * the task started and then waits (quiet hours, a spent budget): neither a success nor a failure, so it counts
   * nothing; a half-open breaker's trial is over and the next task may be the trial instead
   */
  | { type: "TASK_HELD"; now: number }
  | { type: "TICK"; now: number }
  /** the operator's `fleet breaker reset <agent>` */
  | { type: "RESET"; now: number };

export type BreakerEmitted =
  | { type: "breaker.opened"; openUntil: number; reopenCount: number; consecutiveFailures: number }
  | { type: "breaker.halfOpened"; at: number }
  | { type: "breaker.closed"; at: number; reason: "trial-succeeded" | "reset" };

function cooldownMs(context: BreakerContext): number {
  const { cooldownsMs, reopenCount } = context;
  return cooldownsMs[Math.min(reopenCount, cooldownsMs.length - 1)] ?? DEFAULT_COOLDOWNS_MINUTES[0]! * MINUTE_MS;
}

const CLOSED = { consecutiveFailures: 0, reopenCount: 0, openUntil: undefined, trialInFlight: false };

export const breakerMachine = setup({
  types: {
    context: {} as BreakerContext,
    events: {} as BreakerEvent,
    input: {} as BreakerInput,
    emitted: {} as BreakerEmitted,
  },
  actions: {
    countFailure: assign({ consecutiveFailures: ({ context }) => context.consecutiveFailures + 1 }),
    clearFailures: assign({ consecutiveFailures: 0 }),
    // the first open uses the first cooldown (reopenCount is 0 while closed)
    open: assign({ openUntil: ({ context, event }) => event.now + cooldownMs(context), trialInFlight: false }),
    reopen: assign(({ context, event }) => {
      const next = { ...context, reopenCount: context.reopenCount + 1 };
      return { reopenCount: next.reopenCount, openUntil: event.now + cooldownMs(next), trialInFlight: false };
    }),
    startTrial: assign({ trialInFlight: true }),
    endTrial: assign({ trialInFlight: false }),
    close: assign(CLOSED),
    announceOpened: emit(({ context }) => ({
      type: "breaker.opened" as const,
      openUntil: context.openUntil ?? 0,
      reopenCount: context.reopenCount,
      consecutiveFailures: context.consecutiveFailures,
    })),
    announceHalfOpened: emit(({ event }) => ({ type: "breaker.halfOpened" as const, at: event.now })),
    announceClosed: emit(({ event }) => ({
      type: "breaker.closed" as const,
      at: event.now,
      reason: event.type === "RESET" ? ("reset" as const) : ("trial-succeeded" as const),
    })),
  },
  guards: {
    reachesThreshold: ({ context }) => context.consecutiveFailures + 1 >= context.threshold,
    cooldownOver: ({ context, event }) => context.openUntil === undefined || event.now >= context.openUntil,
    noTrialYet: ({ context }) => !context.trialInFlight,
    // outcomes of tasks that started before the breaker opened are not the trial's, and decide nothing
    trialInFlight: ({ context }) => context.trialInFlight,
  },
}).createMachine({
  id: "breaker",
  context: ({ input }) => {
    const minutes = input.cooldownsMinutes?.filter((m) => Number.isFinite(m) && m >= 0) ?? [];
    return {
      cooldownsMs: (minutes.length > 0 ? minutes : DEFAULT_COOLDOWNS_MINUTES).map((m) => m * MINUTE_MS),
      threshold: Math.max(1, Math.floor(input.threshold ?? DEFAULT_THRESHOLD)),
      ...CLOSED,
    };
  },
  initial: "closed",
  on: {
    RESET: { target: ".closed", actions: ["close", "announceClosed"] },
  },
  states: {
    closed: {
      on: {
        TASK_FAILED: [
          { guard: "reachesThreshold", target: "open", actions: ["countFailure", "open", "announceOpened"] },
          { actions: "countFailure" },
        ],
        TASK_SUCCEEDED: { actions: "clearFailures" },
      },
    },
    open: {
      on: {
        TICK: { guard: "cooldownOver", target: "halfOpen", actions: "announceHalfOpened" },
      },
    },
    halfOpen: {
      on: {
        TASK_STARTED: { guard: "noTrialYet", actions: "startTrial" },
        TASK_SUCCEEDED: { guard: "trialInFlight", target: "closed", actions: ["close", "announceClosed"] },
        TASK_FAILED: { guard: "trialInFlight", target: "open", actions: ["reopen", "announceOpened"] },
        TASK_HELD: { guard: "trialInFlight", actions: "endTrial" },
      },
    },
  },
});

export type BreakerMachine = typeof breakerMachine;
export type BreakerSnapshot = SnapshotFrom<typeof breakerMachine>;
export type BreakerView = Pick<BreakerSnapshot, "value" | "context">;

/** Whether the host may start a task now: closed yes, open no, halfOpen only the one trial. */
export function allowsWork(snapshot: BreakerView): boolean {
  if (snapshot.value === "closed") return true;
  if (snapshot.value === "halfOpen") return !snapshot.context.trialInFlight;
  return false;
}

export interface BreakerSummary {
  state: "closed" | "open" | "half-open";
  consecutiveFailures: number;
  openUntil?: number;
  reopenCount: number;
}

/** What `fleet status` shows for an agent's breaker. */
export function breakerSummary(snapshot: BreakerView): BreakerSummary {
  const { consecutiveFailures, openUntil, reopenCount } = snapshot.context;
  const state = snapshot.value === "halfOpen" ? "half-open" : snapshot.value === "open" ? "open" : "closed";
  return { state, consecutiveFailures, reopenCount, ...(state !== "closed" && openUntil !== undefined ? { openUntil } : {}) };
}
