import { isFinalProposalState, type ProposalRecord, type ProposalState } from "../protocol/index.js";
import { actionKey } from "./sentinel.js";

const DAY_MS = 24 * 3600_000;

/** What Sentinel needs to know of an agent's other proposals. */
export interface ProposalSummary {
  id: string;
  agentId: string;
  tool: string;
  actionKey: string;
  state: ProposalState;
  createdAt: number;
}

interface Entry extends ProposalSummary {
  record: ProposalRecord;
}

/**
 * The governance process's memory of recent proposals: every open one, and every one of the last day (Sentinel's rate
 * limits count those within an agent's cycle). Rebuilt from KV at start, so it is a cache and never the truth.
 */
export class ProposalIndex {
  private readonly entries = new Map<string, Entry>();
  private readonly byAgent = new Map<string, Set<Entry>>();

  put(record: ProposalRecord): void {
    const known = this.entries.get(record.id);
    if (known) {
      known.record = record;
      known.state = record.state;
      return;
    }
    const entry: Entry = { id: record.id, agentId: record.agentId, tool: record.tool, actionKey: actionKey(record.tool, record.input), state: record.state, createdAt: record.createdAt, record };
    this.entries.set(record.id, entry);
    let mine = this.byAgent.get(record.agentId);
    if (!mine) this.byAgent.set(record.agentId, (mine = new Set()));
    mine.add(entry);
  }

  get(id: string): ProposalRecord | undefined {
    return this.entries.get(id)?.record;
  }

  delete(id: string): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.entries.delete(id);
    this.byAgent.get(entry.agentId)?.delete(entry);
  }

  /** Proposals that may still change on their own or by a person: not final and not completed. */
  open(): ProposalRecord[] {
    const out: ProposalRecord[] = [];
    for (const { record } of this.entries.values()) if (!isFinalProposalState(record.state) && record.state !== "completed") out.push(record);
    return out;
  }

  /** The agent's proposals that are still open, and all of its proposals created at or after `since`. */
  othersOf(agentId: string, since: number): ProposalSummary[] {
    const out: ProposalSummary[] = [];
    for (const entry of this.byAgent.get(agentId) ?? []) {
      if (entry.createdAt >= since || !(isFinalProposalState(entry.state) || entry.state === "completed")) out.push(entry);
    }
    return out;
  }

  /** Forgets settled proposals older than a day (no cycle is that long). */
  prune(now: number): void {
    for (const [id, { record }] of this.entries) {
      const settled = isFinalProposalState(record.state) || (record.state === "completed" && (record.rollbackUntil ?? 0) < now);
      if (settled && now - record.createdAt > DAY_MS) this.delete(id);
    }
  }
}
