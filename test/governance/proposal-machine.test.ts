import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEFAULT_POLICY, rollbackRefusal } from "../../governance/proposal-machine.js";
import { newProposalRecord, stepProposal } from "../../governance/proposal-step.js";
import type { ApprovalDecision, ErrorPayload, ProposalRecord, RiskLevel, SentinelVerdict } from "../../protocol/index.js";

const T0 = Date.parse("2026-11-23T09:00:00Z");
const HOUR = 3600_000;
const MIN = 60_000;

function proposal(risk: RiskLevel, id = "p1"): ProposalRecord {
  return newProposalRecord({ id, agentId: "ship", tool: "git_pull_build", input: { repo: "site" }, reason: "deploy the fix", submittedAt: T0 }, risk, T0);
}

const verdict = (outcome: SentinelVerdict["outcome"]): SentinelVerdict => ({
  outcome,
  results: [{ rule: "tool_permission", outcome: outcome === "rejected" ? "fail" : "pass", reason: "listed" }],
  ...(outcome === "rejected" ? { rejectedBy: { rule: "tool_permission", reason: "not listed" } } : {}),
  at: T0,
});

const failure = (retryable = true): ErrorPayload => ({ code: retryable ? "TOOL_FAILED" : "TOOL_OUTCOME_UNKNOWN", a2aCode: -32154, message: "exit 1", retryable });
const decision = (d: "approve" | "reject"): ApprovalDecision => ({ proposalId: "p1", decision: d, by: "4242", via: "telegram", at: T0 + HOUR });

/** Runs events in order and returns every intermediate step. */
function run(record: ProposalRecord, ...events: Parameters<typeof stepProposal>[2][]) {
  const steps = [];
  let current = record;
  for (const event of events) {
    const step = stepProposal(current, DEFAULT_POLICY, event);
    steps.push(step);
    current = step.record;
  }
  return { record: current, steps };
}

