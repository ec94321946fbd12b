import { jetstream } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import type { FleetConfig } from "../config/index.js";
import { electionSafeJetStream, deadLetter, encode, FleetNames, openFleetResources, secrets, type UsageRecord, type UsageReply, systemClock, type Clock } from "../protocol/index.js";
import { BudgetLedger } from "./budget-ledger.js";
import { TierClassifier } from "./classifier.js";
import { buildDeployments, missingKeys } from "./deployments.js";
import { DeploymentHealth } from "./deployment-health.js";
import { localEmbedding } from "./local-embedding.js";
import { ModelRouter } from "./model-router.js";
import { lazyOpenAIProvider } from "./lazy-provider.js";
import { LearningClassifier } from "./learning-classifier.js";
import { configuredLabels } from "./routing-labels.js";
import { RouterService } from "./router-service.js";
import { SemanticCache } from "./semantic-cache.js";
import { StepAnswers } from "./step-answers.js";
import { spentOnDay } from "./usage-reader.js";
import { UsageSpool } from "./usage-spool.js";
import { WaitingCalls } from "./waiting-calls.js";
import type { Tracer } from "@opentelemetry/api";

/** The fleet's budget ledger from its config: every cap, threshold and the reservation TTL in one place. */
export function fleetBudgetLedger(
  config: FleetConfig,
  budgets: KV,
  clock?: Clock,
  rebuild?: { spentFromUsage: (day: string, agentId: string | undefined) => Promise<number>; log: Logger },
  /** a router's ledger reserves a busy agent's calls from an allowance (routing.budget.allowanceShare) */
  allowance = false,
): BudgetLedger {
  const { budget } = config.routing;
  return new BudgetLedger({
    kv: budgets,
    timeZone: config.fleet.timeZone,
    fleetCapUsd: config.fleet.dailyCapUsd,
    agentCapsUsd: Object.fromEntries(config.agents.map((a) => [a.id, a.dailyCapUsd])),
    downgradeAt: budget.downgradeAt,
    nanoGrace: budget.nanoGrace,
    reservationTtlMs: budget.reservationTtlSeconds * 1_000,
    ...(allowance ? { allowance: { share: budget.allowanceShare } } : {}),
    ...(clock ? { clock } : {}),
    ...(rebuild ?? {}),
  });
}

export interface StartRouterOptions {
  /** budgets, cache, answers and USAGE are written through this one */
  nc: NatsConnection;
  /** the routers' service is served on this one (replies only); default `nc` */
  serveNc?: NatsConnection;
  config: FleetConfig;
  /** the environment, read once by the caller: provider keys are looked up in it by name */
  env: Readonly<Record<string, string | undefined>>;
  log: Logger;
  prefix?: string;
  clock?: Clock;
  /** false: the streams and buckets are the operator's to create (a secured fleet); the router only opens them */
  createResources?: boolean;
  /** where the config file is: label files it names are relative to it (default: the working directory) */
  configDir?: string;
  /** GenAI `chat` spans of every model call (telemetry on) */
  tracer?: Tracer | undefined;
  /**
   * where USAGE records wait while the server is away (usage-spool.ts); without it a record that cannot be published
   * is logged and lost
   */
  spoolDir?: string;
}

export interface RunningRouter {
  router: ModelRouter;
  service: RouterService;
  stop(): Promise<void>;
}

/**
 * Wires one router process: the budget ledger, the cache and the waiting list over the fleet's KV, the deployments
 * from config, USAGE records to JetStream, and the NATS service in the routers' queue group.
 */
