import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import { nextMidnight, type AgentConfig, type FleetConfig, type TierName } from "../config/index.js";
import { estimateInputTokens, FleetError, inGenAiSpan, type CompleteReply, type CompleteRequest, type ModelToolCall, type RouteDecision, type RouteRequest, type RouteStep, type TeachReply, type TeachRequest, type TokenUsage, type UsageRecord, nowOf, type Clock } from "../protocol/index.js";
import { setTimeout as sleep } from "node:timers/promises";
import type { BudgetLedger, Reservation } from "./budget-ledger.js";
import { assertKnownChecks, compileResponseSchema, runChecks, type CheckResult } from "./checks.js";
import type { TierClassifier } from "./classifier.js";
import type { LearningClassifier } from "./learning-classifier.js";
import { apiKeyFor, type Deployment, type DeploymentTable } from "./deployments.js";
import type { DeploymentHealth } from "./deployment-health.js";
import { decideRoute } from "./policy.js";
import { ProviderFailure, type ProviderAnswer } from "./provider.js";
import type { SemanticCache } from "./semantic-cache.js";
import { stepKey, type StepAnswers } from "./step-answers.js";
import { escalateOneStep, fallbackChain } from "./tier-ladder.js";
import { costUsd } from "./cost.js";
import type { WaitingCalls } from "./waiting-calls.js";
import type { Tracer } from "@opentelemetry/api";
import { chatSpan, recordChatAnswer } from "./chat-span.js";

export interface ModelRouterOptions {
  config: FleetConfig;
  /** the environment, read once where the process is wired: provider keys are looked up in it by name */
  env: Readonly<Record<string, string | undefined>>;
  deployments: DeploymentTable;
  ledger: BudgetLedger;
  health: DeploymentHealth;
  waiting: WaitingCalls;
  cache?: SemanticCache | undefined;
  /** the answers of tasks' steps; without it every call is made (and paid) as asked */
  answers?: StepAnswers | undefined;
  classifier?: TierClassifier | undefined;
  /** the in-process classifier learned from labelled titles (routing.localClassifier) */
  localClassifier?: LearningClassifier | undefined;
  publishUsage: (record: UsageRecord) => Promise<void>;
  /** each attempt at a deployment becomes a GenAI `chat` span (telemetry on); none without */
  tracer?: Tracer | undefined;
  log: Logger;
  clock?: Clock;
}

/** One attempt's outcome inside a step: the answer and where it came from. */
interface Served {
  answer: ProviderAnswer;
  tier: TierName;
  deployment: Deployment;
  costUsd: number;
}

/**
 * The router's pipeline for one step: decide the tier, consult the cache, then call along the tier's deployments and its
 * upward-only fallback chain, reserving the worst case in the budget before every attempt and settling after it; run the
 * step's checks and, on a failure, escalate that step alone one tier up. Every model call publishes a USAGE record.
 */
export class ModelRouter {
  private readonly clock: () => number;
  private readonly agents: Map<string, AgentConfig>;
  private readonly pending = new Set<Promise<void>>();
  /** calls in flight per deployment, for least-busy pools */
  private readonly inFlight = new Map<string, number>();
  /** smooth weighted round-robin's current weights per deployment, for weighted pools */
  private readonly roundRobin = new Map<string, number>();
  /** USAGE records waiting to go out with their call's reply */
  private readonly usageBeforeReply = new Map<string, Array<() => void>>();

  constructor(private readonly options: ModelRouterOptions) {
    this.clock = nowOf(options.clock);
    this.agents = new Map(options.config.agents.map((a) => [a.id, a]));
  }

  async route(request: RouteRequest): Promise<RouteDecision> {
    const agent = this.agentOf(request.agentId);
    const { state } = await this.options.ledger.view(agent.id);
    const classifier = this.options.classifier;
    const local = this.options.localClassifier;
    return decideRoute(request, {
      config: this.options.config,
      agent,
      budgetState: state,
      ...(local ? { localClassify: (title: string) => local.classify(title) } : {}),
      ...(classifier ? { classify: (title: string) => classifier.classify(title, agent.id) } : {}),
    });
  }

