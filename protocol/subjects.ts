import type { OperationName } from "./operations.js";

/**
 * Every subject, stream, consumer and bucket name comes from here, built from the fleet's prefix, so two fleets can share
 * one NATS account and nothing builds a subject by hand.
 */

export const HEADERS = {
  a2aVersion: "A2A-Version",
  a2aExtensions: "A2A-Extensions",
  contentType: "Content-Type",
  msgId: "Nats-Msg-Id",
  traceparent: "traceparent",
  dlqReason: "Fleet-Dlq-Reason",
  dlqCode: "Fleet-Dlq-Code",
  dlqSubject: "Fleet-Dlq-Subject",
} as const;

const TOKEN = /^[A-Za-z0-9_-]+$/;

/**
 * Callers that are no agent (agent ids start with a lower-case letter, these with `_`), for the caller token of a service
 * subject: the operator asking about the whole fleet, governance running a tool for the agent whose proposal it executes.
 * Only that identity may publish with one of them; `*` in a builder's caller place makes the pattern a service serves.
 */
export const CALLERS = { operator: "_operator", governance: "_governance" } as const;

/** Refuses ids that would change a subject's shape (dots, wildcards, spaces). */
export function assertToken(kind: string, value: string): string {
  if (!TOKEN.test(value)) throw new TypeError(`${kind} "${value}" is not a valid subject token`);
  return value;
}

export class FleetNames {
  readonly prefix: string;
  constructor(prefix = "fleet") {
    this.prefix = assertToken("prefix", prefix);
  }

