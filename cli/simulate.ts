import { describeAssumptions, simulateFleet, type Simulation } from "../router/index.js";
import { configPath, loadConfig, type CliOptions } from "./options.js";
import { usd } from "./costs.js";

export interface SimulateOptions extends CliOptions {
  days?: string | undefined;
}

/**
 * `fleet simulate [--days 30]`: what the config will cost per agent and tier, against sending every call to premium.
 * Needs no NATS and spends nothing: it reads the config and projects an average day (router/simulate.ts says how).
 */
export async function simulate(options: SimulateOptions): Promise<number> {
  const days = options.days === undefined ? 30 : Number(options.days);
  if (!Number.isFinite(days) || days <= 0) {
    console.error(`fleet: --days must be a positive number (got "${options.days}")`);
    return 2;
  }
  const config = loadConfig(options);
  const simulation = simulateFleet(config, { days });
  if (options.json) {
    console.log(JSON.stringify({ fleet: config.fleet.name, config: configPath(options), notes: describeAssumptions(simulation), ...simulation }, null, 2));
    return 0;
  }
  console.log(`fleet simulate: ${config.fleet.name}, ${days} days (${configPath(options)})`);
  console.log();
  for (const line of simulationTable(simulation)) console.log(line);
  return 0;
}

export function periodName(days: number): string {
  return days === 30 ? "month" : `${days} days`;
}

const calls = (n: number): string => (Number.isInteger(n) ? String(n) : n.toFixed(1));
const tokens = (n: number): string => Math.round(n).toLocaleString("en-US");

/** The table operators publish, as lines: one row per agent and tier, the total, the baseline, the assumptions. */
export function simulationTable(s: Simulation): string[] {
  const period = periodName(s.days);
  const lines: string[] = [];
  const rows = s.rows.map((r) => [
    r.agentId, r.tier, r.steps, calls(r.callsPerDay), tokens(r.inputTokensPerDay), tokens(r.outputTokensPerDay),
    usd(r.usdPerDay) + (r.capped ? " (cap)" : ""), usd(r.usdPerPeriod),
  ]);
  rows.push(["total", "", "", calls(s.totals.callsPerDay), tokens(s.totals.inputTokensPerDay), tokens(s.totals.outputTokensPerDay), usd(s.totals.usdPerDay), usd(s.totals.usdPerPeriod)]);
  const header = ["AGENT", "TIER", "STEPS", "CALLS/DAY", "IN TOKENS/DAY", "OUT TOKENS/DAY", "COST/DAY", `COST/${period.toUpperCase()}`];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  // numbers right-aligned (columns 3 and on), as in the tables operators publish
  const line = (cells: string[]) => cells.map((c, i) => (i >= 3 ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join("  ").trimEnd();
  lines.push(line(header));
  rows.forEach((r, i) => {
    if (i === rows.length - 1) lines.push(widths.map((w) => "-".repeat(w)).join("  "));
    lines.push(line(r));
  });
  lines.push("");
  const capped = s.agents.filter((a) => a.capped);
  if (capped.length > 0) {
    lines.push(`capped: ${capped.map((a) => `${a.agentId} (${usd(a.uncappedUsdPerDay)}/day projected, cap ${usd(a.capUsd)})`).join(", ")}` + (s.fleetCapped ? "; the fleet total is clipped to fleet.dailyCapUsd" : ""));
  }
  const verdict = s.ratio === undefined || s.savedShare === undefined
    ? "nothing to compare"
    : `${s.ratio.toFixed(1)}× cheaper / ${Math.round(s.savedShare * 100)} % saved`;
  lines.push(`this fleet: ${usd(s.totals.usdPerPeriod)}/${period} vs ${usd(s.baseline.usdPerPeriod)}/${period} if every call went to premium: ${verdict}`);
  lines.push("");
  lines.push("assumptions:");
  for (const note of describeAssumptions(s)) lines.push(`  - ${note}`);
  return lines;
}
