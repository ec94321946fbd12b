import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import type { FleetConfig } from "../config/index.js";
import { AgentMemory, distillDay, MemoryService, openVectorStore, SessionLog } from "../memory/index.js";
import { deadLetter, type BucketKey, type FleetNames } from "../protocol/index.js";
import { RouterClient } from "../router/index.js";
import { NightlyDistillation } from "../supervisor/index.js";

/**
 * The scheduler owns semantic memory: it opens the vector store (the embedded store must have one writer), answers the
 * agents' `fleet.memory.search.<agentId>`, and runs the nightly distillation at `memory.distillAt`. Embeddings and the
 * distillation's model calls go through the router like every other call.
 */
export async function startMemoryOwner(o: {
  nc: NatsConnection;
  /** searches are served on this one (replies only); default `nc` */
  serveNc?: NatsConnection;
  names: FleetNames;
  kv: Record<BucketKey, KV>;
  config: FleetConfig;
  env: NodeJS.ProcessEnv;
  log: Logger;
}): Promise<{ stop(): Promise<void> }> {
  const { nc, names, kv, config, log } = o;
  const codec = config.fleet.codec;
  const store = await openVectorStore(config.memory, o.env, { log: log.child({ component: "vector-store" }) });
  const router = new RouterClient(nc, names, { codec, timeoutMs: 120_000 });
  const js = jetstream(nc);
  const searchLog = log.child({ component: "memory-search" });
  const service = new MemoryService({
    nc: o.serveNc ?? nc, names, codec, store, log: searchLog,
    maxPayloadBytes: config.fleet.maxPayloadBytes,
    embed: async (agentId, text) => (await router.embed(agentId, [text])).vectors[0] ?? [],
    deadLetter: (subject, data, error) =>
      deadLetter(js, names, "memory", { subject, data }, error).catch((err: unknown) => searchLog.error({ err, subject, code: error.code }, "dead letter could not be stored")),
  });
  service.start();
  const sessionLog = new SessionLog({ js, jsm: await jetstreamManager(nc), names, timeZone: config.fleet.timeZone, codec });
  const memory = new AgentMemory({ kv: kv.memory, maxLines: config.memory.maxAgentLines, codec });
  const distillation = new NightlyDistillation({
    kv: { schedules: kv.schedules },
    codec,
    agents: config.agents.map((a) => a.id),
    at: config.memory.distillAt,
    timeZone: config.fleet.timeZone,
    distill: (agentId, day) =>
      distillDay(
        { log: sessionLog, memory, store, router, kv: kv.memory, maxLines: config.memory.maxAgentLines, staleDays: config.memory.staleDays, tier: config.memory.distillTier, clock: { now: () => Date.now() }, codec },
        agentId,
        day,
      ),
    clock: { now: () => Date.now() },
    log: log.child({ component: "distillation" }),
  });
  distillation.start();
  return {
    stop: async () => {
      await service.stop();
      await distillation.stop();
      await store.close();
    },
  };
}
