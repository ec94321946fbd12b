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
  /** the KV revision this process last wrote or read, so the next write needs no read first (0: unknown) */
  revision: number;
}

/**
 * The governance process's memory of recent proposals: every open one, and every one of the last day (Sentinel's rate
 * limits count those within an agent's cycle). Rebuilt from KV at start, so it is a cache and never the truth.
 */
export class ProposalIndex {
  private readonly entries = new Map<string, Entry>();
  private readonly byAgent = new Map<string, Set<Entry>>();

  put(record: ProposalRecord, revision = 0): void {
    const known = this.entries.get(record.id);
    if (known) {
      known.record = record;
      known.state = record.state;
      known.revision = revision;
      return;
    }
    const entry: Entry = { id: record.id, agentId: record.agentId, tool: record.tool, actionKey: actionKey(record.tool, record.input), state: record.state, createdAt: record.createdAt, record, revision };
    this.entries.set(record.id, entry);
    let mine = this.byAgent.get(record.agentId);
    if (!mine) this.byAgent.set(record.agentId, (mine = new Set()));
    mine.add(entry);
  }

  get(id: string): ProposalRecord | undefined {
    return this.entries.get(id)?.record;
  }

  /** The record with the revision it was last seen at, when that is known. */
  stored(id: string): { record: ProposalRecord; revision: number } | undefined {
    const entry = this.entries.get(id);
    return entry && entry.revision > 0 ? { record: entry.record, revision: entry.revision } : undefined;
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

  /**
   * The agent's proposals of this tool that are still open, and all of them created at or after `since`: what the
   * rate-limit (same tool, this cycle) and dedup (same action, open) rules look at. Other tools' proposals cannot
   * change either verdict, so they are left out and an agent busy with many tools is judged in time that stays small.
   */
  othersOf(agentId: string, tool: string, since: number): ProposalSummary[] {
    const out: ProposalSummary[] = [];
    for (const entry of this.byAgent.get(agentId) ?? []) {
      if (entry.tool !== tool) continue;
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
