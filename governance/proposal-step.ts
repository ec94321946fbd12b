import { transition } from "xstate";
import type { ProposalRecord, ProposalState, ProposalSubmission, RiskLevel } from "../protocol/index.js";
import { proposalMachine, type ProposalEmitted, type ProposalEvent, type ProposalPolicy } from "./proposal-machine.js";

/**
 * The bridge between the stored record and the chart: rebuild the chart at the record's state, apply one event, and
 * get back the next record (with the transition appended to its history) and the effects the chart asked for. Pure, so
 * the governance process and the tests run the very same steps.
 */

export interface ProposalStep {
  record: ProposalRecord;
  emitted: ProposalEmitted[];
  /** false when the event did not apply in this state (a late decision, a tick with nothing due) */
  changed: boolean;
}

export function newProposalRecord(submission: ProposalSubmission, risk: RiskLevel, now: number): ProposalRecord {
  return {
    id: submission.id,
    agentId: submission.agentId,
    tool: submission.tool,
    risk,
    input: submission.input,
    reason: submission.reason,
    ...(submission.taskId ? { taskId: submission.taskId } : {}),
    state: "pending",
    createdAt: now,
    updatedAt: now,
    notified: [],
    attempts: 0,
    history: [{ from: null, to: "pending", event: "SUBMITTED", at: now }],
  };
}

/** The chart at the record's state: the record is the chart's whole context, so nothing else needs restoring. */
function snapshotOf(record: ProposalRecord, policy: ProposalPolicy) {
  return proposalMachine.resolveState({ value: record.state, context: { record, policy } });
}

export function stepProposal(record: ProposalRecord, policy: ProposalPolicy, event: ProposalEvent, note?: string): ProposalStep {
  const [next, actions] = transition(proposalMachine, snapshotOf(record, policy), event);
  // emit actions come back as data; their type is not in the chart's action-name union, hence the widening
  const emitted = (actions as ReadonlyArray<{ type: string; params?: unknown }>)
    .filter((a) => a.type === "xstate.emit")
    .map((a) => (a.params as { event: ProposalEmitted }).event);
  const to = next.value as ProposalState;
  const contextChanged = next.context.record !== record;
  if (to === record.state && !contextChanged) return { record, emitted, changed: false };
  const updated: ProposalRecord = { ...next.context.record, state: to, updatedAt: event.now };
  if (to !== record.state) {
    updated.history = [...record.history, { from: record.state, to, event: event.type, at: event.now, ...(note ? { note } : {}) }];
  }
  return { record: updated, emitted, changed: true };
}
