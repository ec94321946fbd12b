import type { KV } from "@nats-io/kv";
import type { Logger } from "pino";
import { ProposalRecord, type CodecName, type ProposalState } from "../../protocol/index.js";
import { countBy, KvIndex } from "./kv-index.js";
import { decodeRecord } from "./record-codec.js";

/*
 * Which proposals there are, newest first, by state: KV `proposals` keeps every proposal ever made, so the proposals page
 * and /metrics follow it (id, state, time per key) and read in full only the proposals the page shows.
 */

export interface ProposalEntry {
  id: string;
  state: ProposalState;
  createdAt: number;
}

export class ProposalEntries {
  private readonly index: KvIndex<ProposalEntry>;

  constructor(deps: { kv: KV; codec: CodecName; log: Logger }) {
    this.index = new KvIndex({
      kv: deps.kv,
      summarize: (key, value) => {
        const p = decodeRecord(ProposalRecord, value, deps.codec);
        return p && { id: key, state: p.state, createdAt: p.createdAt };
      },
      order: (a, b) => b.createdAt - a.createdAt || a.id.localeCompare(b.id),
      log: deps.log,
    });
  }

  start(): Promise<void> {
    return this.index.start();
  }

  stop(): Promise<void> {
    return this.index.stop();
  }

  /** Every proposal awaiting a human, and the newest `recent` of the others (ids, newest first). */
  async shown(recent: number): Promise<{ waiting: string[]; recent: string[] }> {
    const all = await this.index.entries();
    return {
      waiting: all.filter((e) => e.state === "awaiting_human").map((e) => e.id),
      recent: all.filter((e) => e.state !== "awaiting_human").slice(0, recent).map((e) => e.id),
    };
  }

  /** Proposals by state, for /metrics (`natsfleet_proposals`). */
  async countsByState(): Promise<Map<string, number>> {
    return countBy(await this.index.entries(), (e) => e.state);
  }
}
