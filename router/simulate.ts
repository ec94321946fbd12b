import { parseHhmm, runsPerDay, scheduleOf, TierName, type FleetConfig, type PipelineConfig } from "../config/index.js";
import { costUsd } from "./cost.js";
import { plansPerDay } from "./simulate-plans.js";

/*
 * What a fleet config will cost before it spends anything: a projection of an average day per agent and tier, against
 * the same calls all sent to premium. Pure and deterministic: config and assumptions in, tables out.
 *
 * The model, and where it is knowingly rough:
 * - An agent runs a cycle every cycleMinutes outside the fleet's quiet hours (an average day: the quotient, not a count
 *   of timer ticks; a 23- or 25-hour DST day is ignored).
 * - A cycle with nothing to do makes no model call (the agent chart ends it before planning), so idle cycles cost nothing.
 * - On workShare of the cycles, and once per cron job run (but an orchestrator's job its own skills match best: its
 *   status report, built without a model), the agent does a working step: one call at its default tier,
 *   preceded by one cheap triage call at the triage tier (nano: the routing classifier, or a "what is this?" step).
 *   Routing rules, the classifier, escalations, fallbacks and the semantic cache are not modelled: they move individual
 *   steps up or down, which a projection from config alone cannot know.
 * - Duties, and cron jobs that run a pipeline, cost what their pipeline's model steps cost: tool steps are $0, a model
 *   step without a condition is one call per run at its tier or alias (else the duty's, else the agent's default tier),
 *   and a step with a condition (in the shipped pipelines: "only when the tool steps found something") counts at
 *   findingRate, the share of runs assumed to find something. Escalations of a step that fails its check are not modelled.
 * - The orchestrator (the agent of layer orchestration) plans on a cycle only when something changed: at most once per
 *   cycle: woken by each run assumed to find something (at findingRate) and each task completed by an agent that reports
 *   to it (its note), at planning.tier. The wake-ups are placed at their runs' due times over a week and taken by the
 *   cycle after them (simulate-plans.ts): several in one cycle make one plan, and the night's wait for the morning.
 * - cachedInputShare of every call's input tokens are billed at the tier's cached price (the system prompt, skills and
 *   tool definitions repeat from call to call).
 * - A projected day above the agent's daily cap is clipped to the cap and flagged, and the fleet total to the fleet's cap:
 *   the budget chart downgrades at downgradeAt and stops at the cap, so such an agent does less work than projected.
 * - The baseline is the same calls, tokens and cache share at premium prices, with no caps.
 */

export interface CallShape {
  inputTokens: number;
  outputTokens: number;
}

export interface SimulationAssumptions {
  /** the tier of the per-cycle "anything to do?" call */
  triageTier: TierName;
  triage: CallShape;
  work: CallShape;
  /** share of cycles (0..1) that go on to a working step */
  workShare: number;
  /** share of input tokens (0..1) billed at the cached price */
  cachedInputShare: number;
  /** a pipeline model step's call */
  step: CallShape;
  /** the orchestrator's plan call */
  plan: CallShape;
  /** share of a duty's runs (0..1) that find something, so that its conditioned model steps run */
  findingRate: number;
}

export const DEFAULT_ASSUMPTIONS: Readonly<SimulationAssumptions> = Object.freeze({
  triageTier: "nano",
  triage: Object.freeze({ inputTokens: 600, outputTokens: 50 }),
  work: Object.freeze({ inputTokens: 3_000, outputTokens: 800 }),
  workShare: 0.3,
  cachedInputShare: 0.3,
  step: Object.freeze({ inputTokens: 1_200, outputTokens: 300 }),
  plan: Object.freeze({ inputTokens: 4_000, outputTokens: 600 }),
  findingRate: 0.1,
});

export interface SimulationRow {
  agentId: string;
  tier: TierName;
  /** which calls the row holds, joined by "+" when they share a tier: triage, work (cycles and message jobs), duty
   * (pipeline model steps of duties and pipeline jobs), plan (the orchestrator's plans) */
  steps: string;
  callsPerDay: number;
  inputTokensPerDay: number;
  outputTokensPerDay: number;
  /** after the agent's and the fleet's caps */
  usdPerDay: number;
  usdPerPeriod: number;
  capped: boolean;
}

