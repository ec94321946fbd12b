import type { CostGroup, CostReport } from "../../router/index.js";
import type { CostSeries, DaySpend } from "./cost-series.js";
import { bar, html, usd, type Html } from "./html.js";

/* The costs page: spend per day as an inline SVG bar chart, per agent and per tier with bars, over 7 and N days, trends. */

function trendText(report: CostReport, label: string): Html {
  const t = report.trend;
  if (!t) return html`<span class="muted">no spend in the ${label} before to compare with</span>`;
  const up = t.deltaUsd > 0;
  return html`<span class="${up ? "warn" : "ok"}">${up ? "▲" : t.deltaUsd < 0 ? "▼" : "="} ${usd(Math.abs(t.deltaUsd))}${t.ratio !== undefined ? ` (${t.ratio.toFixed(2)}×)` : ""}</span> against ${usd(t.previousCostUsd)} in the ${label} before`;
}

function rates(report: CostReport): string {
  const t = report.totals;
  if (t.calls === 0) return "no model calls";
  const pct = (n: number) => `${((100 * n) / t.calls).toFixed(1)} %`;
  return `${t.calls} calls · cache hits ${pct(t.cacheHits)} · escalated ${pct(t.escalations)} · failed ${pct(t.failed)} · tokens in/out/cached ${t.inputTokens}/${t.outputTokens}/${t.cachedTokens}`;
}

function groups(title: string, list: CostGroup[]): Html {
  const max = Math.max(0, ...list.map((g) => g.costUsd));
  const rows = list.map((g) => html`<tr data-key="${g.key}"><td>${g.key}</td><td>${usd(g.costUsd)}</td><td style="width:40%">${bar(g.costUsd, max)}</td><td>${g.calls}</td><td>${g.inputTokens + g.outputTokens}</td></tr>`);
  return html`<div class="scroll"><table><thead><tr><th>${title}</th><th>SPENT</th><th></th><th>CALLS</th><th>TOKENS</th></tr></thead><tbody>${rows}</tbody></table></div>`;
}

/** One bar per day, stacked by nothing: the total, with each day's figure in its tooltip. */
export function dayChart(days: DaySpend[]): Html {
  const w = 600;
  const h = 120;
  const max = Math.max(0, ...days.map((d) => d.costUsd));
  const step = w / Math.max(1, days.length);
  const bars = days.map((d, i) => {
    const bh = max > 0 ? Math.max(d.costUsd > 0 ? 1 : 0, (d.costUsd / max) * (h - 20)) : 0;
    return html`<rect x="${(i * step + 1).toFixed(1)}" y="${(h - 15 - bh).toFixed(1)}" width="${Math.max(1, step - 2).toFixed(1)}" height="${bh.toFixed(1)}" fill="#3b6fd8"><title>${d.day}: ${usd(d.costUsd)}</title></rect>`;
  });
  const first = days[0]?.day ?? "";
  const last = days[days.length - 1]?.day ?? "";
  return html`<svg viewBox="0 0 ${w} ${h}" role="img" aria-label="spend per day"><line x1="0" y1="${h - 15}" x2="${w}" y2="${h - 15}" stroke="#98a2b3"/>${bars}
<text x="0" y="${h - 2}" font-size="10" fill="#667085">${first}</text><text x="${w}" y="${h - 2}" font-size="10" fill="#667085" text-anchor="end">${last}</text>
<text x="${w}" y="10" font-size="10" fill="#667085" text-anchor="end">max ${usd(max)}/day</text></svg>`;
}

function window(report: CostReport, days: DaySpend[], n: number): Html {
  return html`<div class="card"><h2>Last ${n} days: ${usd(report.totals.costUsd)}${report.totals.simulatedUsd > 0 ? html` <span class="muted">(+${usd(report.totals.simulatedUsd)} simulated)</span>` : ""}</h2>
<p>${trendText(report, `${n} days`)}</p><p class="muted">${rates(report)}</p>${dayChart(days.slice(-n))}
<h2>By agent</h2>${groups("AGENT", report.byAgent)}<h2>By tier</h2>${groups("TIER", report.byTier)}</div>`;
}

export function costsPage(series: CostSeries, timeZone: string): Html {
  return html`<h1>Costs</h1><p class="muted">From the USAGE stream; days in ${timeZone}, today included.${series.malformed ? ` ${series.malformed} USAGE message(s) did not decode.` : ""}</p>
${window(series.week, series.days, 7)}${window(series.month, series.days, series.monthDays)}`;
}
