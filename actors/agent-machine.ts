import { assign, fromPromise, setup } from "xstate";
import type { Artifact, Hold, Message } from "../protocol/index.js";
import type { DeliveryOutcome } from "./delivery-outcome.js";

/**
 * The agent's statechart: idle → waking (a cycle tick or an assigned task) → planning → acting → reporting → idle.
 * It does no I/O: `plan`, `act` and `report` are placeholders the actor host replaces through `.provide()`. Everything a
 * restarted agent needs to resume (the task in hand, when the next cycle is due) is in context, as absolute times.
 */

export interface WorkItem {
  taskId: string;
  contextId: string;
  message: Message;
}

/** A cycle may have work without a task (Atlas's status report); a task always brings its item. */
export type Plan = { kind: "nothing" } | { kind: "work"; item: WorkItem | undefined; skillId: string | undefined };

export type Outcome =
  | { ok: true; artifacts: Artifact[] }
  | { ok: false; reason: string }
  | { ok: false; canceled: true; reason: string }
  /** the work could not be done now for a reason that passes (no router, NATS away): the task is redelivered, not failed */
  | { ok: false; retry: true; reason: string }
  /**
   * the model work waits (quiet hours, a spent daily cap) until `held.until`: the task is neither failed nor retried,
   * it is kept and sent again then (see actors/held-work.ts)
   */
  | { ok: false; held: Hold; reason: string };

/** The outcome of work that waits: what a stage returns when the model-work gate holds it. */
export function heldOutcome(held: Hold): Extract<Outcome, { held: Hold }> {
  return { ok: false, held, reason: `held: ${held.detail}` };
}

export interface PlanInput {
  agentId: string;
  trigger: "cycle" | "task";
  item: WorkItem | undefined;
  /** one-way messages from other agents since the last cycle */
  inbox: Message[];
}
export interface ActInput {
  agentId: string;
  trigger: "cycle" | "task";
  plan: Extract<Plan, { kind: "work" }>;
}
export interface ReportInput {
  agentId: string;
  item: WorkItem;
  outcome: Outcome;
}

export interface AgentContext {
  agentId: string;
  cycleMs: number;
  /** epoch ms of the next cycle tick; absolute so it survives a restart */
  nextCycleAt: number;
  trigger: "cycle" | "task" | undefined;
  item: WorkItem | undefined;
  plan: Plan | undefined;
  outcome: Outcome | undefined;
  inbox: Message[];
  /** how many inbox messages the running plan was given: only those are cleared when it is done */
  inboxHanded: number;
  completed: number;
  failed: number;
}

export type AgentEvent =
  | { type: "CYCLE_TICK"; now: number }
  | { type: "TASK_ASSIGNED"; item: WorkItem }
  | { type: "MESSAGE_RECEIVED"; message: Message }
  /** what the host sends under load: every message that arrived in one read, in one event */
  | { type: "MESSAGES_RECEIVED"; messages: Message[] }
  | { type: "CANCEL"; taskId: string };

export interface AgentInput {
  agentId: string;
  cycleMs: number;
  now: number;
  /** when the first cycle is due; the host staggers agents so they do not all wake together */
  firstCycleAt?: number;
}

/** Inbox messages are kept for the next cycle only up to this many; older ones have been seen in logs by then. */
const INBOX_LIMIT = 50;