export interface SimulatedAgent {
  agentId: string;
  cyclesPerDay: number;
  /** cron job runs per day (a job on some weekdays counts its share of the week) */
  cronRunsPerDay: number;
  /** duty runs per day, and the model calls they are expected to make */
  dutyRunsPerDay: number;
  dutyCallsPerDay: number;
  capUsd: number;
  uncappedUsdPerDay: number;
  usdPerDay: number;
  capped: boolean;
}

export interface SimulationTotals {
  callsPerDay: number;
  inputTokensPerDay: number;
  outputTokensPerDay: number;
  usdPerDay: number;
  usdPerPeriod: number;
}

export interface Simulation {
  days: number;
  assumptions: SimulationAssumptions;
  /** minutes per day outside the fleet's quiet hours */
  activeMinutesPerDay: number;
  rows: SimulationRow[];
  agents: SimulatedAgent[];
  totals: SimulationTotals;
  /** the agents' capped days added up to more than fleet.dailyCapUsd and were clipped to it */
  fleetCapped: boolean;
  baseline: { usdPerDay: number; usdPerPeriod: number };
  /** baseline ÷ projection ("N× cheaper"); undefined when the projection is zero */
  ratio: number | undefined;
  /** 1 − projection ÷ baseline; undefined when the baseline is zero */
  savedShare: number | undefined;
}

const DAY_MINUTES = 24 * 60;

/** Minutes per day outside a daily [start, end) window; a window that crosses midnight wraps; start = end is never quiet. */
export function activeMinutes(quietHours: { start: string; end: string }): number {
  const start = parseHhmm(quietHours.start);
  const end = parseHhmm(quietHours.end);
  const quiet = (end.hour * 60 + end.minute - (start.hour * 60 + start.minute) + DAY_MINUTES) % DAY_MINUTES;
  return DAY_MINUTES - quiet;
}

function share(name: string, value: number): number {
  if (!(value >= 0 && value <= 1)) throw new RangeError(`${name} must be between 0 and 1 (got ${value})`);
  return value;
}

function resolveAssumptions(partial: Partial<SimulationAssumptions> = {}): SimulationAssumptions {
  const a: SimulationAssumptions = {
    triageTier: partial.triageTier ?? DEFAULT_ASSUMPTIONS.triageTier,
    triage: { ...DEFAULT_ASSUMPTIONS.triage, ...partial.triage },
    work: { ...DEFAULT_ASSUMPTIONS.work, ...partial.work },
    step: { ...DEFAULT_ASSUMPTIONS.step, ...partial.step },
    plan: { ...DEFAULT_ASSUMPTIONS.plan, ...partial.plan },
    findingRate: share("findingRate", partial.findingRate ?? DEFAULT_ASSUMPTIONS.findingRate),
    workShare: share("workShare", partial.workShare ?? DEFAULT_ASSUMPTIONS.workShare),
    cachedInputShare: share("cachedInputShare", partial.cachedInputShare ?? DEFAULT_ASSUMPTIONS.cachedInputShare),
  };
  for (const [name, v] of [["triage", a.triage], ["work", a.work], ["step", a.step], ["plan", a.plan]] as const) {
    if (!(v.inputTokens >= 0 && v.outputTokens >= 0)) throw new RangeError(`${name} tokens must not be negative`);
  }
  return a;
}

