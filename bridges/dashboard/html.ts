/*
 * The dashboard's HTML shell: escaping, the layout with its navigation, responsive CSS (tables scroll sideways on a
 * phone, the navigation wraps) and the small script that reloads the page's <main> when /events says something changed.
 */

export function esc(value: unknown): string {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c);
}

/** Tagged template: interpolations are escaped unless they are Html already. */
export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0] ?? "";
  values.forEach((v, i) => {
    out += (Array.isArray(v) ? v.map(part).join("") : part(v)) + (strings[i + 1] ?? "");
  });
  return new Html(out);
}

function part(v: unknown): string {
  return v instanceof Html ? v.text : v === undefined || v === null || v === false ? "" : esc(v);
}

export const PAGES = [
  ["/", "Agents"],
  ["/tasks", "Tasks"],
  ["/proposals", "Proposals"],
  ["/costs", "Costs"],
  ["/held", "Held"],
  ["/dlq", "DLQ"],
  ["/findings", "Findings"],
] as const;

const CSS = `
*{box-sizing:border-box}body{margin:0;font:15px/1.4 system-ui,sans-serif;color:#1c2330;background:#f5f6f8}
header{background:#1c2330;color:#fff;padding:.6rem 1rem;display:flex;flex-wrap:wrap;gap:.4rem 1rem;align-items:center}
header b{margin-right:.5rem}header a{color:#cfd8e6;text-decoration:none;padding:.2rem .4rem;border-radius:4px}
header a.on{background:#3a4660;color:#fff}main{padding:1rem;max-width:1200px;margin:auto}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;background:#fff;font-size:14px}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #e3e6eb;white-space:nowrap}th{background:#eef0f4}
.bad{color:#b42318;font-weight:600}.warn{color:#b54708}.ok{color:#067647}.muted{color:#667085}
.bar{background:#e3e6eb;border-radius:3px;height:8px;min-width:80px}.bar i{display:block;height:8px;border-radius:3px;background:#3b6fd8}
.bar i.warn{background:#f79009}.bar i.bad{background:#d92d20}
.card{background:#fff;border:1px solid #e3e6eb;border-radius:6px;padding:.8rem;margin:0 0 1rem}
.notice{background:#ecfdf3;border:1px solid #abefc6;padding:.5rem .8rem;border-radius:6px;margin-bottom:1rem}
.error{background:#fef3f2;border-color:#fecdca}
button{font:inherit;padding:.35rem .8rem;border-radius:5px;border:1px solid #98a2b3;background:#fff;cursor:pointer}
button.approve{background:#067647;color:#fff;border-color:#067647}button.reject{background:#b42318;color:#fff;border-color:#b42318}
form.inline{display:inline-flex;gap:.3rem;flex-wrap:wrap}input[type=text],input[type=password]{font:inherit;padding:.3rem;min-width:10rem}
svg{max-width:100%;height:auto}h2{font-size:1.1rem;margin:1.2rem 0 .5rem}
@media (max-width:600px){main{padding:.5rem}th,td{padding:.3rem}body{font-size:14px}}
`;

// reloads <main> on a change signal, at most once a second; a lost connection is retried by EventSource itself
const SCRIPT = `
(function(){var busy=false,again=false;function reload(){if(busy){again=true;return}busy=true;
fetch(location.href,{headers:{"X-Partial":"1"}}).then(function(r){return r.ok?r.text():null}).then(function(t){
if(t!==null){var m=document.querySelector("main");if(m)m.innerHTML=t}}).finally(function(){setTimeout(function(){busy=false;if(again){again=false;reload()}},1000)})}
var es=new EventSource("/events");es.addEventListener("refresh",reload);})();
`;

export function layout(title: string, path: string, body: Html): string {
  return (
    "<!doctype html>" +
    html`<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${title} · natsfleet</title><style>${new Html(CSS)}</style></head><body>
<header><b>natsfleet</b>${PAGES.map(([href, label]) => html`<a href="${href}" class="${href === path ? "on" : ""}">${label}</a>`)}</header>
<main>${body}</main><script>${new Html(SCRIPT)}</script></body></html>`.text
  );
}

export function loginPage(error: string | undefined): string {
  return (
    "<!doctype html>" +
    html`<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>log in · natsfleet</title><style>${new Html(CSS)}</style></head><body><header><b>natsfleet</b></header><main>
<div class="card"><form method="post" action="/login"><p>The login token is printed by <code>fleet up</code> and <code>fleet dashboard</code> at start.</p>
${error ? html`<p class="bad">${error}</p>` : ""}<input type="password" name="token" autocomplete="current-password" placeholder="login token" required>
<button type="submit">Log in</button></form></div></main></body></html>`.text
  );
}

/** A horizontal bar for a value against a maximum, coloured by how full it is. */
export function bar(value: number, max: number): Html {
  const share = max > 0 ? Math.min(1, value / max) : 0;
  const cls = share >= 1 ? "bad" : share >= 0.8 ? "warn" : "";
  return html`<div class="bar" title="${(share * 100).toFixed(0)} %"><i class="${cls}" style="width:${(share * 100).toFixed(1)}%"></i></div>`;
}

export function usd(n: number | undefined): string {
  if (n === undefined) return "-";
  if (n === 0) return "$0";
  return `$${n.toFixed(Math.abs(n) < 0.01 ? 4 : 2)}`;
}

export function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s}s`;
  const m = Math.round(s / 60);
  return m < 90 ? `${m}m` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}`;
}
