import { DeliverPolicy, type ConsumerMessages, type JetStreamClient } from "@nats-io/jetstream";
import type { Logger } from "pino";
import { Counter, Gauge, Registry } from "prom-client";
import { codecForContentType, PROPOSAL_STATES, UsageRecord, type FleetNames } from "../../protocol/index.js";
import { decodeRecord, type FleetReader } from "./fleet-reader.js";
import type { TaskIndex } from "./task-index.js";
import type { ProposalEntries } from "./proposal-entries.js";
import type { UsageDays } from "./cost-series.js";

/*
 * /metrics in the Prometheus text format. Counters come from the USAGE stream, followed from its first retained record
 * (each call counted once, by callId and attempt), so they rise with every model call the router records; gauges are
 * read from the fleet's records at scrape time. Labels are agent and tier (and a state where the metric is "by state"),
 * never a task or call id.
 */

const AGENT_TIER = ["agent", "tier"] as const;
const BREAKER_VALUE = { closed: 0, "half-open": 1, open: 2 } as const;

export class FleetMetrics {
  readonly registry = new Registry();
  private readonly seen = new Set<string>();
  private messages: ConsumerMessages | undefined;
  private following: Promise<void> | undefined;

  private readonly spend = this.counter("natsfleet_model_spend_usd_total", "Money paid for model calls, in US dollars (simulated calls excluded).");
  private readonly simulated = this.counter("natsfleet_model_simulated_spend_usd_total", "What simulated model calls would have cost, in US dollars.");
  private readonly calls = this.counter("natsfleet_model_calls_total", "Model calls recorded by the router (cache hits and failures included).");
  private readonly inputTokens = this.counter("natsfleet_model_input_tokens_total", "Input (prompt) tokens of model calls.");
  private readonly outputTokens = this.counter("natsfleet_model_output_tokens_total", "Output (completion) tokens of model calls.");
  private readonly cachedTokens = this.counter("natsfleet_model_cached_tokens_total", "Input tokens the provider served from its prompt cache.");
  private readonly cacheHits = this.counter("natsfleet_model_cache_hits_total", "Calls answered from the router's semantic cache.");
  private readonly escalations = this.counter("natsfleet_model_escalated_calls_total", "Calls made after a failed check escalated the step.");
  private readonly failures = this.counter("natsfleet_model_failed_calls_total", "Calls that failed.");
  private readonly latency = this.counter("natsfleet_model_call_duration_seconds_total", "Summed latency of model calls, in seconds.");

  private readonly routerUp = this.gauge("natsfleet_router_up", "1 when a router answered the usage request of this scrape.", []);
  private readonly spentToday = this.gauge("natsfleet_budget_spent_usd", "Spent today (the fleet's day) against the agent's daily cap, in US dollars.", ["agent"]);
  private readonly capUsd = this.gauge("natsfleet_budget_cap_usd", "The agent's daily cap, in US dollars.", ["agent"]);
  private readonly remaining = this.gauge("natsfleet_budget_remaining_usd", "The agent's daily cap left today (cap - spent - reserved), in US dollars.", ["agent"]);
  private readonly fleetRemaining = this.gauge("natsfleet_fleet_budget_remaining_usd", "The fleet's daily cap left today, in US dollars.", []);
  private readonly premiumWaiting = this.gauge("natsfleet_premium_waiting_calls", "Premium calls waiting for their provider to come back.", []);
  private readonly agentUp = this.gauge("natsfleet_agent_up", "1 when the agent's heartbeat is current.", ["agent"]);
  private readonly breaker = this.gauge("natsfleet_agent_breaker_state", "The agent's circuit breaker: 0 closed, 1 half-open, 2 open.", ["agent"]);
  private readonly tasks = this.gauge("natsfleet_tasks", "Tasks in KV tasks by agent and state.", ["agent", "state"]);
  private readonly proposals = this.gauge("natsfleet_proposals", "Proposals by state.", ["state"]);
  private readonly held = this.gauge("natsfleet_held_tasks", "Model work held (quiet hours, a spent cap) by agent and reason.", ["agent", "reason"]);
  private readonly dlq = this.gauge("natsfleet_dlq_messages", "Messages in the dead-letter stream.", []);

