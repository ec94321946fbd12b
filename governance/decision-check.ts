import type { FleetConfig } from "../config/index.js";
import { CALLERS, FleetError, type ApprovalDecision } from "../protocol/index.js";

/**
 * Whether governance takes a human's decision, judged by what the broker proves: the channel is the subject's (each
 * bridge may publish only under its own, the operator only under `_operator`), so a payload claiming another channel is
 * refused, and the person must be on that channel's approver list. The operator's CLI has no list: the operator's
 * identity is the proof, and `by` only names who sat at it. Pure; undefined when the decision stands.
 */
export function decisionRefusal(config: FleetConfig, subject: { channel: string; proposalId: string }, decision: ApprovalDecision): FleetError | undefined {
  if (decision.proposalId !== subject.proposalId) {
    return new FleetError("MESSAGE_INVALID", `decision for ${decision.proposalId} came on the subject of proposal ${subject.proposalId}`);
  }
  if (decision.via !== subject.channel) {
    return new FleetError("PERMISSION_DENIED", `decision on ${decision.proposalId} says it came via "${decision.via}" but was published on channel "${subject.channel}"`);
  }
  if (subject.channel === CALLERS.operator) return undefined;
  const approvers = approversOf(config, subject.channel);
  if (!approvers) {
    return new FleetError("APPROVER_NOT_ALLOWED", `channel "${subject.channel}" has no approver list: no decision is taken through it`);
  }
  if (!approvers.includes(decision.by)) {
    return new FleetError("APPROVER_NOT_ALLOWED", `${subject.channel} user ${decision.by} is not on the channel's approver list`);
  }
  return undefined;
}

/** The people who may decide through a chat bridge (`bridges.<channel>.approvers`); undefined for any other channel. */
export function approversOf(config: FleetConfig, channel: string): readonly string[] | undefined {
  // the email bridge takes no decisions: it has no approvers
  if (channel === "telegram") return config.bridges.telegram?.approvers;
  if (channel === "discord") return config.bridges.discord?.approvers;
  return undefined;
}
