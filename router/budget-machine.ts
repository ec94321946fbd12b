import { assign, emit, setup, type SnapshotFrom } from "xstate";
import type { BudgetState } from "../protocol/index.js";
import { fleetDay, nextMidnight } from "../config/index.js";

/**
 * A daily budget (one agent's, or the fleet's) as a chart: normal → downgraded at `downgradeAt` of the cap → nanoOnly
 * at the cap, and back to normal at the fleet's local midnight.
 *
 * The state is always a pure function of the day's spend (`budgetStateOf`), and the ledger (budget-ledger.ts) admits
 * calls by the same function, so the chart can never show a state the ledger does not enforce. Spend counts live
 * reservations too, and a released reservation lowers it, so within a day the chart can also step back down.
 *
 * Time: no clock and no `after` timers. Every event carries `now` from the host's injected clock and the next reset is
 * kept absolute in `resetAt`; an `after` delay would run on the actor's own clock and be lost when a snapshot is
 * restored, while with TICK alone a restored chart resets exactly like one that never stopped.
 *
 * Effects: none. It emits `budget.stateChanged` and `budget.reset`; the host logs them and tells the operator.
 */

/**
 * Dollars are kept to a nano-dollar so that sums of prices (0.1 + 0.2) and products of shares (3 × 0.8) compare as the
 * operator wrote them: without it 2.4 of a $3 cap would read as under 80 %.
 */
export function roundUsd(usd: number): number {
  return Math.round(usd * 1e9) / 1e9;
}

/** The state a spend (spent + live reservations) puts a cap in. Comparisons are `>=`: exactly 80 % is downgraded. */
export function budgetStateOf(spentUsd: number, capUsd: number, downgradeAt: number): BudgetState {
  const spent = roundUsd(spentUsd);
  if (spent >= roundUsd(capUsd)) return "nanoOnly";
  if (spent >= roundUsd(capUsd * downgradeAt)) return "downgraded";
  return "normal";
}

const SEVERITY: Record<BudgetState, number> = { normal: 0, downgraded: 1, nanoOnly: 2 };

/** The more restrictive of two states: a call must pass both the agent's cap and the fleet's. */
export function stricter(a: BudgetState, b: BudgetState): BudgetState {
  return SEVERITY[b] > SEVERITY[a] ? b : a;
}

export interface BudgetInput {
  capUsd: number;
  /** share of the cap at which every tier is downgraded one step, in (0, 1) */
  downgradeAt: number;
  /** IANA name of the fleet's time zone: its midnight is the reset */
  timeZone: string;
  /** epoch ms from the host's clock when the chart starts */
  now: number;
  /** the day's spend so far (spent + reserved), when a host restarts mid-day; default 0 */
  spentUsd?: number;
}

export interface BudgetContext {
  capUsd: number;
  /** spent + live reservations today */
  spentUsd: number;
  downgradeAt: number;
  timeZone: string;
  /** the fleet day ("yyyy-mm-dd") the spend belongs to */
  day: string;
  /** epoch ms of the next local midnight; absolute so it survives a restore */
  resetAt: number;
  /** the `now` of the last event */
  now: number;
}

export type BudgetEvent =
  /** the ledger's current spend (spent + reserved) for the day of `now` */
  | { type: "SPEND_CHANGED"; spentUsd: number; now: number }
  | { type: "TICK"; now: number };

export type BudgetEmitted =
  | { type: "budget.stateChanged"; from: BudgetState; to: BudgetState; spentUsd: number; capUsd: number; day: string; at: number }
  | { type: "budget.reset"; day: string; previousDay: string; previousSpentUsd: number; at: number; nextResetAt: number };

const dayStart = (timeZone: string, now: number) => ({ day: fleetDay(now, timeZone), resetAt: nextMidnight(now, timeZone) });