  /** The operator's correction: this title calls for this tier, in every router, from now on. */
  async teach(request: TeachRequest): Promise<TeachReply> {
    const local = this.options.localClassifier;
    if (!local || !this.options.config.routing.localClassifier.enabled) {
      throw new FleetError("UNSUPPORTED_OPERATION", "the local classifier is off (routing.localClassifier.enabled: false): there is nothing to teach");
    }
    const { before, labels } = await local.teach(request.title, request.tier);
    this.options.log.info({ title: request.title, tier: request.tier, before }, "taught by the operator");
    return { title: request.title, tier: request.tier, ...(before ? { before: { tier: before.tier, confidence: before.confidence } } : {}), labels };
  }

  /**
   * A step whose tier came from its title (a classifier or the default) and that had to escalate teaches its title the
   * tier it ended on. Not on a downgraded budget: a step that climbed back from a downgrade says nothing about its title.
   */
  private learnFromEscalation(request: CompleteRequest, decision: RouteDecision, servedTier: TierName, escalated: boolean): void {
    const local = this.options.localClassifier;
    const { localClassifier } = this.options.config.routing;
    if (!local || !escalated || !localClassifier.enabled || !localClassifier.learnFromEscalations) return;
    if (decision.budgetState !== "normal" || !["local-classifier", "classifier", "default"].includes(decision.reason)) return;
    void local.learn(request.title, servedTier, request.agentId).then(
      (learned) => learned && this.options.log.info({ title: request.title, tier: servedTier, from: decision.tier }, "learned a title's tier from an escalation"),
      (err: unknown) => this.options.log.warn({ err, title: request.title }, "a learned label was not kept"),
    );
  }

  /**
   * A step of a task (taskId and step set) is answered once: a repeat (the task redelivered after its agent died) gets
   * the kept answer, with no provider call, no reservation and no USAGE record, since nothing was spent on it.
   */
  async complete(request: CompleteRequest): Promise<CompleteReply> {
    const started = this.clock();
    const callId = request.callId ?? randomUUID();
    const answers = this.options.answers;
    if (!answers || request.taskId === undefined || request.step === undefined) return this.call(request, callId, started);
    this.agentOf(request.agentId);
    const key = stepKey(request.agentId, request.taskId, request.step);
    const begun = await answers.begin(key, callId, { ownClaimMayBeLive: request.resentAfterReconnect === true });
    if (begun.kind === "replay") {
      this.options.log.info({ key, callId, answeredBy: begun.callId }, "model step answered from its kept answer");
      return { ...begun.reply, replayed: true, latencyMs: this.clock() - started };
    }
    let reply: CompleteReply;
    try {
      reply = await this.call(request, callId, started);
    } catch (err) {
      await answers.release(begun);
      throw err;
    }
    await answers.answer(begun, callId, reply);
    return reply;
  }