describe("proposal chart", () => {
  it("PROPOSE: Sentinel approves, it executes, completes with a 15-minute rollback window", () => {
    const { record } = run(
      proposal("PROPOSE"),
      { type: "VERDICT", verdict: verdict("approved"), now: T0 },
      { type: "EXECUTION_STARTED", now: T0 + 10 },
      { type: "EXECUTION_SUCCEEDED", output: { head: "abc" }, now: T0 + 20 },
    );
    assert.equal(record.state, "completed");
    assert.equal(record.attempts, 1);
    assert.equal(record.rollbackUntil, T0 + 20 + 15 * MIN);
    assert.deepEqual(record.history.map((h) => h.to), ["pending", "sentinel_approved", "executing", "completed"]);
    assert.equal(rollbackRefusal(record, T0 + 14 * MIN), undefined);
    const inside = stepProposal(record, DEFAULT_POLICY, { type: "ROLLED_BACK", by: "op", now: T0 + 14 * MIN });
    assert.equal(inside.record.state, "rolled_back");
    assert.match(rollbackRefusal(record, T0 + 20 + 15 * MIN) ?? "", /rollback window closed/);
    const after = stepProposal(record, DEFAULT_POLICY, { type: "ROLLED_BACK", by: "op", now: T0 + 16 * MIN });
    assert.equal(after.changed, false);
    assert.equal(after.record.state, "completed");
  });

  it("a rejected verdict ends the proposal and keeps every rule's result", () => {
    const { record } = run(proposal("AUTO+"), { type: "VERDICT", verdict: verdict("rejected"), now: T0 });
    assert.equal(record.state, "rejected");
    assert.equal(record.verdict?.rejectedBy?.rule, "tool_permission");
    assert.equal(record.verdict?.results.length, 1);
  });

  it("CONFIRM: asks at once, reminds at 12 h, escalates at 20 h, expires at 24 h, each exactly once", () => {
    const start = run(proposal("CONFIRM"), { type: "VERDICT", verdict: verdict("needs_human"), now: T0 });
    assert.equal(start.record.state, "awaiting_human");
    assert.deepEqual(start.steps[0]?.emitted, [{ type: "proposal.notify", kind: "request" }]);
    assert.deepEqual(start.record.deadlines, { reminderAt: T0 + 12 * HOUR, escalationAt: T0 + 20 * HOUR, expiresAt: T0 + 24 * HOUR });

    const tick = (r: ProposalRecord, at: number) => stepProposal(r, DEFAULT_POLICY, { type: "TICK", now: at });
    const early = tick(start.record, T0 + 12 * HOUR - 1);
    assert.deepEqual([early.changed, early.emitted], [false, []]);
    const reminder = tick(start.record, T0 + 12 * HOUR);
    assert.deepEqual(reminder.emitted, [{ type: "proposal.notify", kind: "reminder" }]);
    assert.deepEqual(tick(reminder.record, T0 + 13 * HOUR).emitted, [], "a reminder goes out once");
    const escalation = tick(reminder.record, T0 + 20 * HOUR);
    assert.deepEqual(escalation.emitted, [{ type: "proposal.notify", kind: "escalation" }]);
    assert.equal(escalation.record.state, "awaiting_human");
    const expiry = tick(escalation.record, T0 + 24 * HOUR);
    assert.equal(expiry.record.state, "expired");
    assert.deepEqual(expiry.emitted, [{ type: "proposal.notify", kind: "expired" }]);
    assert.deepEqual(expiry.record.notified, ["request", "reminder", "escalation", "expired"]);
  });

  it("CONFIRM: a tick late past the escalation sends the escalation only, not a stale reminder", () => {
    const start = run(proposal("CONFIRM"), { type: "VERDICT", verdict: verdict("needs_human"), now: T0 });
    const late = stepProposal(start.record, DEFAULT_POLICY, { type: "TICK", now: T0 + 21 * HOUR });
    assert.deepEqual(late.emitted, [{ type: "proposal.notify", kind: "escalation" }]);
    assert.deepEqual(stepProposal(late.record, DEFAULT_POLICY, { type: "TICK", now: T0 + 22 * HOUR }).emitted, []);
  });

  it("CONFIRM: a person's approval sends it on to execution; a rejection ends it; a late decision changes nothing", () => {
    const waiting = run(proposal("CONFIRM"), { type: "VERDICT", verdict: verdict("needs_human"), now: T0 }).record;
    const approved = stepProposal(waiting, DEFAULT_POLICY, { type: "DECISION", decision: decision("approve"), now: T0 + HOUR });
    assert.equal(approved.record.state, "sentinel_approved");
    assert.equal(approved.record.decision?.by, "4242");
    const rejected = stepProposal(waiting, DEFAULT_POLICY, { type: "DECISION", decision: decision("reject"), now: T0 + HOUR });
    assert.equal(rejected.record.state, "rejected");
    const late = stepProposal(rejected.record, DEFAULT_POLICY, { type: "DECISION", decision: decision("approve"), now: T0 + 2 * HOUR });
    assert.equal(late.changed, false);
  });

  it("three failed executions go to dead_letter; re-tries wait for retryAt", () => {
    let r = run(proposal("AUTO+"), { type: "VERDICT", verdict: verdict("approved"), now: T0 }).record;
    const emitted = [];
    for (let attempt = 1; attempt <= 3; attempt++) {
      const now = r.retryAt ?? T0;
      const early = stepProposal(r, DEFAULT_POLICY, { type: "EXECUTION_STARTED", now: now - 1 });
      if (r.retryAt !== undefined) assert.equal(early.changed, false, "a re-try does not start before its time");
      r = stepProposal(r, DEFAULT_POLICY, { type: "EXECUTION_STARTED", now }).record;
      assert.equal(r.state, "executing");
      assert.equal(r.attempts, attempt);
      const step = stepProposal(r, DEFAULT_POLICY, { type: "EXECUTION_FAILED", error: failure(), now: now + 1 });
      emitted.push(...step.emitted);
      r = step.record;
    }
    assert.equal(r.state, "dead_letter");
    assert.equal(r.lastError?.code, "TOOL_FAILED");
    assert.deepEqual(emitted, [{ type: "proposal.deadLettered", error: failure() }]);
  });

  it("a failure retrying cannot fix (outcome unknown) goes to dead_letter at once", () => {
    const r = run(
      proposal("PROPOSE"),
      { type: "VERDICT", verdict: verdict("approved"), now: T0 },
      { type: "EXECUTION_STARTED", now: T0 },
      { type: "EXECUTION_FAILED", error: failure(false), now: T0 + 1 },
    ).record;
    assert.equal(r.state, "dead_letter");
    assert.equal(r.attempts, 1);
  });
});