export function simulateFleet(config: FleetConfig, options: { days: number; assumptions?: Partial<SimulationAssumptions> }): Simulation {
  const { days } = options;
  if (!(days > 0)) throw new RangeError(`days must be positive (got ${days})`);
  const a = resolveAssumptions(options.assumptions);
  const active = activeMinutes(config.fleet.quietHours);
  const price = (tier: TierName) => config.tiers[tier];
  const callUsd = (tier: TierName, shape: CallShape, calls: number) =>
    calls * costUsd(price(tier), { ...shape, cachedTokens: Math.round(shape.inputTokens * a.cachedInputShare) });

  const rows: SimulationRow[] = [];
  const agents: SimulatedAgent[] = [];
  let baselineUsd = 0;
  for (const agent of config.agents) {
    const cyclesPerDay = active / agent.cycleMinutes;
    // a job that runs a tool is tier 0: no model call; one that runs a pipeline costs its model steps
    const jobs = config.cron.filter((job) => job.agent === agent.id && job.tool === undefined);
    const cronRunsPerDay = jobs.reduce((n, job) => n + runsPerDay(scheduleOf(job), config.fleet.timeZone), 0);
    // the orchestrator answers a message its own skills match best (its status report) from the fleet's records: no call
    const messageRunsPerDay = jobs
      .filter((job) => job.pipeline === undefined && !(agent.layer === "orchestration" && answersItself(config, agent, job.message ?? "")))
      .reduce((n, job) => n + runsPerDay(scheduleOf(job), config.fleet.timeZone), 0);
    const workCalls = cyclesPerDay * a.workShare + messageRunsPerDay;
    const triageCalls = workCalls;

    const parts: { tier: TierName; steps: string; calls: number; shape: CallShape }[] = [
      { tier: a.triageTier, steps: "triage", calls: triageCalls, shape: a.triage },
      { tier: agent.defaultTier, steps: "work", calls: workCalls, shape: a.work },
    ];
    let dutyRunsPerDay = 0;
    let dutyCallsPerDay = 0;
    const scheduled = [
      ...agent.duties.map((d) => ({ pipeline: d.pipeline, tier: d.tier, runs: runsPerDay(scheduleOf(d), config.fleet.timeZone), duty: true })),
      ...jobs.flatMap((job) => (job.pipeline === undefined ? [] : [{ pipeline: job.pipeline, tier: job.tier, runs: runsPerDay(scheduleOf(job), config.fleet.timeZone), duty: false }])),
    ];
    for (const run of scheduled) {
      const pipeline = config.pipelines[run.pipeline];
      if (run.duty) dutyRunsPerDay += run.runs;
      if (!pipeline) continue;
      for (const [tier, calls] of pipelineCalls(config, pipeline, tierOf(config, run.tier) ?? agent.defaultTier, a.findingRate)) {
        parts.push({ tier, steps: "duty", calls: calls * run.runs, shape: a.step });
        if (run.duty) dutyCallsPerDay += calls * run.runs;
      }
    }
    if (agent.layer === "orchestration") {
      // the wake-ups placed on the day's timeline; a cycle plans once however many arrived since the last
      const plans = plansPerDay(config, agent, a);
      parts.push({ tier: tierOf(config, config.planning.tier) ?? agent.defaultTier, steps: "plan", calls: plans, shape: a.plan });
    }
    for (const part of parts) baselineUsd += callUsd("premium", part.shape, part.calls);

    const agentRows = new Map<TierName, SimulationRow>();
    for (const part of parts) {
      if (part.calls === 0 && part.steps !== "triage" && part.steps !== "work") continue;
      const row = agentRows.get(part.tier) ?? { agentId: agent.id, tier: part.tier, steps: part.steps, callsPerDay: 0, inputTokensPerDay: 0, outputTokensPerDay: 0, usdPerDay: 0, usdPerPeriod: 0, capped: false };
      if (!row.steps.split("+").includes(part.steps)) row.steps = `${row.steps}+${part.steps}`;
      row.callsPerDay += part.calls;
      row.inputTokensPerDay += part.calls * part.shape.inputTokens;
      row.outputTokensPerDay += part.calls * part.shape.outputTokens;
      row.usdPerDay += callUsd(part.tier, part.shape, part.calls);
      agentRows.set(part.tier, row);
    }
    const uncapped = [...agentRows.values()].reduce((sum, r) => sum + r.usdPerDay, 0);
    const capped = uncapped > agent.dailyCapUsd;
    // a capped day is spread over the agent's rows in proportion: which calls the downgrade hits is not knowable here
    if (capped) for (const row of agentRows.values()) Object.assign(row, { usdPerDay: (row.usdPerDay * agent.dailyCapUsd) / uncapped, capped: true });
    rows.push(...agentRows.values());
    agents.push({ agentId: agent.id, cyclesPerDay, cronRunsPerDay, dutyRunsPerDay, dutyCallsPerDay, capUsd: agent.dailyCapUsd, uncappedUsdPerDay: uncapped, usdPerDay: Math.min(uncapped, agent.dailyCapUsd), capped });
  }

  const agentsTotal = agents.reduce((sum, x) => sum + x.usdPerDay, 0);
  const fleetCapped = agentsTotal > config.fleet.dailyCapUsd;
  if (fleetCapped) {
    const scale = config.fleet.dailyCapUsd / agentsTotal;
    for (const row of rows) Object.assign(row, { usdPerDay: row.usdPerDay * scale, capped: true });
    for (const x of agents) Object.assign(x, { usdPerDay: x.usdPerDay * scale, capped: true });
  }
  for (const row of rows) row.usdPerPeriod = row.usdPerDay * days;

  const totals: SimulationTotals = { callsPerDay: 0, inputTokensPerDay: 0, outputTokensPerDay: 0, usdPerDay: 0, usdPerPeriod: 0 };
  for (const row of rows) {
    totals.callsPerDay += row.callsPerDay;
    totals.inputTokensPerDay += row.inputTokensPerDay;
    totals.outputTokensPerDay += row.outputTokensPerDay;
    totals.usdPerDay += row.usdPerDay;
  }
  totals.usdPerPeriod = totals.usdPerDay * days;
  return {
    days,
    assumptions: a,
    activeMinutesPerDay: active,
    rows,
    agents,
    totals,
    fleetCapped,
    baseline: { usdPerDay: baselineUsd, usdPerPeriod: baselineUsd * days },
    ratio: totals.usdPerDay > 0 ? baselineUsd / totals.usdPerDay : undefined,
    savedShare: baselineUsd > 0 ? 1 - totals.usdPerDay / baselineUsd : undefined,
  };
}