  private async call(request: CompleteRequest, callId: string, started: number): Promise<CompleteReply> {
    assertKnownChecks(request.checks);
    const validator = request.responseSchema ? compileResponseSchema(request.responseSchema.schema) : undefined;
    const decision = await this.route(request);
    const scope = { agentId: request.agentId, kind: request.kind ?? "general" };
    // only pure steps are served from the cache: JSON in, JSON out, no tools (pipeline steps, classifications); a chat
    // step's answer depends on more than its words (the day, what the agent did since), a tool turn on the world
    const cacheable = this.options.config.routing.cache.enabled && this.options.cache && isPureStep(request);

    if (cacheable && this.options.cache) {
      const hit = await this.options.cache.lookup(scope, request);
      const checked = hit ? runChecks(hit.answer.text, { ...(validator ? { validator } : {}), ...(request.checks ? { checks: request.checks } : {}) }) : undefined;
      if (hit && checked?.ok) {
        const usage = { inputTokens: 0, outputTokens: 0, cachedTokens: 0 };
        await this.publish(request, callId, decision, { tier: hit.answer.servedTier, model: hit.answer.model, deploymentId: "cache" }, usage, 0, {
          cacheHit: true, escalations: 0, fallbacks: 0, simulated: false, ok: true, latencyMs: this.clock() - started, attempt: 0,
        });
        return {
          callId, text: hit.answer.text, ...(checked.parsed !== undefined ? { parsed: checked.parsed } : {}), servedTier: hit.answer.servedTier,
          model: hit.answer.model, deploymentId: "cache", simulated: false, usage, costUsd: 0, cacheHit: true, escalations: [], fallbacks: [],
          decision, latencyMs: this.clock() - started,
        };
      }
    }

    const escalations: RouteStep[] = [];
    const fallbacks: RouteStep[] = [];
    let tier = decision.tier;
    let chain = decision.fallbackChain;
    let attempt = 0;
    let totalCost = 0;
    for (;;) {
      const served = await this.callAlongChain(request, callId, decision, tier, chain, escalations, fallbacks, () => attempt++);
      totalCost += served.costUsd;
      const toolCalls = modelToolCalls(served.answer);
      // An answer that calls tools is not the step's answer yet: its text may rightly be empty and is no JSON, so the
      // checks (schema included) wait for the text answer after the tool results; checked now, they would escalate a
      // perfectly good tool call.
      const checked: CheckResult = toolCalls
        ? { ok: true }
        : runChecks(served.answer.text, { ...(validator ? { validator } : {}), ...(request.checks ? { checks: request.checks } : {}) });
      if (checked.ok) {
        if (cacheable && this.options.cache) {
          await this.options.cache.store(scope, request, {
            text: served.answer.text, usage: served.answer.usage, model: served.answer.model, servedTier: served.tier, storedAt: this.clock(),
          });
        }
        this.learnFromEscalation(request, decision, served.tier, escalations.length > 0);
        return {
          callId, text: served.answer.text, ...(checked.parsed !== undefined ? { parsed: checked.parsed } : {}), servedTier: served.tier,
          model: served.answer.model, deploymentId: served.deployment.id, simulated: served.deployment.provider.simulated,
          usage: served.answer.usage, costUsd: totalCost, cacheHit: false, escalations, fallbacks, decision, latencyMs: this.clock() - started,
          ...(toolCalls ? { toolCalls } : {}),
        };
      }
      const next = escalateOneStep(this.options.config.tiers, served.tier, this.options.config.routing.escalationCeiling);
      if (next === undefined) {
        throw new FleetError("CHECK_FAILED", `check "${checked.check}" failed at ${served.tier}, the escalation ceiling: ${checked.reason}`);
      }
      escalations.push({ from: served.tier, to: next, reason: `${checked.check}: ${checked.reason}` });
      tier = next;
      chain = fallbackChain(this.options.config.tiers, this.options.config.routing, next);
    }
  }

