import type { JetStreamClient } from "@nats-io/jetstream";
import { encode, type ApprovalRequest, type CodecName, type FleetNames, type ProposalRecord } from "../protocol/index.js";
import type { ApprovalsConfig } from "../config/index.js";
import type { NoticeKind } from "./proposal-machine.js";

/**
 * Approval requests and their follow-ups (reminder, escalation, expiry) on APPROVALS, one per configured channel. The
 * msgID makes a notice idempotent, so a governance process that restarts between publishing and recording it does not
 * announce it twice. The bridges deliver them; one they cannot deliver ends on the DLQ, never silently.
 */
export class ApprovalNotices {
  constructor(
    private readonly js: JetStreamClient,
    private readonly names: FleetNames,
    private readonly codec: CodecName,
    private readonly approvals: ApprovalsConfig,
  ) {}

  channelsFor(kind: NoticeKind): string[] {
    const channels = kind === "escalation" ? [...this.approvals.channels, ...this.approvals.escalateTo] : this.approvals.channels;
    return [...new Set(channels)];
  }

  async publish(record: ProposalRecord, kind: NoticeKind, now: number): Promise<void> {
    const request: ApprovalRequest = {
      proposalId: record.id,
      kind,
      agentId: record.agentId,
      tool: record.tool,
      risk: record.risk,
      summary: summarise(record.input),
      reason: record.reason,
      expiresAt: record.deadlines?.expiresAt ?? now,
      at: now,
    };
    await Promise.all(
      this.channelsFor(kind).map((channel) =>
        this.js.publish(this.names.approvalRequest(channel), encode(request, this.codec), { msgID: `approval-${record.id}-${kind}-${channel}` }),
      ),
    );
  }
}

/** The input as one line of at most 300 characters: enough for a person to see what they approve. */
export function summarise(input: unknown): string {
  const text = typeof input === "string" ? input : JSON.stringify(input) ?? String(input);
  return text.length > 300 ? `${text.slice(0, 297)}...` : text;
}
