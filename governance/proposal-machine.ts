import { assign, emit, setup, type SnapshotFrom } from "xstate";
import type { ApprovalDecision, ErrorPayload, ProposalRecord, SentinelVerdict } from "../protocol/index.js";

/**
 * The proposal chart (DESIGN.md): pending → sentinel_approved → executing → completed; awaiting_human for CONFIRM;
 * rejected, expired, rolled_back and dead_letter end it.
 *
 * Time: every event carries `now` from the governance process's injected clock and every deadline is absolute in the
 * record (reminderAt, escalationAt, expiresAt, rollbackUntil, retryAt), so a chart rebuilt from KV after a restart of
 * every process behaves exactly like one that never stopped; the host sends TICK to let deadlines fire.
 *
 * Effects: none. The chart emits `proposal.notify` (an approval request, reminder, escalation or expiry notice is due)
 * and `proposal.deadLettered`; the host persists the record by revision, publishes every transition to PROPOSALS, and
 * runs the tool whenever a proposal is sentinel_approved and due.
 */

const HOUR_MS = 3600_000;
const MINUTE_MS = 60_000;

export interface ProposalPolicy {
  rollbackMs: number;
  maxAttempts: number;
  /** delay before each re-try after a failed execution; the last one repeats */
  retryMs: number[];
  reminderMs: number;
  escalationMs: number;
  expiryMs: number;
}

export const DEFAULT_POLICY: ProposalPolicy = {
  rollbackMs: 15 * MINUTE_MS,
  maxAttempts: 3,
  retryMs: [30_000, 120_000],
  reminderMs: 12 * HOUR_MS,
  escalationMs: 20 * HOUR_MS,
  expiryMs: 24 * HOUR_MS,
};

export interface ProposalContext {
  record: ProposalRecord;
  policy: ProposalPolicy;
}

export type ProposalEvent =
  | { type: "VERDICT"; verdict: SentinelVerdict; now: number }
  | { type: "EXECUTION_STARTED"; now: number }
  | { type: "EXECUTION_SUCCEEDED"; output: unknown; now: number }
  | { type: "EXECUTION_FAILED"; error: ErrorPayload; now: number }
  | { type: "DECISION"; decision: ApprovalDecision; now: number }
  | { type: "ROLLED_BACK"; by: string; now: number }
  | { type: "TICK"; now: number };

export type NoticeKind = "request" | "reminder" | "escalation" | "expired";

export type ProposalEmitted =
  | { type: "proposal.notify"; kind: NoticeKind }
  | { type: "proposal.deadLettered"; error: ErrorPayload | undefined };

type Patch = Partial<ProposalRecord>;
const patch = (context: ProposalContext, changes: Patch): Pick<ProposalContext, "record"> => ({ record: { ...context.record, ...changes } });

function dueNotice(context: ProposalContext, now: number): NoticeKind | undefined {
  const { deadlines, notified } = context.record;
  if (!deadlines) return undefined;
  if (now >= deadlines.escalationAt && !notified.includes("escalation")) return "escalation";
  // an escalation already covers the reminder: a late tick sends only the later notice
  if (now >= deadlines.reminderAt && !notified.includes("reminder") && !notified.includes("escalation")) return "reminder";
  return undefined;
}

/** When the next notice or the expiry of a proposal waiting for a person is due (Infinity when none is). */
export function nextDeadline(record: ProposalRecord): number {
  const { deadlines, notified } = record;
  if (!deadlines) return Infinity;
  let next = deadlines.expiresAt;
  if (!notified.includes("escalation")) next = Math.min(next, deadlines.escalationAt);
  if (!notified.includes("reminder") && !notified.includes("escalation")) next = Math.min(next, deadlines.reminderAt);
  return next;
}

/** Why a rollback is refused now, or undefined when it may run. */
export function rollbackRefusal(record: ProposalRecord, now: number): string | undefined {
  if (record.risk !== "PROPOSE") return `only PROPOSE proposals can be rolled back (this one is ${record.risk})`;
  if (record.state !== "completed") return `proposal is ${record.state}, not completed`;
  if (record.rollbackUntil === undefined || now >= record.rollbackUntil) {
    return `the rollback window closed at ${new Date(record.rollbackUntil ?? record.updatedAt).toISOString()}`;
  }
  return undefined;
}

