import type { AgentConfig, SentinelConfig } from "../../config/index.js";
import type { ProposalState, ProposalSubmission, RuleResult } from "../../protocol/index.js";
import type { ToolDefinition } from "../tool.js";

/**
 * What every Sentinel rule sees, and how a rule is written. A rule is a pure function of this input: no clock, no I/O,
 * no state kept between calls, so the same proposal in the same situation always gets the same verdict and a verdict
 * can be replayed from the audit trail.
 */

/** One of the proposing agent's other proposals, as the governance process knows it. */
export interface OtherProposal {
  id: string;
  agentId: string;
  tool: string;
  actionKey: string;
  state: ProposalState;
  createdAt: number;
}

export interface SentinelInput {
  proposal: ProposalSubmission;
  /** undefined: no such tool in the catalogue */
  tool: ToolDefinition | undefined;
  /** undefined: no such agent in the fleet */
  agent: AgentConfig | undefined;
  fleet: { quietHours: { start: string; end: string }; timeZone: string };
  rules: SentinelConfig;
  /** the agent's spend today and its cap, when known (undefined: the ledger could not be read → the budget rule fails closed) */
  budget: { spentUsd: number; capUsd: number } | undefined;
  /** this agent's other proposals: every one not in a final state, plus all created within its current cycle */
  others: readonly OtherProposal[];
  now: number;
}

/** A rule's finding before its name is attached. */
export type Finding = Omit<RuleResult, "rule">;

export interface SentinelRule<Name extends string = string> {
  readonly name: Name;
  readonly check: (input: SentinelInput) => RuleResult;
}

/** Names the rule once, so its results can never carry a name other than the one it is listed under. */
export function defineRule<const Name extends string>(name: Name, decide: (input: SentinelInput) => Finding): SentinelRule<Name> {
  return { name, check: (input) => ({ rule: name, ...decide(input) }) };
}

export const pass = (reason: string): Finding => ({ outcome: "pass", reason });
export const fail = (reason: string): Finding => ({ outcome: "fail", reason });
export const needsHuman = (reason: string): Finding => ({ outcome: "needs_human", reason });

/*
 * A rule that needs the agent or the tool and does not have it fails rather than passing unchecked: the verdict is a
 * rejection anyway (agent_known or tool_permission failed first), and a rule that fails closed stays safe even if the
 * list is ever reordered or shortened.
 */
export const noAgent = (input: SentinelInput): Finding => fail(`cannot check: no agent ${input.proposal.agentId} in the fleet`);
export const noTool = (input: SentinelInput): Finding => fail(`cannot check: no tool ${input.proposal.tool}`);

/** Dollar figures for reasons: cents, or four places for the sub-cent spend of cheap models. */
export function usd(amount: number): string {
  return `$${amount.toFixed(amount !== 0 && Math.abs(amount) < 0.01 ? 4 : 2)}`;
}

/** "5 %", "2.5 %": a share as an operator writes it. */
export function percent(share: number): string {
  return `${Number((share * 100).toFixed(2))} %`;
}
