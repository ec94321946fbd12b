import { z } from "zod";
import { JsonInput } from "./wire-types.js";
import { ErrorPayload } from "./errors.js";

/**
 * Governance on the wire: tool calls, proposals and their verdicts, human approvals, the audit trail. Every record that
 * crosses NATS or lands in a stream or bucket is one of these schemas.
 */

/**
 * AUTO reads, AUTO+ writes inside the fleet (logged), PROPOSE has an external but reversible effect (runs after Sentinel,
 * with a rollback window), CONFIRM is irreversible (a human decides), BLOCK never runs.
 */
export const RiskLevel = z.enum(["AUTO", "AUTO+", "PROPOSE", "CONFIRM", "BLOCK"]);
export type RiskLevel = z.infer<typeof RiskLevel>;

/** Whether a tool at this risk level may only run through a proposal. */
export function needsProposal(risk: RiskLevel): boolean {
  return risk === "PROPOSE" || risk === "CONFIRM";
}

const AgentId = z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, "must be an agent id");
/** A built-in or module tool (`http_check`), or an MCP server's tool (`<server>.<tool>`: two subject tokens). */
export const ToolName = z.string().regex(/^[a-z][a-z0-9_-]{0,63}(\.[a-z0-9_-]{1,64})?$/, "must be a tool name (`name` or `<server>.<tool>`)");

/**
 * `fleet.tool.<name>.<caller>`: one call of a tool, by an agent directly (AUTO, AUTO+; the caller is the agent) or by
 * governance executing a proposal (the caller is `_governance`, acting for the proposal's agent).
 */
export const ToolCallRequest = z.object({
  /**
   * The agent the call is for. From an agent it may only repeat the caller of the subject (anyone else is refused);
   * from governance it names the proposal's agent, which the tool host checks against the proposal.
   */
  agentId: AgentId.optional(),
  input: JsonInput,
  taskId: z.string().optional(),
  /** set by the proposal executor: the tool host checks that the proposal is executing this very call */
  proposalId: z.string().optional(),
  /** the same key never runs a tool twice: a repeated call gets the first call's result back */
  idempotencyKey: z.string().min(1).max(200).optional(),
  /** "rollback" runs the tool's rollback handler for the call recorded under idempotencyKey */
  mode: z.enum(["run", "rollback"]).default("run"),
});
export type ToolCallRequest = z.input<typeof ToolCallRequest>;

export const ToolCallResult = z.object({
  output: z.unknown(),
  durationMs: z.number().nonnegative(),
  /** true when the result is the recorded one of an earlier call with the same idempotency key */
  replayed: z.boolean().default(false),
});
export type ToolCallResult = z.infer<typeof ToolCallResult>;

/** What a tool host says about a tool it serves (`fleet.tool.<name>` answers `describe` in the catalogue listing). */
export const ToolDescription = z.object({
  name: ToolName,
  description: z.string(),
  risk: RiskLevel,
  reversible: z.boolean(),
  /** the JSON schema of the input, for a model deciding how to call it */
  inputSchema: z.unknown(),
  /** where it comes from: "built-in", "module:<name>", "mcp:<server>" */
  source: z.string().default("built-in"),
  /** input fields that name a target, checked against Sentinel's target allow list */
  targetFields: z.array(z.string()).optional(),
});
export type ToolDescription = z.infer<typeof ToolDescription>;

export const PROPOSAL_STATES = [
  "pending",
  "sentinel_approved",
  "executing",
  "awaiting_human",
  "completed",
  "rejected",
  "expired",
  "rolled_back",
  "dead_letter",
] as const;
export const ProposalState = z.enum(PROPOSAL_STATES);
export type ProposalState = z.infer<typeof ProposalState>;

/** A state no event leaves (completed still accepts a rollback inside its window; see the proposal chart). */
export function isFinalProposalState(state: ProposalState): boolean {
  return state === "rejected" || state === "expired" || state === "rolled_back" || state === "dead_letter";
}

/** `fleet.proposal.<agentId>.submitted`: an agent asks for an action it may not take on its own. */
export const ProposalSubmission = z.object({
  /** chosen by the agent; a resubmission with the same id is the same proposal */
  id: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1-64 letters, digits, '-' or '_'"),
  agentId: AgentId,
  tool: ToolName,
  input: JsonInput,
  /** why the agent wants it, in a sentence: shown to Sentinel's log and to the human who approves */
  reason: z.string().min(1).max(2000),
  taskId: z.string().optional(),
  /** epoch ms */
  submittedAt: z.number(),
});
export type ProposalSubmission = z.infer<typeof ProposalSubmission>;