  /** Tries the tier's deployments, then each tier of the chain; the budget is reserved anew before every attempt. */
  private async callAlongChain(
    request: CompleteRequest,
    callId: string,
    decision: RouteDecision,
    firstTier: TierName,
    chain: readonly TierName[],
    escalations: RouteStep[],
    fallbacks: RouteStep[],
    nextAttempt: () => number,
  ): Promise<Served> {
    const agent = this.agentOf(request.agentId);
    const tiers = [firstTier, ...chain];
    let lastError = "no deployment available";
    for (let i = 0; i < tiers.length; i++) {
      const tier = tiers[i] as TierName;
      const config = this.options.config.tiers[tier];
      const maxOutputTokens = request.maxOutputTokens ?? config.maxOutputTokens;
      for (const deployment of this.poolOrder(tier)) {
        if (!this.options.health.isAvailable(deployment.id)) {
          lastError = `${deployment.id} is cooling down`;
          continue;
        }
        const worstCase = worstCaseUsd(config, request, maxOutputTokens);
        const attempt = nextAttempt();
        const reservationId = `${callId}.${attempt}`;
        const reserved = await this.options.ledger.reserve(agent.id, tier, worstCase, reservationId);
        if (!reserved.ok) {
          if (reserved.exhausted || tier === "nano") throw this.budgetExhausted(agent.id, reserved.by);
          // the budget crossed its cap while this step was under way: only the cheapest tier may still run
          fallbacks.push({ from: tier, to: "nano", reason: "budget spent: only nano runs" });
          return this.callAlongChain(request, callId, decision, "nano", [], escalations, fallbacks, nextAttempt);
        }
        const started = this.clock();
        let answer: ProviderAnswer;
        this.inFlight.set(deployment.id, (this.inFlight.get(deployment.id) ?? 0) + 1);
        try {
          answer = await inGenAiSpan(this.options.tracer, chatSpan(deployment, tier, request, maxOutputTokens, attempt), async (span) => {
            const answered = await deployment.provider.complete({
              model: deployment.model,
              messages: request.messages,
              maxOutputTokens,
              timeoutMs: config.timeoutSeconds * 1_000,
              ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
              ...(request.responseSchema ? { responseSchema: request.responseSchema } : {}),
              ...(request.tools ? { tools: request.tools } : {}),
              ...optionalKey(apiKeyFor(deployment, agent, this.options.env)),
            });
            recordChatAnswer(span, answered, costUsd(config, answered.usage));
            return answered;
          });
        } catch (err) {
          this.inFlight.set(deployment.id, (this.inFlight.get(deployment.id) ?? 1) - 1);
          await this.options.ledger.release(reserved.reservation);
          if (!(err instanceof ProviderFailure)) throw FleetError.from(err);
          // a refused key is the caller's (an agent's own key), not the endpoint's: it must not cool the deployment for all
          if (err.coolsDown) this.options.health.recordFailure(deployment.id, err.retryAfterMs);
          lastError = `${deployment.id}: ${err.kind}${err.status ? ` ${err.status}` : ""}`;
          this.options.log.warn({ callId, agentId: agent.id, tier, deployment: deployment.id, kind: err.kind }, "provider failed");
          await this.publish(request, callId, decision, { tier, model: deployment.model, deploymentId: deployment.id }, zeroUsage(), 0, {
            cacheHit: false, escalations: escalations.length, fallbacks: fallbacks.length, simulated: deployment.provider.simulated, ok: false,
            latencyMs: this.clock() - started, error: lastError, attempt,
          }).catch((e: unknown) => this.options.log.error({ err: e, callId }, "USAGE record of a failed call not published"));
          if (!err.fallsBack) throw new FleetError("PROVIDER_FAILED", `${lastError}: ${err.message}`, { cause: err });
          continue;
        }
        // The answer is paid for: from here on nothing may throw it away. The settle and the USAGE record go on after
        // the reply: until the settle lands the reservation (the worst case) keeps counting, so no cap can be passed,
        // and should this router die first, the reservation expires into its worst case.
        this.inFlight.set(deployment.id, (this.inFlight.get(deployment.id) ?? 1) - 1);
        const cost = costUsd(config, answer.usage);
        this.options.health.recordSuccess(deployment.id);
        // The USAGE record goes out before the reply (unawaited) and the settle after its ack: a budget record rebuilt
        // from USAGE in between has the call already, and the settle then only drops the reservation.
        const outcome = {
          cacheHit: false, escalations: escalations.length, fallbacks: fallbacks.length, simulated: deployment.provider.simulated, ok: true,
          latencyMs: this.clock() - started, attempt,
        };
        const published = this.publishBeforeReply(callId, () =>
          this.publish(request, callId, decision, { tier, model: answer.model, deploymentId: deployment.id }, answer.usage, cost, outcome)
            .catch((e: unknown) => this.options.log.error({ err: e, callId, costUsd: cost }, "USAGE record not published")),
        );
        this.afterReply(
          Promise.all([
            // queued now (this router's views count it at once), written only once the USAGE record is out
            this.settleSurely(reserved.reservation, cost, callId, published),
            tier === "premium" ? this.options.waiting.done(callId).catch(() => undefined) : Promise.resolve(),
          ]),
        );
        return { answer, tier, deployment, costUsd: cost };
      }
      if (tier === "premium") {
        // premium has nothing above it to fall back to: the step waits and the caller retries on the schedule
        const waiting = await this.options.waiting.failed(callId, agent.id, lastError, this.clock());
        throw new FleetError("PROVIDER_WAITING", `premium failed (${lastError}); attempt ${waiting.attempts + 1} at ${new Date(waiting.nextAttemptAt).toISOString()}`, {
          retryAfterMs: Math.max(0, waiting.nextAttemptAt - this.clock()),
        });
      }
      const next = tiers[i + 1];
      if (next !== undefined) fallbacks.push({ from: tier, to: next, reason: lastError });
    }
    throw new FleetError("PROVIDER_FAILED", `every deployment along ${tiers.join(" → ")} failed; last: ${lastError}`);
  }

