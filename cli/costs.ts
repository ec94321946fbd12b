import { jetstream } from "@nats-io/jetstream";
import { addDays, DAY_MS, localParts, zonedTimeToEpoch } from "../config/index.js";
// deep paths until router/index.ts names these exports (it is edited elsewhere)
import { buildCostReport, readUsage, type CostGroup, type CostReport } from "../router/index.js";
import { inspect, loadConfig, prefixOf, type CliOptions } from "./options.js";
import { printTable } from "./status.js";

export interface CostsOptions extends CliOptions {
  week?: boolean | undefined;
}

interface Window {
  from: number;
  to: number;
}

/**
 * `fleet costs [--week]`: where the money went, read from the USAGE stream. Today runs from local midnight in the fleet's
 * time zone to now and is compared with yesterday up to the same time of day; --week is the last 7 × 24 h against the 7
 * before. The config is read only for the time zone and the prefix.
 */
export async function costs(options: CostsOptions, env: NodeJS.ProcessEnv, now: number = Date.now()): Promise<number> {
  const config = loadConfig(options);
  const timeZone = config.fleet.timeZone;
  const { current, previous, label, previousLabel } = windows(now, timeZone, options.week === true);
  const { nc, names } = await inspect({ ...options, prefix: prefixOf(options, config) }, env);
  try {
    const read = await readUsage(jetstream(nc), names, previous.from, current.to);
    const before = read.records.filter((r) => r.at >= previous.from && r.at < previous.to);
    const report = buildCostReport(read.records, current, before);
    if (options.json) {
      console.log(JSON.stringify({ label, timeZone, previousWindow: previous, malformed: read.malformed, ...report }, null, 2));
      return 0;
    }
    print(report, { label, previousLabel, timeZone, malformed: read.malformed });
    return 0;
  } finally {
    await nc.close();
  }
}

/** The report's window and the one it is compared with, both ending "now" in their own day or week. */
export function windows(now: number, timeZone: string, week: boolean): { current: Window; previous: Window; label: string; previousLabel: string } {
  if (week) {
    const from = now - 7 * DAY_MS;
    return { current: { from, to: now }, previous: { from: from - 7 * DAY_MS, to: from }, label: "the last 7 days", previousLabel: "the 7 days before" };
  }
  const today = localParts(now, timeZone);
  const midnight = zonedTimeToEpoch(today, "00:00", timeZone);
  const yesterday = zonedTimeToEpoch(addDays(today, -1), "00:00", timeZone);
  return {
    current: { from: midnight, to: now },
    previous: { from: yesterday, to: yesterday + (now - midnight) },
    label: "today",
    previousLabel: "yesterday at this time",
  };
}

/** Dollars to the cent, and to four places below a cent so a cheap tier does not read as free. */
export function usd(n: number): string {
  if (n === 0) return "$0";
  const places = Math.abs(n) < 0.01 ? 4 : 2;
  return `$${n.toLocaleString("en-US", { minimumFractionDigits: places, maximumFractionDigits: places })}`;
}

const count = (n: number): string => n.toLocaleString("en-US", { maximumFractionDigits: 0 });

function localTime(epoch: number, timeZone: string): string {
  const p = localParts(epoch, timeZone);
  const two = (n: number) => String(n).padStart(2, "0");
  return `${p.year}-${two(p.month)}-${two(p.day)} ${two(p.hour)}:${two(p.minute)}`;
}

/**
 * CACHED % is the share of input tokens the provider served from its prompt cache (billed at the cached price);
 * UNCACHED/CALL is the context a call re-sends at the full price, on average: what stable-first prompts should shrink.
 */
function groupRows(groups: CostGroup[]): string[][] {
  return groups.map((g) => [
    g.key, count(g.calls), count(g.inputTokens), count(g.outputTokens), count(g.cachedTokens), cachedShare(g), uncachedPerCall(g), usd(g.costUsd), usd(g.simulatedUsd),
    count(g.cacheHits), count(g.escalations), count(g.fallbacks), count(g.failed),
  ]);
}

function cachedShare(g: CostGroup): string {
  return g.inputTokens === 0 ? "-" : `${((100 * g.cachedTokens) / g.inputTokens).toFixed(1)} %`;
}

function uncachedPerCall(g: CostGroup): string {
  const paid = g.calls - g.cacheHits;
  return paid <= 0 ? "-" : count(Math.max(0, g.inputTokens - g.cachedTokens) / paid);
}

const GROUP_HEADER = ["CALLS", "INPUT", "OUTPUT", "CACHED", "CACHED %", "UNCACHED/CALL", "COST", "SIMULATED", "CACHE HITS", "ESCALATED", "FALLBACKS", "FAILED"];

function print(report: CostReport, o: { label: string; previousLabel: string; timeZone: string; malformed: number }): void {
  const t = report.totals;
  console.log(`fleet costs, ${o.label} (${localTime(report.window.from, o.timeZone)} → ${localTime(report.window.to, o.timeZone)} ${o.timeZone})`);
  if (t.calls === 0) {
    console.log("no model calls in this window");
  } else {
    console.log(
      `spent ${usd(t.costUsd)}` + (t.simulatedCalls > 0 ? ` real, plus ${usd(t.simulatedUsd)} simulated (${count(t.simulatedCalls)} call${t.simulatedCalls === 1 ? "" : "s"}, not billed)` : "") +
        ` · ${count(t.calls)} calls · ${count(t.cacheHits)} cache hits (${((100 * t.cacheHits) / t.calls).toFixed(1)} % hit rate) · ${count(t.escalations)} escalated · ${count(t.fallbacks)} fallbacks · ${count(t.failed)} failed`,
    );
  }
  const trend = report.trend;
  if (!trend) console.log(`trend: no calls ${o.previousLabel} to compare with`);
  else {
    const sign = trend.deltaUsd >= 0 ? "+" : "-";
    const ratio = trend.ratio === undefined ? "" : ` (${trend.ratio.toFixed(2)}×)`;
    const simulated = trend.simulatedUsd > 0 || trend.previousSimulatedUsd > 0 ? `; simulated ${usd(trend.simulatedUsd)} vs ${usd(trend.previousSimulatedUsd)}` : "";
    console.log(`trend: ${usd(trend.costUsd)} vs ${usd(trend.previousCostUsd)} ${o.previousLabel}: ${sign}${usd(Math.abs(trend.deltaUsd))}${ratio}${simulated}`);
  }
  if (o.malformed > 0) console.log(`${o.malformed} USAGE messages did not decode and were skipped`);
  if (t.calls === 0) return;
  for (const [title, groups] of [["AGENT", report.byAgent], ["TIER", report.byTier], ["KIND", report.byKind]] as const) {
    console.log();
    printTable([title, ...GROUP_HEADER], groupRows(groups));
  }
  console.log();
  printTable(
    ["TOP CALLS", "AGENT", "TIER", "KIND", "MODEL", "IN/OUT/CACHED", "WHEN", "CALL"],
    report.topCalls.map((c) => [
      usd(c.costUsd) + (c.simulated ? " (sim)" : ""), c.agentId, c.servedTier + (c.escalations > 0 ? " ↑" : ""), c.kind, c.model,
      `${count(c.inputTokens)}/${count(c.outputTokens)}/${count(c.cachedTokens)}`, localTime(c.at, o.timeZone), `${c.callId}#${c.attempt}`,
    ]),
  );
  if (report.topCalls.some((c) => c.escalations > 0)) console.log("↑ the tier an escalation (a failed check) led to");
}
