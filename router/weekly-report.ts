import type { RateLimit, TierName } from "../config/index.js";
import { titleOf, type Task, type Trigger, type UsageRecord } from "../protocol/index.js";
import { dedupUsage, kindOf, sumUsage, type CostTotals } from "./cost-report.js";

/*
 * The weekly cost report: a pure function from USAGE records (and the tasks they worked for) to a report object, and
 * from that to its text. Deterministic: the same records give the same report, byte for byte; no model writes it.
 * Records without a trigger (published before USAGE carried one) count under "unknown".
 */

export const WEEK_MS = 7 * 24 * 3_600_000;
const TOP_TASKS = 5;
export const TOKENS_PER_POINT = 1_000;

export interface TriggerLine {
  trigger: Trigger | "unknown";
  /** distinct tasks (calls without a task are counted in calls only) */
  tasks: number;
  calls: number;
  costUsd: number;
  simulatedUsd: number;
  tokens: number;
}

export interface TaskLine {
  taskId: string;
  agentId: string;
  kind: string;
  title: string;
  trigger: Trigger | "unknown";
  calls: number;
  costUsd: number;
  simulatedUsd: number;
  /** input + output tokens of the task's calls in the window: its actual, in tokens */
  tokens: number;
  /** the estimate made when the task was submitted, in points (undefined: none recorded) */
  estimatePoints: number | undefined;
  actualPoints: number;
}

export interface PoolLine {
  tier: TierName;
  deployments: string[];
  calls: number;
  /** the busiest minute of the week, over the pool's deployments together */
  peakRequestsPerMinute: number;
  peakTokensPerMinute: number;
  rateLimit: RateLimit | undefined;
  /** 1 − peak ÷ limit, per limit given; undefined when no limit is configured */
  requestHeadroom: number | undefined;
  tokenHeadroom: number | undefined;
}

export interface WeeklyReport {
  window: { from: number; to: number };
  totals: CostTotals;
  byTrigger: TriggerLine[];
  tokens: { input: number; output: number; cached: number };
  topTasks: TaskLine[];
  trend: { previousCostUsd: number; deltaUsd: number; ratio: number | undefined; previousSimulatedUsd: number };
  pools: PoolLine[];
  /** tasks of the window with an estimate: the sums of estimates and actuals, in points */
  estimates: { tasks: number; estimatePoints: number; actualPoints: number };
}

export interface PoolConfig {
  tier: TierName;
  deployments: string[];
  rateLimit: RateLimit | undefined;
}

/** A task's estimate as submitTask stored it (`metadata.estimate.points`). */
export function estimateOf(task: Task | undefined): number | undefined {
  const estimate = task?.metadata?.estimate;
  if (typeof estimate !== "object" || estimate === null || !("points" in estimate)) return undefined;
  return typeof estimate.points === "number" ? estimate.points : undefined;
}

export const pointsOf = (tokens: number): number => Math.round((tokens / TOKENS_PER_POINT) * 10) / 10;

const tokensOf = (r: UsageRecord): number => r.inputTokens + r.outputTokens;

/**
 * The report of the 7 days ending at `to`, from `records` (any range: the window and the week before are picked out by
 * `at`), the tasks by id (for titles and estimates) and the pools of the config.
 */
