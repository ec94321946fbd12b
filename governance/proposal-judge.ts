import type { FleetConfig } from "../config/index.js";
import type { ProposalRecord, ProposalSubmission, SentinelVerdict } from "../protocol/index.js";
import type { ProposalIndex } from "./proposal-index.js";
import type { ProposalEmitted, ProposalPolicy } from "./proposal-machine.js";
import { newProposalRecord, stepProposal } from "./proposal-step.js";
import { evaluateProposal } from "./sentinel.js";
import type { ToolDefinition } from "./tool.js";

export interface JudgeContext {
  config: FleetConfig;
  tools: { get(name: string): ToolDefinition | undefined };
  index: ProposalIndex;
  policy: ProposalPolicy;
}

export interface Judged {
  verdict: SentinelVerdict;
  /** the record to store: rejected, awaiting a human, or already executing (its first attempt counted) */
  record: ProposalRecord;
  emitted: ProposalEmitted[];
}

/**
 * Sentinel's verdict on a submission and the record it becomes. Synchronous on purpose: the caller puts the record
 * into the index in the same step, so two copies of one action arriving together cannot both pass the dedup and
 * rate-limit rules. An approved proposal comes back already executing — stored so, it costs one write instead of two,
 * and a crash after that write finds it executing and re-runs it under the same idempotency key.
 */
export function judgeSubmission(submission: ProposalSubmission, budget: { spentUsd: number; capUsd: number } | undefined, now: number, ctx: JudgeContext): Judged {
  const tool = ctx.tools.get(submission.tool);
  const agent = ctx.config.agents.find((a) => a.id === submission.agentId);
  const verdict = evaluateProposal({
    proposal: submission,
    tool,
    agent,
    fleet: { quietHours: ctx.config.fleet.quietHours, timeZone: ctx.config.fleet.timeZone },
    rules: ctx.config.governance.sentinel,
    budget,
    others: ctx.index.othersOf(submission.agentId, submission.tool, now - (agent?.cycleMinutes ?? 60) * 60_000),
    now,
  });
  // an unknown tool is judged as BLOCK: the record says what it would have been allowed, which is nothing
  const pending = newProposalRecord(submission, tool?.risk ?? "BLOCK", now);
  const judged = stepProposal(pending, ctx.policy, { type: "VERDICT", verdict, now });
  const record = judged.record.state === "sentinel_approved" ? stepProposal(judged.record, ctx.policy, { type: "EXECUTION_STARTED", now }).record : judged.record;
  return { verdict, record, emitted: judged.emitted };
}
