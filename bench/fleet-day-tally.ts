import { costUsd, type Simulation } from "../router/index.js";
import type { FleetConfig, TierName } from "../config/index.js";
import type { DutyRunRecord, UsageRecord } from "../protocol/index.js";

/*
 * What bench/fleet-day measured, tallied: per agent and served tier the calls, tokens and dollars (at the configured
 * prices, as the router billed them) and the same calls at premium prices; per agent the cycles and duty runs and how
 * many of them cost $0; the findings.
 */

export interface TierRow {
  agentId: string;
  tier: TierName;
  calls: number;
  inputTokens: number;
  outputTokens: number;
  usd: number;
  premiumUsd: number;
}

export interface AgentDay {
  agentId: string;
  cycles: number;
  /** cycles in which the agent made a model call (its own planning, or work it was assigned) */
  costlyCycles: number;
  dutyRuns: number;
  costlyDutyRuns: number;
  cronRuns: number;
  findingRuns: number;
  findings: number;
  usd: number;
  premiumUsd: number;
}

export interface CallShape {
  inputTokens: number;
  outputTokens: number;
}

export interface DayTally {
  rows: TierRow[];
  /** mean tokens per call of each kind: pipeline steps of duties, the orchestrator's plans, other work */
  shapes: { step?: CallShape; plan?: CallShape; work?: CallShape };
  /** share of input tokens the provider reported cached */
  cachedShare: number;
  agents: AgentDay[];
  totals: { calls: number; inputTokens: number; outputTokens: number; usd: number; premiumUsd: number; units: number; zeroUnits: number };
}

/**
 * `cycleMs` per agent and the measured window give the cycles each agent ran (the chart ticks on its interval); a cycle
 * is costly when a call outside duties and cron jobs falls in it (calls grouped by task, or by the cycle interval they
 * fall in when they carry no task).
 */
export function tallyDay(input: {
  config: FleetConfig;
  usage: readonly UsageRecord[];
  duties: readonly DutyRunRecord[];
  findingsByAgent: ReadonlyMap<string, number>;
  windowMs: number;
  cycleMs: (agentId: string) => number;
}): DayTally {
  const premium = input.config.tiers.premium;
  const rows = new Map<string, TierRow>();
  const agents = new Map<string, AgentDay & { cycleKeys: Set<string>; dutyTasks: Set<string> }>();
  for (const a of input.config.agents) {
    const duties = input.duties.filter((d) => d.agentId === a.id);
    const counts = duties.reduce((n, d) => ({ runs: n.runs + d.counts.clean + d.counts.found + d.counts.failed, found: n.found + d.counts.found }), { runs: 0, found: 0 });
    agents.set(a.id, {
      agentId: a.id,
      cycles: Math.floor(input.windowMs / input.cycleMs(a.id)),
      costlyCycles: 0,
      dutyRuns: counts.runs,
      costlyDutyRuns: 0,
      cronRuns: 0,
      findingRuns: counts.found,
      findings: input.findingsByAgent.get(a.id) ?? 0,
      usd: 0,
      premiumUsd: 0,
      cycleKeys: new Set(),
      dutyTasks: new Set(),
    });
  }
  const cronTasks = new Map<string, Set<string>>();
  const orchestrators = new Set(input.config.agents.filter((a) => a.layer === "orchestration").map((a) => a.id));
  const kinds = new Map<"step" | "plan" | "work", { calls: number; input: number; output: number }>();
  let cached = 0;
  for (const r of input.usage) {
    const kind = r.trigger === "duty" ? "step" : r.trigger !== "cron" && orchestrators.has(r.agentId) ? "plan" : "work";
    const k = kinds.get(kind) ?? { calls: 0, input: 0, output: 0 };
    kinds.set(kind, { calls: k.calls + 1, input: k.input + r.inputTokens, output: k.output + r.outputTokens });
    cached += r.cachedTokens;
    const agent = agents.get(r.agentId);
    if (!agent) continue;
    const premiumUsd = costUsd(premium, r);
    const key = `${r.agentId}/${r.servedTier}`;
    const row = rows.get(key) ?? { agentId: r.agentId, tier: r.servedTier, calls: 0, inputTokens: 0, outputTokens: 0, usd: 0, premiumUsd: 0 };
    row.calls += 1;
    row.inputTokens += r.inputTokens;
    row.outputTokens += r.outputTokens;
    row.usd += r.costUsd;
    row.premiumUsd += premiumUsd;
    rows.set(key, row);
    agent.usd += r.costUsd;
    agent.premiumUsd += premiumUsd;
    if (r.trigger === "duty") agent.dutyTasks.add(r.taskId ?? r.callId);
    else if (r.trigger === "cron") cronTasks.set(r.agentId, (cronTasks.get(r.agentId) ?? new Set()).add(r.taskId ?? r.callId));
    else agent.cycleKeys.add(r.taskId ?? `tick-${Math.floor(r.at / input.cycleMs(r.agentId))}`);
  }
  const out: AgentDay[] = [];
  for (const a of agents.values()) {
    const { cycleKeys, dutyTasks, ...day } = a;
    out.push({ ...day, costlyCycles: Math.min(cycleKeys.size, day.cycles), costlyDutyRuns: dutyTasks.size, cronRuns: cronTasks.get(a.agentId)?.size ?? 0 });
  }
  const sorted = [...rows.values()].sort((x, y) => x.agentId.localeCompare(y.agentId) || x.tier.localeCompare(y.tier));
  const units = out.reduce((n, a) => n + a.cycles + a.dutyRuns, 0);
  const costly = out.reduce((n, a) => n + a.costlyCycles + a.costlyDutyRuns, 0);
  const shapes: DayTally["shapes"] = {};
  for (const [kind, k] of kinds) shapes[kind] = { inputTokens: Math.round(k.input / k.calls), outputTokens: Math.round(k.output / k.calls) };
  const inputTokens = sorted.reduce((n, r) => n + r.inputTokens, 0);
  return {
    rows: sorted,
    shapes,
    cachedShare: inputTokens > 0 ? cached / inputTokens : 0,
    agents: out,
    totals: {
      calls: sorted.reduce((n, r) => n + r.calls, 0),
      inputTokens: sorted.reduce((n, r) => n + r.inputTokens, 0),
      outputTokens: sorted.reduce((n, r) => n + r.outputTokens, 0),
      usd: sorted.reduce((n, r) => n + r.usd, 0),
      premiumUsd: sorted.reduce((n, r) => n + r.premiumUsd, 0),
      units,
      zeroUnits: units - costly,
    },
  };
}

/** The projection's figures per agent, for the side-by-side table. */
export function projectedByAgent(s: Simulation): Map<string, { calls: number; usd: number }> {
  const out = new Map<string, { calls: number; usd: number }>();
  for (const row of s.rows) {
    const x = out.get(row.agentId) ?? { calls: 0, usd: 0 };
    out.set(row.agentId, { calls: x.calls + row.callsPerDay, usd: x.usd + row.usdPerDay });
  }
  return out;
}