export function buildWeeklyReport(records: readonly UsageRecord[], tasks: ReadonlyMap<string, Task>, pools: readonly PoolConfig[], to: number): WeeklyReport {
  const from = to - WEEK_MS;
  const all = dedupUsage(records);
  const week = all.filter((r) => r.at >= from && r.at < to);
  const before = all.filter((r) => r.at >= from - WEEK_MS && r.at < from);
  const totals = sumUsage(week);
  const previous = sumUsage(before);

  const triggers = new Map<string, TriggerLine & { taskIds: Set<string> }>();
  const byTask = new Map<string, TaskLine>();
  for (const r of week) {
    const trigger = r.trigger ?? "unknown";
    let line = triggers.get(trigger);
    if (!line) triggers.set(trigger, (line = { trigger, tasks: 0, calls: 0, costUsd: 0, simulatedUsd: 0, tokens: 0, taskIds: new Set() }));
    line.calls++;
    line.tokens += tokensOf(r);
    if (r.simulated) line.simulatedUsd += r.costUsd;
    else line.costUsd += r.costUsd;
    if (r.taskId) line.taskIds.add(r.taskId);
    if (!r.taskId) continue;
    let task = byTask.get(r.taskId);
    if (!task) {
      const record = tasks.get(r.taskId);
      byTask.set(r.taskId, (task = {
        taskId: r.taskId, agentId: r.agentId, kind: kindOf(r), title: r.title ?? titleOfTask(record) ?? "", trigger, calls: 0,
        costUsd: 0, simulatedUsd: 0, tokens: 0, estimatePoints: estimateOf(record), actualPoints: 0,
      }));
    }
    task.calls++;
    task.tokens += tokensOf(r);
    if (r.simulated) task.simulatedUsd += r.costUsd;
    else task.costUsd += r.costUsd;
  }
  for (const task of byTask.values()) task.actualPoints = pointsOf(task.tokens);
  const byTrigger = [...triggers.values()]
    .map(({ taskIds, ...line }) => ({ ...line, tasks: taskIds.size }))
    .sort((a, b) => b.costUsd - a.costUsd || b.simulatedUsd - a.simulatedUsd || a.trigger.localeCompare(b.trigger));
  // real money outranks an estimate; ties go by tokens, then id, so the order is stable
  const ranked = [...byTask.values()].sort((a, b) => b.costUsd - a.costUsd || b.simulatedUsd - a.simulatedUsd || b.tokens - a.tokens || a.taskId.localeCompare(b.taskId));
  const estimated = ranked.filter((t) => t.estimatePoints !== undefined);
  return {
    window: { from, to },
    totals,
    byTrigger,
    tokens: { input: totals.inputTokens, output: totals.outputTokens, cached: totals.cachedTokens },
    topTasks: ranked.slice(0, TOP_TASKS),
    trend: {
      previousCostUsd: previous.costUsd,
      deltaUsd: totals.costUsd - previous.costUsd,
      ratio: previous.costUsd > 0 ? totals.costUsd / previous.costUsd : undefined,
      previousSimulatedUsd: previous.simulatedUsd,
    },
    pools: pools.map((pool) => poolLine(pool, week)),
    estimates: {
      tasks: estimated.length,
      estimatePoints: round1(estimated.reduce((s, t) => s + (t.estimatePoints ?? 0), 0)),
      actualPoints: round1(estimated.reduce((s, t) => s + t.actualPoints, 0)),
    },
  };
}

const round1 = (n: number): number => Math.round(n * 10) / 10;

function titleOfTask(task: Task | undefined): string | undefined {
  const first = task?.history?.[0];
  return first ? titleOf(first).slice(0, 200) : undefined;
}

/** The busiest minute of the pool in `records`: requests and tokens (input + output) per clock minute. */
export function peakPerMinute(records: readonly UsageRecord[], deployments: readonly string[]): { calls: number; requests: number; tokens: number } {
  const ids = new Set(deployments);
  const minutes = new Map<number, { requests: number; tokens: number }>();
  let calls = 0;
  for (const r of records) {
    // a cache hit never reached the provider: it counts against no limit
    if (!ids.has(r.deploymentId) || r.cacheHit) continue;
    calls++;
    const minute = Math.floor(r.at / 60_000);
    const m = minutes.get(minute) ?? { requests: 0, tokens: 0 };
    m.requests++;
    m.tokens += tokensOf(r);
    minutes.set(minute, m);
  }
  let requests = 0;
  let tokens = 0;
  for (const m of minutes.values()) {
    requests = Math.max(requests, m.requests);
    tokens = Math.max(tokens, m.tokens);
  }
  return { calls, requests, tokens };
}

function poolLine(pool: PoolConfig, week: readonly UsageRecord[]): PoolLine {
  const peak = peakPerMinute(week, pool.deployments);
  const rpm = pool.rateLimit?.requestsPerMinute;
  const tpm = pool.rateLimit?.tokensPerMinute;
  return {
    tier: pool.tier,
    deployments: [...pool.deployments],
    calls: peak.calls,
    peakRequestsPerMinute: peak.requests,
    peakTokensPerMinute: peak.tokens,
    rateLimit: pool.rateLimit,
    requestHeadroom: rpm === undefined ? undefined : 1 - peak.requests / rpm,
    tokenHeadroom: tpm === undefined ? undefined : 1 - peak.tokens / tpm,
  };
}