  /**
   * The tier's deployments in the order to try them: the pool's pick first, the rest after it (still tried when the pick
   * fails or cools down). `weighted` is smooth weighted round-robin (nginx's): deterministic, and any window of calls is
   * shared in proportion to the weights; `least-busy` counts this router's calls in flight.
   */
  private poolOrder(tier: TierName): readonly Deployment[] {
    const list = this.options.deployments[tier];
    const pool = this.options.config.tiers[tier].pool;
    if (list.length < 2 || pool === "failover") return list;
    const available = list.filter((d) => this.options.health.isAvailable(d.id));
    if (available.length === 0) return list;
    let first: Deployment;
    if (pool === "least-busy") {
      first = available.reduce((best, d) => ((this.inFlight.get(d.id) ?? 0) < (this.inFlight.get(best.id) ?? 0) ? d : best));
    } else {
      let total = 0;
      let best: Deployment | undefined;
      for (const d of available) {
        const current = (this.roundRobin.get(d.id) ?? 0) + d.weight;
        this.roundRobin.set(d.id, current);
        total += d.weight;
        if (!best || current > (this.roundRobin.get(best.id) ?? 0)) best = d;
      }
      first = best as Deployment;
      this.roundRobin.set(first.id, (this.roundRobin.get(first.id) ?? 0) - total);
    }
    return [first, ...list.filter((d) => d !== first)];
  }

  /**
   * A paid call's USAGE record is published just before the reply, in the same socket write (RouterService calls
   * `releaseUsage` then): one NATS write per call, not two. Without a service in between (an in-process caller), or
   * when the reply waits for I/O first (a task step's answer is stored), it goes out on the next turn of the event loop.
   */
  private publishBeforeReply(callId: string, publish: () => Promise<void>): Promise<void> {
    return new Promise<void>((resolve) => {
      const start = () => void publish().then(resolve, resolve);
      const queued = this.usageBeforeReply.get(callId);
      if (queued) queued.push(start);
      else this.usageBeforeReply.set(callId, [start]);
      setImmediate(() => this.releaseUsage(callId));
    });
  }

  /** Publishes the USAGE records a call's reply is waiting to carry (see publishBeforeReply). */
  releaseUsage(callId: string): void {
    const queued = this.usageBeforeReply.get(callId);
    if (!queued) return;
    this.usageBeforeReply.delete(callId);
    for (const start of queued) start();
  }

  /** Work that follows a reply (settles, USAGE records): tracked so that `drain` can wait for it. */
  private afterReply(work: Promise<unknown>): void {
    const tracked = work.then(
      () => undefined,
      (err: unknown) => this.options.log.error({ err }, "work after a reply failed"),
    );
    this.pending.add(tracked);
    void tracked.finally(() => this.pending.delete(tracked));
  }

  /** Waits for every settle and USAGE record of the calls answered so far, and writes deferred settles now. */
  async drain(): Promise<void> {
    const flushed = this.options.ledger.flush();
    await Promise.all([...this.pending, flushed]);
    await this.options.ledger.flush();
  }

  /**
   * Books a paid call. A settle that fails (NATS away, a storm of other routers) is retried in the background: the
   * answer still goes back, and until the retry lands the reservation (the worst case) keeps counting against the cap.
   */
  private async settleSurely(reservation: Reservation, cost: number, callId: string, after?: Promise<unknown>): Promise<void> {
    try {
      await this.options.ledger.settle(reservation, cost, after);
    } catch (err) {
      this.options.log.warn({ err, callId, costUsd: cost }, "settle failed; retrying in the background");
      void (async () => {
        for (let attempt = 1; attempt <= 10; attempt++) {
          await sleep(Math.min(30_000, 250 * 2 ** attempt));
          try {
            await this.options.ledger.settle(reservation, cost);
            return;
          } catch (retryErr) {
            if (attempt === 10) this.options.log.error({ err: retryErr, callId, costUsd: cost }, "settle gave up: the reservation expires on its own");
          }
        }
      })();
    }
  }