  constructor(
    private readonly deps: {
      js: JetStreamClient;
      names: FleetNames;
      reader: FleetReader;
      tasks: TaskIndex;
      proposals: ProposalEntries;
      /** also fed each USAGE record once, for the costs page */
      days?: UsageDays | undefined;
      log: Logger;
      clock: { now(): number };
    },
  ) {}

  /** Starts following USAGE; resolves once every record already in the stream is counted. */
  async start(): Promise<void> {
    const stream = this.deps.names.stream("USAGE");
    const consumer = await this.deps.js.consumers.get(stream, { deliver_policy: DeliverPolicy.All });
    const pending = (await consumer.info(true)).num_pending;
    this.messages = await consumer.consume();
    let counted = 0;
    let caughtUp!: () => void;
    const ready = new Promise<void>((r) => (caughtUp = r));
    if (pending === 0) caughtUp();
    this.following = (async () => {
      for await (const m of this.messages!) {
        const record = decodeRecord(UsageRecord, m.data, codecForContentType(m.headers?.get("Content-Type"), "msgpack") ?? "msgpack");
        if (record) this.count(record);
        else this.deps.days?.malformed();
        if (++counted >= pending) caughtUp();
      }
    })().catch((err: unknown) => this.deps.log.warn({ err }, "USAGE follower stopped"));
    await Promise.race([ready, this.following]);
  }

  async stop(): Promise<void> {
    this.messages?.stop();
    await this.following;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** The exposition text; the gauges are read fresh first. */
  async render(): Promise<string> {
    await this.refresh();
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private count(r: UsageRecord): void {
    const key = `${r.callId}#${r.attempt}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.deps.days?.add(r);
    const labels = { agent: r.agentId, tier: r.servedTier };
    (r.simulated ? this.simulated : this.spend).inc(labels, r.costUsd);
    this.calls.inc(labels);
    this.inputTokens.inc(labels, r.inputTokens);
    this.outputTokens.inc(labels, r.outputTokens);
    this.cachedTokens.inc(labels, r.cachedTokens);
    this.latency.inc(labels, r.latencyMs / 1000);
    // a zero increment still creates the series, so a rate over them is defined from the first call on
    this.cacheHits.inc(labels, r.cacheHit ? 1 : 0);
    this.escalations.inc(labels, r.escalations > 0 ? 1 : 0);
    this.failures.inc(labels, r.ok ? 0 : 1);
  }

  private async refresh(): Promise<void> {
    const { reader } = this.deps;
    const now = this.deps.clock.now();
    const usage = await reader.usage();
    const [agents, tasks, proposals, held, dlq] = await Promise.all([reader.agents(now, usage), this.deps.tasks.countsByAgentAndState(), this.deps.proposals.countsByState(), reader.held(), reader.dlqDepth()]);
    for (const g of [this.spentToday, this.capUsd, this.remaining, this.agentUp, this.breaker, this.tasks, this.proposals, this.held]) g.reset();
    this.routerUp.set(usage ? 1 : 0);
    if (usage) {
      this.fleetRemaining.set(Math.max(0, usage.fleet.capUsd - usage.fleet.spentUsd - usage.fleet.reservedUsd));
      this.premiumWaiting.set(usage.waiting.length);
      for (const [agent, view] of Object.entries(usage.agents)) {
        this.spentToday.set({ agent }, view.spentUsd);
        this.capUsd.set({ agent }, view.capUsd);
        this.remaining.set({ agent }, Math.max(0, view.capUsd - view.spentUsd - view.reservedUsd));
      }
    }
    for (const a of agents) {
      this.agentUp.set({ agent: a.agentId }, a.alive ? 1 : 0);
      this.breaker.set({ agent: a.agentId }, BREAKER_VALUE[a.breaker]);
    }
    for (const c of tasks) this.tasks.set({ agent: c.agent, state: c.state.toLowerCase() }, c.n);
    for (const state of PROPOSAL_STATES) this.proposals.set({ state }, proposals.get(state) ?? 0);
    for (const h of held) this.held.inc({ agent: h.agentId, reason: h.hold.reason });
    this.dlq.set(dlq);
  }

  private counter(name: string, help: string): Counter<"agent" | "tier"> {
    return new Counter({ name, help, labelNames: AGENT_TIER, registers: [this.registry] });
  }

  private gauge<L extends string>(name: string, help: string, labelNames: readonly L[]): Gauge<L> {
    return new Gauge({ name, help, labelNames, registers: [this.registry] });
  }
}
