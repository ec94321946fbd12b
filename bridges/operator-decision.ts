import type { JetStreamClient } from "@nats-io/jetstream";
import type { Logger } from "pino";
import type { ProposalStore } from "../governance/index.js";
import { CALLERS, FleetError, type ApprovalDecision, type Clock, type CodecName, type FleetNames } from "../protocol/index.js";
import { ApprovalDecisions, type DecideOutcome } from "./approval-bridge.js";

/*
 * The operator's decision on a CONFIRM proposal, the one code path `fleet approve`/`fleet reject` and the dashboard share:
 * published on APPROVALS under the operator's own channel token `_operator` (governance holds `via` to the subject's
 * channel, and has no approver list for the operator: whoever holds the operator's credentials is the operator).
 */

export interface OperatorDecisionDeps {
  js: JetStreamClient;
  names: FleetNames;
  codec: CodecName;
  store: ProposalStore;
  clock: Clock;
  log: Logger;
}

export interface OperatorDecisionInput {
  proposalId: string;
  decision: ApprovalDecision["decision"];
  /** who decided, as the audit trail keeps it (`cli:<user>`, `dashboard:<user>`) */
  by: string;
  reason?: string | undefined;
}

/**
 * Refuses an unknown proposal (PROPOSAL_NOT_FOUND), one not awaiting a human (PROPOSAL_STATE) and a rejection without a
 * reason (MESSAGE_INVALID); otherwise publishes the decision. The message id names proposal, person and decision, so a
 * double click is stored once (`duplicate`).
 */
export async function decideAsOperator(deps: OperatorDecisionDeps, input: OperatorDecisionInput): Promise<DecideOutcome> {
  if (input.decision === "reject" && !input.reason?.trim()) {
    throw new FleetError("MESSAGE_INVALID", "a rejection needs a reason: the agent and the audit trail keep it");
  }
  const stored = await deps.store.get(input.proposalId);
  if (!stored) throw new FleetError("PROPOSAL_NOT_FOUND", `no proposal ${input.proposalId}`);
  if (stored.record.state !== "awaiting_human") {
    throw new FleetError("PROPOSAL_STATE", `proposal ${input.proposalId} is ${stored.record.state}: only one awaiting_human takes a decision`);
  }
  const decisions = new ApprovalDecisions({ js: deps.js, names: deps.names, codec: deps.codec, approvers: [input.by], via: CALLERS.operator, clock: deps.clock, log: deps.log });
  return decisions.decide(input);
}
