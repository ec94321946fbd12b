import type { JetStreamClient } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { decode, encode, FleetError, ProposalRecord, type CodecName, type FleetNames, type ProposalEvent } from "../protocol/index.js";

/**
 * Proposals in KV `proposals` (current state, written by revision so two writers can never both win) and every
 * transition in the PROPOSALS stream (`<prefix>.proposal.<agentId>.<state>`), the proposal's history an operator can
 * replay with the NATS CLI.
 */

export interface StoredProposal {
  record: ProposalRecord;
  revision: number;
}

export class ProposalStore {
  constructor(
    private readonly kv: KV,
    private readonly js: JetStreamClient,
    private readonly names: FleetNames,
    private readonly codec: CodecName,
  ) {}

  async get(id: string): Promise<StoredProposal | undefined> {
    const entry = await this.kv.get(id);
    if (!entry || entry.operation !== "PUT") return undefined;
    const decoded = decode(ProposalRecord, entry.value, { codec: this.codec });
    if (!decoded.ok) throw new FleetError("INTERNAL", `proposal ${id} in KV does not decode: ${decoded.error.message}`, { cause: decoded.error });
    return { record: decoded.value, revision: entry.revision };
  }

  /** The first write of a proposal; undefined when one with this id exists already (a resubmission). */
  async create(record: ProposalRecord): Promise<StoredProposal | undefined> {
    try {
      const revision = await this.kv.create(record.id, encode(record, this.codec));
      return { record, revision };
    } catch (err) {
      if (await this.kv.get(record.id)) return undefined;
      throw err;
    }
  }

  /** Writes the next state if nobody else wrote since `revision`; a lost race is CONFLICT. */
  async update(record: ProposalRecord, revision: number): Promise<StoredProposal> {
    try {
      const next = await this.kv.update(record.id, encode(record, this.codec), revision);
      return { record, revision: next };
    } catch (cause) {
      throw new FleetError("CONFLICT", `proposal ${record.id} changed since revision ${revision}`, { cause });
    }
  }

  /**
   * Publishes the transitions one write made (from `from` on) to PROPOSALS as one event on
   * `<prefix>.proposal.<agentId>.<state it reached>`: a proposal approved and started in one write is one message
   * carrying its three transitions. Idempotent through its msgID, so a step re-published after a crash lands once.
   */
  async publishHistory(record: ProposalRecord, from: number): Promise<void> {
    const transitions = record.history.slice(from);
    const last = transitions[transitions.length - 1];
    if (!last) return;
    const event: ProposalEvent = { id: record.id, agentId: record.agentId, tool: record.tool, risk: record.risk, state: last.to, at: last.at, transitions };
    await this.js.publish(this.names.proposal(record.agentId, last.to), encode(event, this.codec), { msgID: `proposal-${record.id}-${record.history.length}` });
  }

  async list(): Promise<ProposalRecord[]> {
    const out: ProposalRecord[] = [];
    const keys = await this.kv.keys();
    for await (const key of keys) {
      const stored = await this.get(key).catch(() => undefined);
      if (stored) out.push(stored.record);
    }
    return out.sort((a, b) => a.createdAt - b.createdAt);
  }
}