export async function startRouter(options: StartRouterOptions): Promise<RunningRouter> {
  const { nc, config, env, log } = options;
  const clock = options.clock ?? systemClock;
  const names = new FleetNames(options.prefix ?? config.fleet.prefix);
  const { kv } = await openFleetResources(nc, names, { maxPayloadBytes: config.fleet.maxPayloadBytes, replicas: config.fleet.replicas, create: options.createResources ?? true, log });
  const js = electionSafeJetStream(jetstream(nc));
  const routing = config.routing;

  const absent = missingKeys(config, env);
  if (absent.length > 0) log.warn({ missing: absent }, "provider key variables are not set; calls with them go out without a key");

  const ledger = fleetBudgetLedger(config, kv.budgets, clock, {
    spentFromUsage: (day, agentId) => spentOnDay(js, names, config.fleet.timeZone, day, agentId),
    log: log.child({ component: "budget-ledger" }),
  }, true);
  const deployments = buildDeployments(config.tiers);
  const health = new DeploymentHealth({
    failures: routing.cooldown.failures,
    baseMs: routing.cooldown.seconds * 1_000,
    maxMs: routing.cooldown.maxSeconds * 1_000,
    clock,
  });
  const waiting = new WaitingCalls(kv.budgets, routing.premiumRetrySeconds.map((s) => s * 1_000));
  // the cache compares requests with a local embedding: free, fast, and the same in every router process
  const cache = routing.cache.enabled
    ? new SemanticCache({ kv: kv.cache, similarity: routing.cache.similarity, ttlMs: routing.cache.ttlHours * 3_600_000, embed: async (t) => localEmbedding(t), clock })
    : undefined;

  const spool = options.spoolDir ? new UsageSpool({ dir: options.spoolDir, js, nc, log: log.child({ component: "usage-spool" }) }) : undefined;
  const publishUsage = async (record: UsageRecord) => {
    const subject = names.usage(record.agentId, record.servedTier);
    const data = encode(secrets.scrubDeep(record), config.fleet.codec);
    // the id the stream deduplicates on, also when the spool publishes the record again after an outage
    const msgID = `${record.callId}.${record.attempt}`;
    if (spool) await spool.publish(msgID, subject, data);
    else await js.publish(subject, data, { msgID });
  };

  let router: ModelRouter | undefined;
  // a simulated nano tier cannot classify anything: without a real model the rules and the default decide
  const nanoIsReal = deployments.nano.some((d) => !d.provider.simulated);
  const classifier = routing.classifier && nanoIsReal
    ? new TierClassifier(async (messages, agentId) => {
        if (!router) throw new Error("router not started");
        const reply = await router.complete({ agentId, kind: "routing", title: "classify", tier: "nano", messages, maxOutputTokens: 5 });
        return reply.text;
      })
    : undefined;
  // read before anything is served: a bad label file refuses the start like a bad config
  const localClassifier = routing.localClassifier.enabled
    ? new LearningClassifier({ fileLabels: configuredLabels(routing, options.configDir ?? process.cwd()), kv: kv.labels, log: log.child({ component: "local-classifier" }) })
    : undefined;
  // the server may vanish during these steps: what was started is stopped again, and the caller may try once more
  const undo = () => {
    localClassifier?.stop();
    spool?.stop();
  };
  try {
    await localClassifier?.start();
  } catch (err) {
    undo();
    throw err;
  }
  spool?.start();
  const answers = new StepAnswers({
    kv: kv.answers,
    log: log.child({ component: "step-answers" }),
    // a claim outlives the longest call a live router can make: after it, the router is presumed dead
    claimTtlMs: routing.budget.reservationTtlSeconds * 1_000,
    clock,
  });
  router = new ModelRouter({ config, env, deployments, ledger, health, waiting, cache, answers, classifier, localClassifier, publishUsage, tracer: options.tracer, log: log.child({ component: "router" }), clock });

  const embeddings = routing.embeddings;
  const embedProvider = embeddings ? lazyOpenAIProvider({ deploymentId: "embeddings", baseUrl: embeddings.baseUrl }) : undefined;
  const embed = async (texts: string[]) => {
    if (!embedProvider || !embeddings) return { vectors: texts.map((t) => localEmbedding(t)), model: "local-trigram-256", simulated: true };
    const apiKey = embeddings.apiKeyEnv ? env[embeddings.apiKeyEnv] : undefined;
    return { vectors: await embedProvider.embed(texts, embeddings.model, apiKey), model: embeddings.model, simulated: false };
  };
  const usage = async (agentId: string | undefined): Promise<UsageReply> => {
    const ids = agentId ? [agentId] : config.agents.map((a) => a.id);
    const views = await ledger.views(ids);
    const waitingCalls = (await waiting.list()).filter((w) => !agentId || w.agentId === agentId);
    return {
      day: views.day,
      fleet: views.fleet,
      agents: views.agents,
      waiting: waitingCalls.map((w) => ({ callId: w.callId, agentId: w.agentId, since: w.since, nextAttemptAt: w.nextAttemptAt })),
    };
  };

  const serveNc = options.serveNc ?? nc;
  const service = new RouterService({
    nc: serveNc, names, codec: config.fleet.codec, maxPayloadBytes: config.fleet.maxPayloadBytes, router, embed, usage, log,
    deadLetter: (subject, data, error) => deadLetter(js, names, "router", { subject, data }, error),
  });
  service.start();
  try {
    await serveNc.flush();
  } catch (err) {
    await service.stop().catch(() => undefined);
    undo();
    throw err;
  }
  log.info({
    deployments: Object.values(deployments).flat().map((d) => `${d.tier}:${d.id}${d.provider.simulated ? " (simulated)" : ""}`),
    ...(localClassifier ? { localClassifier: { labels: localClassifier.size, trainingMs: Math.round(localClassifier.lastTrainingMs) } } : {}),
  }, "router started");
  return {
    router,
    service,
    stop: async () => {
      await service.stop();
      // the calls answered before the stop are booked before it returns
      await router?.drain();
      localClassifier?.stop();
      spool?.stop();
    },
  };
}