export const budgetMachine = setup({
  types: {
    context: {} as BudgetContext,
    events: {} as BudgetEvent,
    input: {} as BudgetInput,
    emitted: {} as BudgetEmitted,
  },
  actions: {
    // a reset comes first, so an event after midnight is booked on the new day
    rollOver: assign(({ context, event }) => ({ spentUsd: 0, now: event.now, ...dayStart(context.timeZone, event.now) })),
    announceReset: emit(({ context, event }) => {
      const next = dayStart(context.timeZone, event.now);
      return {
        type: "budget.reset" as const,
        day: next.day,
        previousDay: context.day,
        previousSpentUsd: context.spentUsd,
        at: event.now,
        nextResetAt: next.resetAt,
      };
    }),
    observe: assign({ now: ({ event }) => event.now }),
    recordSpend: assign({ spentUsd: ({ context, event }) => (event.type === "SPEND_CHANGED" ? roundUsd(event.spentUsd) : context.spentUsd) }),
    announceChange: emit(({ context }, params: { from: BudgetState; to: BudgetState }) => ({
      type: "budget.stateChanged" as const,
      from: params.from,
      to: params.to,
      spentUsd: context.spentUsd,
      capUsd: context.capUsd,
      day: context.day,
      at: context.now,
    })),
  },
  guards: {
    pastMidnight: ({ context, event }) => event.now >= context.resetAt,
    spendIs: ({ context }, params: { state: BudgetState }) =>
      budgetStateOf(context.spentUsd, context.capUsd, context.downgradeAt) === params.state,
  },
}).createMachine({
  id: "budget",
  context: ({ input }) => ({
    capUsd: input.capUsd,
    spentUsd: roundUsd(input.spentUsd ?? 0),
    downgradeAt: input.downgradeAt,
    timeZone: input.timeZone,
    now: input.now,
    ...dayStart(input.timeZone, input.now),
  }),
  // the day rolls over before the event is otherwise handled; the eventless transitions below then settle the state
  on: {
    SPEND_CHANGED: [
      { guard: "pastMidnight", actions: ["announceReset", "rollOver", "recordSpend"] },
      { actions: ["observe", "recordSpend"] },
    ],
    TICK: [{ guard: "pastMidnight", actions: ["announceReset", "rollOver"] }, { actions: "observe" }],
  },
  initial: "deciding",
  states: {
    // entered once, at start or restore: placing the chart is not a change, so nothing is announced
    deciding: {
      always: [
        { guard: { type: "spendIs", params: { state: "nanoOnly" } }, target: "nanoOnly" },
        { guard: { type: "spendIs", params: { state: "downgraded" } }, target: "downgraded" },
        { target: "normal" },
      ],
    },
    normal: {
      always: [
        { guard: { type: "spendIs", params: { state: "nanoOnly" } }, target: "nanoOnly", actions: { type: "announceChange", params: { from: "normal", to: "nanoOnly" } } },
        { guard: { type: "spendIs", params: { state: "downgraded" } }, target: "downgraded", actions: { type: "announceChange", params: { from: "normal", to: "downgraded" } } },
      ],
    },
    downgraded: {
      always: [
        { guard: { type: "spendIs", params: { state: "nanoOnly" } }, target: "nanoOnly", actions: { type: "announceChange", params: { from: "downgraded", to: "nanoOnly" } } },
        { guard: { type: "spendIs", params: { state: "normal" } }, target: "normal", actions: { type: "announceChange", params: { from: "downgraded", to: "normal" } } },
      ],
    },
    nanoOnly: {
      always: [
        { guard: { type: "spendIs", params: { state: "downgraded" } }, target: "downgraded", actions: { type: "announceChange", params: { from: "nanoOnly", to: "downgraded" } } },
        { guard: { type: "spendIs", params: { state: "normal" } }, target: "normal", actions: { type: "announceChange", params: { from: "nanoOnly", to: "normal" } } },
      ],
    },
  },
});

export type BudgetMachine = typeof budgetMachine;
export type BudgetSnapshot = SnapshotFrom<typeof budgetMachine>;
