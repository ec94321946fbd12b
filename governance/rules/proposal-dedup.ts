import { isFinalProposalState, type ProposalState } from "../../protocol/index.js";
import { actionKey } from "./action-key.js";
import { defineRule, fail, pass } from "./rule.js";

/**
 * A completed proposal no longer blocks its twin: the action has happened, and doing it again (a second, deliberate
 * reminder) is the rate limit's business. Any state that is neither final nor completed is open — a state added later
 * blocks duplicates until someone decides otherwise.
 */
function isOpen(state: ProposalState): boolean {
  return !isFinalProposalState(state) && state !== "completed";
}

/** The proposal layer of dedup: the same agent may not have the same action open twice (tool and input, key order ignored). */
export const proposalDedup = defineRule("proposal_dedup", ({ proposal, others }) => {
  const key = actionKey(proposal.tool, proposal.input);
  const twin = others.find(
    (other) => other.id !== proposal.id && other.agentId === proposal.agentId && other.actionKey === key && isOpen(other.state),
  );
  if (twin) return fail(`the same action is already proposed as ${twin.id} (${twin.state})`);
  return pass("no open proposal of the same action");
});