  // subjects
  agentOperation(agentId: string, op: OperationName): string {
    return `${this.prefix}.agent.${agentId}.a2a.${op}`;
  }
  agentOperations(agentId: string): string {
    return `${this.prefix}.agent.${agentId}.a2a.*`;
  }
  /** one-way A2A Messages between agents (no Task): they reach the agent's next cycle */
  agentInbox(agentId: string): string {
    return `${this.prefix}.agent.${agentId}.inbox`;
  }
  /** operator controls (Restart, BreakerReset): request/reply, outside the A2A surface */
  agentControl(agentId: string, op: ControlOperation): string {
    return `${this.prefix}.agent.${agentId}.control.${op}`;
  }
  agentControls(agentId: string): string {
    return `${this.prefix}.agent.${agentId}.control.*`;
  }
  /** an event-driven wake-up: the agent runs a cycle now instead of waiting for its timer */
  wake(agentId: string): string {
    return `${this.prefix}.wake.${agentId}`;
  }
  agentEvents(agentId: string): string {
    return `${this.prefix}.agent.${agentId}.events`;
  }
  allAgentEvents(): string {
    return `${this.prefix}.agent.*.events`;
  }
  task(agentId: string): string {
    return `${this.prefix}.task.${agentId}`;
  }
  /** what an agent's duty found: the agent publishes only its own */
  finding(agentId: string | "*"): string {
    return `${this.prefix}.finding.${agentId === "*" ? "*" : assertToken("agent id", agentId)}`;
  }
  /** something that happened outside the fleet, by its source (a webhook, a monitoring system) */
  event(source: string | "*"): string {
    return `${this.prefix}.event.${source === "*" ? "*" : assertToken("event source", source)}`;
  }
  outbox(channel: string): string {
    return `${this.prefix}.outbox.${channel}`;
  }
  dlq(source: string): string {
    return `${this.prefix}.dlq.${source}`;
  }
  /**
   * The router's request/reply endpoints, served by every `fleet run router` in one queue group. The last token is the
   * caller, whom the call is for and billed to (an agent's id; `_operator` for fleet-wide usage): the broker proves it.
   */
  router(op: RouterOperation | "*", caller: string): string {
    return `${this.prefix}.router.${op}.${caller}`;
  }
  /** every router operation of every caller: one subscription, so an unknown operation gets UNSUPPORTED_OPERATION */
  routerOperations(): string {
    return `${this.prefix}.router.*.*`;
  }
  /** one USAGE record per model call */
  usage(agentId: string, tier: string): string {
    return `${this.prefix}.usage.${agentId}.${tier}`;
  }
  /** semantic memory search in the caller's own memory, served by the process that owns the vector store (the scheduler) */
  memorySearch(agentId: string): string {
    return `${this.prefix}.memory.search.${agentId}`;
  }
  /** an agent's session log for one local day (yyyymmdd) */
  memoryLog(agentId: string, yyyymmdd: string): string {
    return `${this.prefix}.memory.log.${agentId}.${yyyymmdd}`;
  }
  /**
   * A tool called by `caller` (an agent's id, or `_governance` executing an agent's proposal), served by the tool hosts in
   * queue group "tools"; the broker decides who may publish here, the name and the caller both.
   */
  tool(name: string, caller: string): string {
    return `${this.prefix}.tool.${name}.${caller}`;
  }
  /** every event of one agent's proposals: `submitted` from the agent, the state changes from governance */
  proposal(agentId: string, event: string): string {
    return `${this.prefix}.proposal.${agentId}.${event}`;
  }
  proposalSubmissions(): string {
    return `${this.prefix}.proposal.*.submitted`;
  }
  approvalRequest(channel: string): string {
    return `${this.prefix}.approval.request.${channel}`;
  }
  /**
   * A human's decision on a proposal, on the channel it came through: each approval bridge may publish only under its
   * own channel, the operator's CLI under `_operator` (the broker proves it), and governance holds the payload's `via`
   * and `by` to that channel and its approver list. The channel comes first so one pattern names a channel's decisions.
   */
  approvalDecision(channel: string, proposalId: string): string {
    return `${this.prefix}.approval.decision.${channel}.${proposalId}`;
  }
  /** the decisions of one channel (the pattern its bridge may publish on), or of every channel (governance's filter) */
  approvalDecisions(channel = "*"): string {
    return `${this.prefix}.approval.decision.${channel}.*`;
  }
  /** The channel and proposal id a decision's subject carries; undefined for a subject of any other shape. */
  approvalDecisionOf(subject: string): { channel: string; proposalId: string } | undefined {
    const tokens = subject.split(".");
    if (tokens.length !== 5 || tokens[0] !== this.prefix || tokens[1] !== "approval" || tokens[2] !== "decision") return undefined;
    const [channel, proposalId] = tokens.slice(3) as [string, string];
    return TOKEN.test(channel) && TOKEN.test(proposalId) ? { channel, proposalId } : undefined;
  }
  audit(agentId: string): string {
    return `${this.prefix}.audit.${agentId}`;
  }
  /** the audit chain's tip as governance anchored it (stream AUDIT_ANCHORS): only governance may publish here */
  auditAnchor(): string {
    return `${this.prefix}.anchor.audit`;
  }
  /** an agent's own host reports a tool call it refused; the tool host records it (the agent id is broker-proven) */
  refusal(agentId: string): string {
    return `${this.prefix}.refusal.${agentId}`;
  }
  /** the orchestrator's own host reports a delegation to a peer it made; the tool host records it (broker-proven id) */
  delegation(agentId: string): string {
    return `${this.prefix}.delegation.${agentId}`;
  }
  /** operator requests to the governance process (rollback) */
  governance(op: GovernanceOperation): string {
    return `${this.prefix}.governance.${op}`;
  }
  all(): string {
    return `${this.prefix}.>`;
  }

  // streams, consumers and buckets: upper-case streams and lower-case buckets, both carrying the prefix
  stream(name: StreamKey): string {
    return `${this.prefix.toUpperCase()}_${name}`;
  }
  bucket(name: BucketKey): string {
    return `${this.prefix}-${name}`;
  }
  agentConsumer(agentId: string): string {
    return `agent-${agentId}`;
  }
  /** Tasks are keyed by agent so an agent lists its own with a key filter instead of a scan. */
  taskKey(agentId: string, taskId: string): string {
    return `${agentId}.${taskId}`;
  }
  /** A pipeline run is keyed like its task, so an agent may write only its own runs. */
  pipelineRunKey(agentId: string, taskId: string): string {
    return `${agentId}.${taskId}`;
  }
}

export type GovernanceOperation = "rollback";
export type ControlOperation = "Restart" | "BreakerReset";

export type StreamKey = "TASKS" | "PROPOSALS" | "APPROVALS" | "OUTBOX" | "AUDIT" | "AUDIT_ANCHORS" | "USAGE" | "MEMLOG" | "DLQ" | "FINDINGS" | "EVENTS";
export type BucketKey = "tasks" | "agents" | "proposals" | "budgets" | "memory" | "leases" | "schedules" | "dedup" | "cache" | "toolruns" | "answers" | "held" | "pipelineruns" | "plans" | "toolstate" | "tools" | "deliveries" | "labels";
export type RouterOperation = "route" | "complete" | "embed" | "usage" | "teach";