export const proposalMachine = setup({
  types: {
    context: {} as ProposalContext,
    events: {} as ProposalEvent,
    input: {} as ProposalContext,
    emitted: {} as ProposalEmitted,
  },
  actions: {
    recordVerdict: assign(({ context, event }) => (event.type === "VERDICT" ? patch(context, { verdict: event.verdict }) : {})),
    setDeadlines: assign(({ context, event }) =>
      patch(context, {
        deadlines: {
          reminderAt: event.now + context.policy.reminderMs,
          escalationAt: event.now + context.policy.escalationMs,
          expiresAt: event.now + context.policy.expiryMs,
        },
      }),
    ),
    countAttempt: assign(({ context }) => patch(context, { attempts: context.record.attempts + 1, retryAt: undefined })),
    recordOutput: assign(({ context, event }) =>
      event.type === "EXECUTION_SUCCEEDED"
        ? patch(context, {
            output: event.output,
            lastError: undefined,
            ...(context.record.risk === "PROPOSE" ? { rollbackUntil: event.now + context.policy.rollbackMs } : {}),
          })
        : {},
    ),
    scheduleRetry: assign(({ context, event }) => {
      if (event.type !== "EXECUTION_FAILED") return {};
      const delays = context.policy.retryMs;
      const delay = delays[Math.min(context.record.attempts - 1, delays.length - 1)] ?? 0;
      return patch(context, { lastError: event.error, retryAt: event.now + delay });
    }),
    recordFailure: assign(({ context, event }) => (event.type === "EXECUTION_FAILED" ? patch(context, { lastError: event.error }) : {})),
    recordDecision: assign(({ context, event }) => (event.type === "DECISION" ? patch(context, { decision: event.decision }) : {})),
    markNotice: assign(({ context, event }) => {
      const kind = dueNotice(context, event.now);
      return kind ? patch(context, { notified: [...context.record.notified, kind] }) : {};
    }),
    markExpired: assign(({ context }) => patch(context, { notified: [...context.record.notified, "expired"] })),
    markRequested: assign(({ context }) => patch(context, { notified: [...context.record.notified, "request"] })),
    notifyRequest: emit({ type: "proposal.notify" as const, kind: "request" as const }),
    notifyDue: emit(({ context, event }) => ({ type: "proposal.notify" as const, kind: dueNotice(context, event.now) ?? "reminder" })),
    notifyExpired: emit({ type: "proposal.notify" as const, kind: "expired" as const }),
    announceDeadLetter: emit(({ context }) => ({ type: "proposal.deadLettered" as const, error: context.record.lastError })),
  },
  guards: {
    approved: ({ event }) => event.type === "VERDICT" && event.verdict.outcome === "approved",
    needsHuman: ({ event }) => event.type === "VERDICT" && event.verdict.outcome === "needs_human",
    due: ({ context, event }) => context.record.retryAt === undefined || event.now >= context.record.retryAt,
    // a failure that retrying cannot fix (bad input, an effect of unknown outcome) ends it at once
    attemptsLeft: ({ context, event }) =>
      event.type === "EXECUTION_FAILED" && event.error.retryable && context.record.attempts < context.policy.maxAttempts,
    approve: ({ event }) => event.type === "DECISION" && event.decision.decision === "approve",
    reject: ({ event }) => event.type === "DECISION" && event.decision.decision === "reject",
    expired: ({ context, event }) => context.record.deadlines !== undefined && event.now >= context.record.deadlines.expiresAt,
    noticeDue: ({ context, event }) => dueNotice(context, event.now) !== undefined,
    insideRollbackWindow: ({ context, event }) => rollbackRefusal(context.record, event.now) === undefined,
  },
}).createMachine({
  id: "proposal",
  context: ({ input }) => input,
  initial: "pending",
  states: {
    pending: {
      on: {
        VERDICT: [
          { guard: "approved", target: "sentinel_approved", actions: "recordVerdict" },
          { guard: "needsHuman", target: "awaiting_human", actions: ["recordVerdict", "setDeadlines", "markRequested", "notifyRequest"] },
          { target: "rejected", actions: "recordVerdict" },
        ],
      },
    },
    sentinel_approved: {
      on: { EXECUTION_STARTED: { guard: "due", target: "executing", actions: "countAttempt" } },
    },
    executing: {
      on: {
        EXECUTION_SUCCEEDED: { target: "completed", actions: "recordOutput" },
        EXECUTION_FAILED: [
          { guard: "attemptsLeft", target: "sentinel_approved", actions: "scheduleRetry" },
          { target: "dead_letter", actions: ["recordFailure", "announceDeadLetter"] },
        ],
      },
    },
    awaiting_human: {
      on: {
        DECISION: [
          { guard: "approve", target: "sentinel_approved", actions: "recordDecision" },
          { guard: "reject", target: "rejected", actions: "recordDecision" },
        ],
        TICK: [
          { guard: "expired", target: "expired", actions: ["markExpired", "notifyExpired"] },
          { guard: "noticeDue", actions: ["notifyDue", "markNotice"] },
        ],
      },
    },
    completed: {
      on: { ROLLED_BACK: { guard: "insideRollbackWindow", target: "rolled_back" } },
    },
    rejected: { type: "final" },
    expired: { type: "final" },
    rolled_back: { type: "final" },
    dead_letter: { type: "final" },
  },
});

export type ProposalMachine = typeof proposalMachine;
export type ProposalSnapshot = SnapshotFrom<typeof proposalMachine>;