export const agentMachine = setup({
  types: {
    context: {} as AgentContext,
    events: {} as AgentEvent,
    input: {} as AgentInput,
  },
  actors: {
    plan: fromPromise<Plan, PlanInput>(async () => ({ kind: "nothing" })),
    act: fromPromise<Outcome, ActInput>(async () => ({ ok: false, reason: "act is not provided" })),
    /** settles the Task and says what becomes of its message (done, retried, dead-lettered), as a value */
    report: fromPromise<DeliveryOutcome, ReportInput>(async () => ({ kind: "done" })),
  },
  actions: {
    takeTask: assign(({ event }) => {
      if (event.type !== "TASK_ASSIGNED") return {};
      return { trigger: "task" as const, item: event.item, plan: undefined, outcome: undefined };
    }),
    takeCycle: assign(({ context, event }) => {
      if (event.type !== "CYCLE_TICK") return {};
      return { trigger: "cycle" as const, item: undefined, plan: undefined, outcome: undefined, nextCycleAt: event.now + context.cycleMs };
    }),
    keepMessage: assign(({ context, event }) => {
      const arrived = event.type === "MESSAGE_RECEIVED" ? [event.message] : event.type === "MESSAGES_RECEIVED" ? event.messages : [];
      if (arrived.length === 0) return {};
      const inbox = [...context.inbox, ...arrived];
      const dropped = Math.max(0, inbox.length - INBOX_LIMIT);
      // the plan in progress was handed the oldest messages; dropping some of those shifts what it will clear
      return { inbox: inbox.slice(dropped), inboxHanded: Math.max(0, context.inboxHanded - dropped) };
    }),
    markCanceled: assign(({ context }) => ({
      outcome: { ok: false, canceled: true, reason: `task ${context.item?.taskId} was canceled` } as Outcome,
    })),
    handInbox: assign(({ context }) => ({ inboxHanded: context.inbox.length })),
    nothingDone: assign({ outcome: { ok: true, artifacts: [] } as Outcome }),
    // only tasks count: cycle work (Atlas's report) is not a task done
    clearWork: assign(({ context }) => {
      const counted = context.item !== undefined && context.outcome !== undefined;
      return {
        trigger: undefined,
        item: undefined,
        plan: undefined,
        outcome: undefined,
        completed: context.completed + (counted && context.outcome?.ok ? 1 : 0),
        // a canceled task and one that waits (held) are not failures
        failed: context.failed + (counted && context.outcome && !context.outcome.ok && !("canceled" in context.outcome) && !("held" in context.outcome) ? 1 : 0),
      };
    }),
  },
  guards: {
    nothingToDo: ({ context }) => context.plan?.kind !== "work",
    nothingToDoInCycle: ({ context }) => context.plan?.kind !== "work" && context.item === undefined,
    cancelsCurrentTask: ({ context, event }) => event.type === "CANCEL" && event.taskId === context.item?.taskId,
    noTask: ({ context }) => context.item === undefined,
  },
}).createMachine({
  id: "agent",
  context: ({ input }) => ({
    agentId: input.agentId,
    cycleMs: input.cycleMs,
    nextCycleAt: input.firstCycleAt ?? input.now + input.cycleMs,
    trigger: undefined,
    item: undefined,
    plan: undefined,
    outcome: undefined,
    inbox: [],
    inboxHanded: 0,
    completed: 0,
    failed: 0,
  }),
  initial: "idle",
  on: {
    MESSAGE_RECEIVED: { actions: "keepMessage" },
    MESSAGES_RECEIVED: { actions: "keepMessage" },
  },
  states: {
    idle: {
      on: {
        TASK_ASSIGNED: { target: "waking", actions: "takeTask" },
        CYCLE_TICK: { target: "waking", actions: "takeCycle" },
      },
    },
    waking: {
      always: "planning",
    },
    planning: {
      entry: "handInbox",
      on: { CANCEL: { guard: "cancelsCurrentTask", target: "reporting", actions: "markCanceled" } },
      invoke: {
        src: "plan",
        input: ({ context }) => ({
          agentId: context.agentId,
          trigger: context.trigger ?? "cycle",
          item: context.item,
          inbox: context.inbox,
        }),
        onDone: {
          target: "deciding",
          // messages that arrived while the plan ran stay for the next one
          actions: assign({ plan: ({ event }) => event.output, inbox: ({ context }) => context.inbox.slice(context.inboxHanded), inboxHanded: 0 }),
        },
        onError: {
          target: "reporting",
          actions: assign({ outcome: ({ event }) => ({ ok: false, reason: `planning failed: ${String(event.error)}` }) as Outcome }),
        },
      },
    },
    deciding: {
      always: [
        // a cycle with nothing to do ends here, before any model call
        { guard: "nothingToDoInCycle", target: "idle", actions: "clearWork" },
        // a task with nothing to do is still reported (completed, no artifacts), never left WORKING
        { guard: "nothingToDo", target: "reporting", actions: "nothingDone" },
        { target: "acting" },
      ],
    },
    acting: {
      on: { CANCEL: { guard: "cancelsCurrentTask", target: "reporting", actions: "markCanceled" } },
      invoke: {
        src: "act",
        input: ({ context }) => ({
          agentId: context.agentId,
          trigger: context.trigger ?? "cycle",
          plan: context.plan as Extract<Plan, { kind: "work" }>,
        }),
        onDone: { target: "reporting", actions: assign({ outcome: ({ event }) => event.output }) },
        onError: {
          target: "reporting",
          actions: assign({ outcome: ({ event }) => ({ ok: false, reason: String(event.error) }) as Outcome }),
        },
      },
    },
    reporting: {
      // cycle work without a task has nothing to report on a task
      always: { guard: "noTask", target: "idle", actions: "clearWork" },
      invoke: {
        src: "report",
        input: ({ context }) => ({
          agentId: context.agentId,
          item: context.item as WorkItem,
          outcome: context.outcome ?? { ok: false, reason: "no outcome" },
        }),
        onDone: { target: "idle", actions: "clearWork" },
        // report returns its failures as outcomes; should it throw anyway, the consumer finds no outcome and the task
        // comes back, and the next delivery reports again
        onError: { target: "idle", actions: "clearWork" },
      },
    },
  },
});

export type AgentMachine = typeof agentMachine;
