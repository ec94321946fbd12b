import { localParts } from "../config/index.js";
import type { WeeklyReport } from "./weekly-report.js";

/** The weekly report as a chat message: plain lines, fixed order, numbers formatted the same way every week. */

export function usdText(n: number): string {
  if (n === 0) return "$0";
  const places = Math.abs(n) < 0.01 ? 4 : 2;
  return `$${n.toLocaleString("en-US", { minimumFractionDigits: places, maximumFractionDigits: places })}`;
}

const count = (n: number): string => n.toLocaleString("en-US", { maximumFractionDigits: 0 });
const pct = (share: number): string => `${Math.round(share * 100)} %`;

function day(epoch: number, timeZone: string): string {
  const p = localParts(epoch, timeZone);
  return `${p.year}-${String(p.month).padStart(2, "0")}-${String(p.day).padStart(2, "0")}`;
}

export function weeklyReportText(report: WeeklyReport, timeZone: string): string {
  const t = report.totals;
  const lines: string[] = [];
  lines.push(`Weekly cost report ${day(report.window.from, timeZone)} → ${day(report.window.to, timeZone)} (${timeZone})`);
  const simulated = t.simulatedUsd > 0 ? ` (+ ${usdText(t.simulatedUsd)} simulated, not billed)` : "";
  lines.push(`Spend: ${usdText(t.costUsd)}${simulated} · ${count(t.calls)} calls · ${count(t.cacheHits)} cache hits · ${count(t.failed)} failed`);
  const tr = report.trend;
  const sign = tr.deltaUsd >= 0 ? "+" : "-";
  const ratio = tr.ratio === undefined ? "" : ` (${tr.ratio.toFixed(2)}×)`;
  lines.push(`Trend: ${usdText(t.costUsd)} vs ${usdText(tr.previousCostUsd)} the week before: ${sign}${usdText(Math.abs(tr.deltaUsd))}${ratio}`);
  lines.push(`Tokens: ${count(report.tokens.input)} input · ${count(report.tokens.output)} output · ${count(report.tokens.cached)} cached`);
  lines.push("Work by trigger:");
  if (report.byTrigger.length === 0) lines.push("  none");
  for (const l of report.byTrigger) {
    lines.push(`  ${l.trigger}: ${count(l.tasks)} task${l.tasks === 1 ? "" : "s"}, ${count(l.calls)} call${l.calls === 1 ? "" : "s"}, ${usdText(l.costUsd)}${l.simulatedUsd > 0 ? ` + ${usdText(l.simulatedUsd)} sim` : ""}`);
  }
  lines.push("Most expensive tasks:");
  if (report.topTasks.length === 0) lines.push("  none");
  report.topTasks.forEach((task, i) => {
    const cost = task.costUsd > 0 || task.simulatedUsd === 0 ? usdText(task.costUsd) : `${usdText(task.simulatedUsd)} sim`;
    const estimate = task.estimatePoints === undefined ? "no estimate" : `est ${task.estimatePoints} pts`;
    lines.push(`  ${i + 1}. ${cost} ${task.agentId}/${task.kind} "${task.title}" [${task.trigger}] ${estimate}, actual ${task.actualPoints} pts (${task.taskId})`);
  });
  const e = report.estimates;
  lines.push(e.tasks === 0 ? "Estimates: no task of the week carried one" : `Estimates: ${count(e.tasks)} tasks, estimated ${e.estimatePoints} pts, actual ${e.actualPoints} pts (1 pt = 1,000 tokens)`);
  lines.push("Deployment pools (busiest minute):");
  for (const p of report.pools) {
    const use = `${count(p.peakRequestsPerMinute)} req/min, ${count(p.peakTokensPerMinute)} tokens/min`;
    if (!p.rateLimit || (p.requestHeadroom === undefined && p.tokenHeadroom === undefined)) {
      lines.push(`  ${p.tier} (${p.deployments.join(", ")}): ${use}; no limit configured`);
      continue;
    }
    const parts = [
      p.requestHeadroom === undefined ? undefined : `${pct(p.requestHeadroom)} of ${count(p.rateLimit.requestsPerMinute ?? 0)} req/min`,
      p.tokenHeadroom === undefined ? undefined : `${pct(p.tokenHeadroom)} of ${count(p.rateLimit.tokensPerMinute ?? 0)} tokens/min`,
    ].filter((x) => x !== undefined);
    lines.push(`  ${p.tier} (${p.deployments.join(", ")}): ${use}; headroom ${parts.join(", ")}`);
  }
  return lines.join("\n");
}
