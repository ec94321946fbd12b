import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import type { FleetConfig } from "../config/index.js";
import { MemorySearchResult, requestTyped, type CodecName, type FleetNames, systemClock, type Clock } from "../protocol/index.js";
import { AgentMemory } from "./agent-memory.js";
import type { MemorySources, ReferenceItem } from "./memory-sources.js";
import { emptyKnowledge, loadKnowledge, searchKnowledge, type Knowledge } from "./reference-knowledge.js";
import { SessionLog } from "./session-log.js";
import type { SearchHit } from "./vector-store.js";

export interface LiveSourcesOptions {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  memoryKv: KV;
  names: FleetNames;
  config: FleetConfig;
  codec: CodecName;
  /** the knowledge directory, already resolved against the config file's folder; none means no reference tier */
  knowledgeDir: string | undefined;
  clock?: Clock;
}

const KNOWLEDGE_RELOAD_MS = 60_000;

/**
 * The memory tiers as an agent process reaches them: MEMORY.md and the session log straight from KV and JetStream, the
 * semantic tier through `fleet.memory.search.<agentId>` (the vector store has one owner, the scheduler), and the reference files
 * from disk, re-read at most once a minute.
 */
export function liveMemorySources(o: LiveSourcesOptions): MemorySources {
  const clock = o.clock ?? systemClock;
  const memory = new AgentMemory({ kv: o.memoryKv, maxLines: o.config.memory.maxAgentLines, codec: o.codec });
  const log = new SessionLog({ js: o.js, jsm: o.jsm, names: o.names, timeZone: o.config.fleet.timeZone, codec: o.codec, clock });
  let knowledge: { loaded: Knowledge; at: number } | undefined;

  return {
    agentMemory: async (agentId) => (await memory.read(agentId)).lines,
    sessionLog: (agentId) => log.recent(agentId),
    semantic: async (agentId, query, limit): Promise<SearchHit[]> => {
      const { hits } = await requestTyped(o.nc, o.names.memorySearch(agentId), { query: query.slice(0, 8000), limit }, MemorySearchResult, {
        codec: o.codec,
        timeoutMs: 3_000,
      });
      return hits.map((h) => ({
        id: h.id,
        score: h.score,
        payload: { agentId, kind: h.kind as SearchHit["payload"]["kind"], text: h.text, updatedAt: h.updatedAt },
      }));
    },
    reference: async (query, limit): Promise<ReferenceItem[]> => {
      if (!o.knowledgeDir) return [];
      if (!knowledge || clock.now() - knowledge.at > KNOWLEDGE_RELOAD_MS) {
        knowledge = { loaded: await loadKnowledge(o.knowledgeDir).catch(() => emptyKnowledge()), at: clock.now() };
      }
      return searchKnowledge(knowledge.loaded, query, limit);
    },
  };
}