/**
 * Whether the orchestrator keeps a message for itself rather than delegating it: no other agent's skill tags match it
 * better than its own (as behaviours/atlas-behaviour.ts decides); it answers those with its status report, built from
 * the fleet's records without a model.
 */
function answersItself(config: FleetConfig, orchestrator: FleetConfig["agents"][number], text: string): boolean {
  const haystack = text.toLowerCase();
  const score = (agent: FleetConfig["agents"][number]) => Math.max(0, ...agent.skills.map((s) => s.tags.filter((t) => haystack.includes(t.toLowerCase())).length));
  const own = score(orchestrator);
  const best = Math.max(0, ...config.agents.filter((a) => a.id !== orchestrator.id).map(score));
  return best === 0 || (own > 0 && own >= best);
}

/** A tier name, or the tier of an alias the routing config knows; undefined for neither (or nothing named). */
function tierOf(config: FleetConfig, name: string | undefined): TierName | undefined {
  if (name === undefined) return undefined;
  const tier = TierName.safeParse(name);
  return tier.success ? tier.data : config.routing.aliases[name]?.tier;
}

/** A pipeline run's expected model calls per tier: 1 per unconditioned model step, findingRate per conditioned one. */
export function pipelineCalls(config: FleetConfig, pipeline: PipelineConfig, fallback: TierName, findingRate: number): Map<TierName, number> {
  const calls = new Map<TierName, number>();
  for (const step of pipeline.steps) {
    if (!("model" in step)) continue;
    const tier = tierOf(config, step.model.tier) ?? fallback;
    calls.set(tier, (calls.get(tier) ?? 0) + (step.when === undefined ? 1 : findingRate));
  }
  return calls;
}

/** The assumptions in words, for the printed table and the README: a projection is only as good as these. */
export function describeAssumptions(s: Simulation): string[] {
  const a = s.assumptions;
  const n = (x: number) => x.toLocaleString("en-US");
  const hours = (s.activeMinutesPerDay / 60).toFixed(s.activeMinutesPerDay % 60 === 0 ? 0 : 1);
  return [
    `cycles run ${hours} h a day (outside quiet hours), one every cycleMinutes; a cycle with nothing to do makes no model call`,
    `${Math.round(a.workShare * 100)} % of cycles, and every run of a message cron job, do a working step at the agent's default tier (${n(a.work.inputTokens)} in / ${n(a.work.outputTokens)} out tokens), triaged first at ${a.triageTier} (${n(a.triage.inputTokens)} in / ${n(a.triage.outputTokens)} out)`,
    `duties and pipeline jobs: each model step is one call per run (${n(a.step.inputTokens)} in / ${n(a.step.outputTokens)} out); a step conditioned on findings counts at ${Math.round(a.findingRate * 100)} % of runs (the assumed finding rate); tool steps are $0`,
    `the orchestrator plans (at planning.tier, ${n(a.plan.inputTokens)} in / ${n(a.plan.outputTokens)} out) woken by each run that finds something and each task of an agent reporting to it, placed at their due times; several in one cycle make one plan`,
    `${Math.round(a.cachedInputShare * 100)} % of input tokens are billed at the cached price; routing rules, escalations and the semantic cache are not modelled`,
    `a day above an agent's cap (or the fleet's) is clipped to it; the baseline sends the same calls to premium without caps`,
  ];
}