/** One Sentinel rule's result on one proposal. `needs_human` is not a refusal: it sends the proposal to a person. */
export const RuleResult = z.object({
  rule: z.string(),
  outcome: z.enum(["pass", "fail", "needs_human"]),
  reason: z.string(),
});
export type RuleResult = z.infer<typeof RuleResult>;

export const SentinelVerdict = z.object({
  outcome: z.enum(["approved", "rejected", "needs_human"]),
  /** every rule's result, in the order they ran */
  results: z.array(RuleResult),
  /** the first failing rule and its reason, when rejected */
  rejectedBy: z.object({ rule: z.string(), reason: z.string() }).optional(),
  at: z.number(),
});
export type SentinelVerdict = z.infer<typeof SentinelVerdict>;

/**
 * A human's decision on a CONFIRM proposal, published by a bridge or the operator's CLI on
 * `fleet.approval.decision.<channel>.<proposalId>`: `via` must be that channel, `by` one of its approvers.
 */
export const ApprovalDecision = z.object({
  proposalId: z.string().min(1),
  decision: z.enum(["approve", "reject"]),
  /** the approver as the channel knows them (a Telegram user id, a Discord user id, the operator at the CLI) */
  by: z.string().min(1),
  /** the channel the decision came through, as in its subject: "telegram", "discord", "_operator" (the operator's CLI) */
  via: z.string().min(1),
  reason: z.string().max(2000).optional(),
  at: z.number(),
});
export type ApprovalDecision = z.infer<typeof ApprovalDecision>;

/** `fleet.approval.request.<channel>`: what a bridge shows an approver; the same proposal may be announced several times. */
export const ApprovalRequest = z.object({
  proposalId: z.string(),
  /** request: first ask; reminder at 12 h; escalation at 20 h; expired at 24 h (a notice, no buttons) */
  kind: z.enum(["request", "reminder", "escalation", "expired"]),
  agentId: z.string(),
  tool: z.string(),
  risk: RiskLevel,
  /** the input, summarised for a chat message (at most a few hundred characters) */
  summary: z.string(),
  reason: z.string(),
  expiresAt: z.number(),
  at: z.number(),
});
export type ApprovalRequest = z.infer<typeof ApprovalRequest>;

/** One state change, as the proposal's history and the PROPOSALS stream record it. */
export const ProposalTransition = z.object({
  from: ProposalState.nullable(),
  to: ProposalState,
  event: z.string(),
  at: z.number(),
  note: z.string().optional(),
});
export type ProposalTransition = z.infer<typeof ProposalTransition>;

/** One write's worth of a proposal's history on PROPOSALS (`<prefix>.proposal.<agentId>.<state>`). */
export const ProposalEvent = z.object({
  id: z.string(),
  agentId: z.string(),
  tool: z.string(),
  risk: RiskLevel,
  /** the state the proposal reached: the subject's last token */
  state: ProposalState,
  at: z.number(),
  /** every transition of this write, in order (creation and approval land together) */
  transitions: z.array(ProposalTransition).min(1),
});
export type ProposalEvent = z.infer<typeof ProposalEvent>;

/** The proposal as KV `proposals` holds it: its state, its absolute deadlines, and how it got there. */
export const ProposalRecord = z.object({
  id: z.string(),
  agentId: z.string(),
  tool: z.string(),
  risk: RiskLevel,
  input: z.unknown(),
  reason: z.string(),
  taskId: z.string().optional(),
  state: ProposalState,
  createdAt: z.number(),
  updatedAt: z.number(),
  verdict: SentinelVerdict.optional(),
  /** CONFIRM: absolute epoch-ms deadlines, so they survive a restart of every process */
  deadlines: z
    .object({ reminderAt: z.number(), escalationAt: z.number(), expiresAt: z.number() })
    .optional(),
  /** which approval notices have gone out (so a restarted governance process does not repeat one) */
  notified: z.array(z.enum(["request", "reminder", "escalation", "expired"])).default([]),
  /** PROPOSE: the rollback handler may run until this epoch ms */
  rollbackUntil: z.number().optional(),
  /** executions tried so far; the third failure sends the proposal to dead_letter */
  attempts: z.number().int().min(0).default(0),
  /** when the next execution attempt is due after a failure */
  retryAt: z.number().optional(),
  output: z.unknown().optional(),
  lastError: ErrorPayload.optional(),
  decision: ApprovalDecision.optional(),
  history: z.array(ProposalTransition),
});
export type ProposalRecord = z.infer<typeof ProposalRecord>;

