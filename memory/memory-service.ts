import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import { endpoint, FleetError, FleetService, MemorySearchRequest, type CodecName, type FleetNames, type MemorySearchResult } from "../protocol/index.js";
import type { VectorStore } from "./vector-store.js";

export interface MemoryServiceOptions {
  nc: NatsConnection;
  names: FleetNames;
  codec: CodecName;
  maxPayloadBytes: number;
  store: VectorStore;
  /** the query's embedding, through the router (billed to the asking agent) */
  embed: (agentId: string, text: string) => Promise<number[]>;
  deadLetter: (subject: string, data: Uint8Array, error: FleetError) => Promise<void>;
  log: Logger;
}

/**
 * Serves `fleet.memory.search.<agentId>` (each agent searches only its own memory) from the one process that owns the vector store. The embedded store is files in one
 * directory and must have a single writer; agents in other processes (and on other hosts) reach it through NATS, the
 * same way whether the store is embedded or Qdrant. Built on the fleet's one service skeleton: bad input is refused with
 * a typed error and dead-lettered, a search without a reply subject too.
 */
export class MemoryService {
  private readonly service: FleetService;

  constructor(options: MemoryServiceOptions) {
    this.service = new FleetService({
      nc: options.nc,
      name: "fleet-memory",
      version: "1.0.0",
      description: "semantic memory search over the agents' distilled knowledge",
      queue: "memory",
      endpoints: [
        endpoint({
          name: "search",
          // whose memory is searched is the caller the broker proves, never what the payload says
          subject: options.names.memorySearch("*"),
          request: MemorySearchRequest,
          claims: (r) => r.agentId,
          handle: async ({ query, limit }, call): Promise<MemorySearchResult> => {
            const agentId = call.caller;
            if (agentId === undefined) throw new FleetError("INTERNAL", "a memory search without its caller");
            const vector = await options.embed(agentId, query);
            const hits = await options.store.search(vector, { limit, filter: { agentId } });
            return { hits: hits.map((h) => ({ id: h.id, score: h.score, text: h.payload.text, kind: h.payload.kind, updatedAt: h.payload.updatedAt })) };
          },
        }),
      ],
      codec: options.codec,
      maxPayloadBytes: options.maxPayloadBytes,
      deadLetter: options.deadLetter,
      log: options.log,
    });
  }

  start(): void {
    this.service.start();
  }

  async stop(): Promise<void> {
    await this.service.stop();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
