import { assign, emit, setup, type SnapshotFrom } from "xstate";
import { isQuiet, nextBoundary, validateWindow, type DailyWindow } from "../config/index.js";

export type QuietHoursInput = { window: DailyWindow; now: number };

export interface QuietHoursContext {
  window: DailyWindow;
  /** the `now` of the last TICK (or of the input) */
  now: number;
  /** epoch ms of the next change; absolute, so a restored chart needs only its next TICK. null: never quiet */
  nextBoundaryAt: number | null;
}

export type QuietHoursEvent = { type: "TICK"; now: number };

export type QuietHoursEmitted =
  | { type: "quietHours.began"; at: number; until: number | null }
  | { type: "quietHours.ended"; at: number; nextQuietAt: number | null };

const finite = (at: number): number | null => (Number.isFinite(at) ? at : null);
const nowOf = (context: QuietHoursContext, event: { type: string }): number =>
  event.type === "TICK" ? (event as QuietHoursEvent).now : context.now;

/**
 * The fleet's quiet hours as a chart: active ↔ quiet, driven by the host's `TICK {now}`. Its guards are the pure window
 * functions in config/quiet-window.ts, so the chart and a rule that only asks "is this instant quiet" cannot disagree.
 * No `after` timers: they would run on the actor's clock and be lost on restore. The host can sleep until `nextBoundaryAt` and then TICK.
 */
export const quietHoursMachine = setup({
  types: {
    context: {} as QuietHoursContext,
    events: {} as QuietHoursEvent,
    input: {} as QuietHoursInput,
    emitted: {} as QuietHoursEmitted,
  },
  actions: {
    observe: assign(({ context, event }) => ({ now: event.now, nextBoundaryAt: finite(nextBoundary(context.window, event.now).at) })),
    announceBegan: emit(({ context }) => ({ type: "quietHours.began" as const, at: context.now, until: context.nextBoundaryAt })),
    announceEnded: emit(({ context }) => ({ type: "quietHours.ended" as const, at: context.now, nextQuietAt: context.nextBoundaryAt })),
  },
  guards: {
    quietNow: ({ context, event }) => isQuiet(context.window, nowOf(context, event)),
  },
}).createMachine({
  id: "quietHours",
  context: ({ input }) => {
    validateWindow(input.window);
    return { window: { ...input.window }, now: input.now, nextBoundaryAt: finite(nextBoundary(input.window, input.now).at) };
  },
  initial: "deciding",
  states: {
    deciding: { always: [{ guard: "quietNow", target: "quiet" }, { target: "active" }] },
    active: {
      on: { TICK: [{ guard: "quietNow", target: "quiet", actions: ["observe", "announceBegan"] }, { actions: "observe" }] },
    },
    quiet: {
      on: { TICK: [{ guard: "quietNow", actions: "observe" }, { target: "active", actions: ["observe", "announceEnded"] }] },
    },
  },
});

export type QuietHoursMachine = typeof quietHoursMachine;
export type QuietHoursSnapshot = SnapshotFrom<typeof quietHoursMachine>;