/** `fleet.governance.rollback` and the other operator requests to the governance process. */
export const ProposalActionRequest = z.object({ proposalId: z.string().min(1), by: z.string().min(1), reason: z.string().optional() });
export type ProposalActionRequest = z.infer<typeof ProposalActionRequest>;

/** One tool call in the AUDIT stream (`fleet.audit.<agentId>`), chained to the record before it by hash. */
export const AuditRecord = z.object({
  agentId: z.string(),
  tool: z.string(),
  risk: RiskLevel,
  input: z.unknown(),
  output: z.unknown().optional(),
  ok: z.boolean(),
  error: ErrorPayload.optional(),
  durationMs: z.number().nonnegative(),
  /** what the call cost in USD (deterministic tools cost nothing) */
  costUsd: z.number().nonnegative(),
  proposalId: z.string().optional(),
  mode: z.enum(["run", "rollback"]),
  at: z.number(),
  /** set when the agent's own host refused the call before any tool host saw it (BLOCK, outside its allow list) */
  refusedBy: z.literal("agent-host").optional(),
  /**
   * set when the agent's own host made the call and reported it (Atlas's delegation of a task to a peer's skill): the tool
   * host recorded the agent's word, it did not run the call itself
   */
  reportedBy: z.literal("agent-host").optional(),
  /** the public nkey of the tool host that wrote the record (covered by the hash) */
  signer: z.string().optional(),
  /** sha256 hex of the previous record in the stream ("" for the first) and of this record */
  prevHash: z.string(),
  hash: z.string(),
  /** the signer's ed25519 signature over `audit-record:<hash>`, base64url; outside the hash */
  sig: z.string().optional(),
});
export type AuditRecord = z.infer<typeof AuditRecord>;

/**
 * `<prefix>.anchor.audit`: the AUDIT stream's tip (a sequence and the hash of the record there) as the anchoring identity
 * saw it, signed by that identity. Only governance may publish here, so the audit writer cannot move an anchor.
 */
export const AuditAnchor = z.object({
  /** the AUDIT stream's name, so an anchor is never checked against another fleet's chain */
  stream: z.string(),
  seq: z.number().int().positive(),
  hash: z.string(),
  at: z.number(),
  signer: z.string(),
  /** the signer's ed25519 signature over `audit-anchor:<canonical JSON of the rest>`, base64url */
  sig: z.string(),
});
export type AuditAnchor = z.infer<typeof AuditAnchor>;

/**
 * `<prefix>.refusal.<agentId>`: an agent's own host reports a tool call it refused (BLOCK, outside its allow list). The
 * tool host records it in the audit trail in the name of the agent the subject names, never one the payload names.
 */
export const RefusalReport = z.object({
  tool: z.string().min(1).max(128),
  input: z.unknown(),
  code: z.enum(["TOOL_BLOCKED", "TOOL_NOT_ALLOWED"]),
  message: z.string().max(1_000),
  taskId: z.string().max(200).optional(),
});
export type RefusalReport = z.infer<typeof RefusalReport>;
export const RefusalRecorded = z.object({ recorded: z.boolean() });
export type RefusalRecorded = z.infer<typeof RefusalRecorded>;

/**
 * `<prefix>.delegation.<agentId>`: the orchestrator's own host reports a delegation it made to a peer's skill (the tool
 * `<peer>.<skill>`), once it ended. The tool host records it in the audit trail like a call of that peer tool (the same
 * input and output), in the name of the agent the subject names; answered with RefusalRecorded.
 */
export const DelegationReport = AuditRecord.pick({ input: true, output: true, ok: true, error: true, durationMs: true, costUsd: true, at: true }).extend({
  tool: z.string().min(1).max(128),
  taskId: z.string().max(200).optional(),
});
export type DelegationReport = z.infer<typeof DelegationReport>;