  /** Names the spent cap by its config path in `details`, so the caller can say whose cap its work waits for. */
  private budgetExhausted(agentId: string, by: "agent" | "fleet"): FleetError {
    const now = this.clock();
    const message = by === "fleet" ? `the fleet's daily budget is spent (asked by ${agentId})` : `the daily budget of ${agentId} is spent`;
    return new FleetError("BUDGET_EXHAUSTED", message, {
      retryAfterMs: nextMidnight(now, this.options.config.fleet.timeZone) - now,
      details: [{ path: by === "fleet" ? "fleet.dailyCapUsd" : `agents.${agentId}.dailyCapUsd`, message: "spent past the nano grace until midnight" }],
    });
  }

  private agentOf(agentId: string): AgentConfig {
    const agent = this.agents.get(agentId);
    if (!agent) throw new FleetError("MESSAGE_INVALID", `no agent "${agentId}" in this fleet`, { details: [{ path: "agentId", message: "unknown agent" }] });
    return agent;
  }

  private async publish(
    request: CompleteRequest,
    callId: string,
    decision: RouteDecision,
    served: { tier: TierName; model: string; deploymentId: string },
    usage: TokenUsage,
    cost: number,
    outcome: { cacheHit: boolean; escalations: number; fallbacks: number; simulated: boolean; ok: boolean; latencyMs: number; attempt: number; error?: string },
  ): Promise<void> {
    await this.options.publishUsage({
      callId, agentId: request.agentId, ...(request.taskId ? { taskId: request.taskId } : {}), ...(request.kind ? { kind: request.kind } : {}),
      ...(request.trigger ? { trigger: request.trigger } : {}), ...(request.taskId ? { title: request.title.slice(0, 200) } : {}),
      requestedTier: decision.requestedTier, servedTier: served.tier, model: served.model, deploymentId: served.deploymentId,
      ...usage, costUsd: cost, decisionReason: decision.reason, at: this.clock(), ...outcome,
    });
  }
}

/**
 * What a call may cost at most: the output budget in full, and the input estimate with 20 % headroom, because the
 * provider's tokenizer is not ours. Caps hold to within one reservation only while the settled cost stays under it.
 */
export function worstCaseUsd(prices: { inputPerM: number; outputPerM: number; cachedPerM: number }, request: Pick<CompleteRequest, "messages" | "tools">, maxOutputTokens: number): number {
  const inputTokens = Math.ceil(estimateInputTokens(request.messages, request.tools) * 1.2);
  return costUsd(prices, { inputTokens, outputTokens: maxOutputTokens, cachedTokens: 0 });
}

/**
 * A turn of a tool-calling conversation is never cached (DESIGN.md): its answer depends on what the tools found, which is
 * the state of the world, not of the request. That covers the turns that offer tools and those that carry tool results.
 */
function isToolTurn(request: CompleteRequest): boolean {
  if (request.tools && request.tools.length > 0) return true;
  return request.messages.some((m) => m.role === "tool" || (m.toolCalls !== undefined && m.toolCalls.length > 0));
}

/** A pure step: a structured answer (responseSchema) to its input alone, with no tools offered or used. */
function isPureStep(request: CompleteRequest): boolean {
  return request.responseSchema !== undefined && !isToolTurn(request);
}

/** The provider's tool calls in the router's wire shape; undefined when the model asked for none. */
function modelToolCalls(answer: ProviderAnswer): ModelToolCall[] | undefined {
  const calls = answer.toolCalls ?? [];
  if (calls.length === 0) return undefined;
  return calls.map((c) => ({ id: c.id, name: c.function.name, arguments: c.function.arguments }));
}

function optionalKey(apiKey: string | undefined): { apiKey?: string } {
  return apiKey === undefined ? {} : { apiKey };
}

function zeroUsage() {
  return { inputTokens: 0, outputTokens: 0, cachedTokens: 0 };
}
