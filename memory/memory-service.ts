import type { Msg, NatsConnection, Subscription } from "@nats-io/nats-core";
import type { Logger } from "pino";
import {
  FleetError,
  MemorySearchRequest,
  decode,
  isBadInput,
  negotiate,
  replyError,
  replyResult,
  type CodecName,
  type FleetNames,
  type MemorySearchResult,
} from "../protocol/index.js";
import type { VectorStore } from "./vector-store.js";

export interface MemoryServiceOptions {
  nc: NatsConnection;
  names: FleetNames;
  codec: CodecName;
  store: VectorStore;
  /** the query's embedding, through the router (billed to the asking agent) */
  embed: (agentId: string, text: string) => Promise<number[]>;
  log: Logger;
}

/**
 * Serves `fleet.memory.search` from the one process that owns the vector store. The embedded store is files in one
 * directory and must have a single writer; agents in other processes (and on other hosts) reach it through NATS, the
 * same way whether the store is embedded or Qdrant.
 */
export class MemoryService {
  private sub: Subscription | undefined;

  constructor(private readonly o: MemoryServiceOptions) {}

  start(): void {
    this.sub = this.o.nc.subscribe(this.o.names.memorySearch(), { queue: "memory", callback: (err, msg) => void (err ? undefined : this.handle(msg)) });
  }

  stop(): void {
    this.sub?.unsubscribe();
  }

  private async handle(msg: Msg): Promise<void> {
    const negotiated = negotiate(msg, this.o.codec);
    const codec = negotiated.ok ? negotiated.codec : this.o.codec;
    try {
      if (!negotiated.ok) throw negotiated.error;
      const decoded = decode(MemorySearchRequest, msg.data, { codec });
      if (!decoded.ok) throw decoded.error;
      const { agentId, query, limit } = decoded.value;
      const vector = await this.o.embed(agentId, query);
      const hits = await this.o.store.search(vector, { limit, filter: { agentId } });
      const result: MemorySearchResult = {
        hits: hits.map((h) => ({ id: h.id, score: h.score, text: h.payload.text, kind: h.payload.kind, updatedAt: h.payload.updatedAt })),
      };
      replyResult(msg, result, codec);
    } catch (err) {
      const error = FleetError.from(err);
      if (isBadInput(error)) this.o.log.warn({ code: error.code }, "memory search refused");
      else this.o.log.warn({ code: error.code, reason: error.message }, "memory search failed");
      if (msg.reply) replyError(msg, error, codec);
    }
  }
}
