import type { Finding, HeldTask, ProposalRecord, UsageReply } from "../../protocol/index.js";
import type { AgentRow, DeadLetterRow, TaskPage, TaskRow } from "./fleet-reader.js";
import { ago, bar, html, usd, type Html } from "./html.js";

/* The pages about the fleet's work: agents, tasks, proposals awaiting a person, held work, dead letters, findings. */

function table(header: string[], rows: Html[]): Html {
  return html`<div class="scroll"><table><thead><tr>${header.map((h) => html`<th>${h}</th>`)}</tr></thead><tbody>${rows}</tbody></table></div>`;
}

function empty(text: string): Html {
  return html`<p class="muted">${text}</p>`;
}

export function agentsPage(agents: AgentRow[], usage: UsageReply | undefined, now: number): Html {
  const fleet = usage
    ? html`<div class="card">Fleet today (${usage.day}): <b>${usd(usage.fleet.spentUsd)}</b> of ${usd(usage.fleet.capUsd)} ${bar(usage.fleet.spentUsd, usage.fleet.capUsd)}
${usage.fleet.state !== "normal" ? html`<span class="warn">${usage.fleet.state}</span>` : ""}${usage.waiting.length ? html` · ${usage.waiting.length} premium call(s) waiting` : ""}</div>`
    : html`<div class="card warn">No router answers: today's spend is unknown.</div>`;
  const rows = agents.map(
    (a) => html`<tr data-agent="${a.agentId}"><td><b>${a.agentId}</b><br><span class="muted">${a.name}</span></td>
<td class="${a.alive ? "ok" : a.state === "DOWN" ? "bad" : "muted"}">${a.state}${a.currentTaskId ? html`<br><span class="muted">${a.currentTaskId}</span>` : ""}</td>
<td>${a.tier}</td>
<td class="${a.breaker === "closed" ? "" : "bad"}">${a.breaker}${a.breaker === "open" && a.breakerUntil ? ` ${Math.max(0, Math.ceil((a.breakerUntil - now) / 60_000))} min` : ""}${a.consecutiveFailures ? ` (${a.consecutiveFailures} failed)` : ""}</td>
<td class="spend">${usd(a.spentUsd)} / ${usd(a.capUsd)}${a.budgetState && a.budgetState !== "normal" ? html` <span class="warn">${a.budgetState}</span>` : ""}${bar(a.spentUsd ?? 0, a.capUsd)}</td>
<td>${a.heartbeatAt ? `${ago(now - a.heartbeatAt)} ago` : "-"}</td><td>${a.tasksCompleted}/${a.tasksFailed}</td><td>${a.host ?? "-"}</td></tr>`,
  );
  return html`<h1>Agents</h1>${fleet}${table(["AGENT", "STATE", "TIER", "BREAKER", "SPENT TODAY / CAP", "HEARTBEAT", "DONE/FAILED", "HOST"], rows)}`;
}

/** Estimate against actual in story points, as `fleet tasks` shows them: `*` marks a default estimate (no history yet). */
function points(t: TaskRow): string {
  const estimate = t.estimate ? `${t.estimate.points}${t.estimate.basis === "default" ? "*" : ""}` : "-";
  return `${estimate} / ${t.actualPoints ?? "-"}`;
}

/** `/tasks?page=&state=&agent=` with the page changed (1-based in the address) and the filters kept. */
function tasksHref(query: TaskPage["query"], change: { page?: number; state?: string | undefined }): string {
  const params = new URLSearchParams();
  const state = "state" in change ? change.state : query.state;
  const page = change.page ?? ("state" in change ? 0 : query.page);
  if (page > 0) params.set("page", String(page + 1));
  if (state) params.set("state", state);
  if (query.agentId) params.set("agent", query.agentId);
  const q = params.toString();
  return q ? `/tasks?${q}` : "/tasks";
}

/** One page of tasks, newest first; the counts by state are the whole bucket's, each a link filtering by it. */
export function tasksPage(page: TaskPage): Html {
  const { rows, matching, byState, query } = page;
  const total = [...byState.values()].reduce((a, b) => a + b, 0);
  const chips = [...byState].sort(([a], [b]) => a.localeCompare(b)).map(([state, n]) => html` · <a href="${tasksHref(query, { state })}">${state.toLowerCase()} ${n}</a>`);
  const from = query.page * query.limit;
  const shown = rows.length ? `${from + 1}–${from + rows.length} of ${matching}` : `none of ${matching}`;
  const filter = [query.state ? `state ${query.state.toLowerCase()}` : "", query.agentId ? `agent ${query.agentId}` : ""].filter(Boolean).join(", ");
  const nav = [
    query.page > 0 ? html`<a href="${tasksHref(query, { page: query.page - 1 })}">← newer</a>` : "",
    from + query.limit < matching ? html` <a href="${tasksHref(query, { page: query.page + 1 })}">older →</a>` : "",
  ];
  const body = rows.map(
    (t) => html`<tr><td>${t.updatedAt.slice(0, 19).replace("T", " ")}</td><td>${t.agentId}</td><td>${t.state}${t.held ? html`<br><span class="warn">${t.held}</span>` : ""}</td><td>${t.trigger}</td><td>${points(t)}</td><td>${t.title}</td><td class="muted">${t.id}</td></tr>`,
  );
  return html`<h1>Tasks</h1><p>${total} tasks${chips}${filter ? html` · <a href="/tasks">all</a>` : ""}</p>
<p class="muted">${filter ? `${filter}: ` : ""}${shown}, newest first ${nav}</p>
${rows.length ? table(["UPDATED (UTC)", "AGENT", "STATE", "TRIGGER", "EST / ACTUAL (pts)", "REQUEST", "TASK"], body) : empty("no tasks")}`;
}

export function proposalsPage(proposals: ProposalRecord[], csrf: string | undefined, now: number, notice: string | undefined): Html {
  const waiting = proposals.filter((p) => p.state === "awaiting_human");
  const recent = proposals.filter((p) => p.state !== "awaiting_human").sort((a, b) => b.createdAt - a.createdAt);
  const cards = waiting.map(
    (p) => html`<div class="card proposal" data-proposal="${p.id}"><b>${p.agentId}</b> → <b>${p.tool}</b> (${p.risk}) <span class="muted">${p.id}</span>
<p>${p.reason}</p><pre class="scroll">${JSON.stringify(p.input, null, 2).slice(0, 2000)}</pre>
${p.deadlines ? html`<p class="muted">expires in ${ago(p.deadlines.expiresAt - now)}</p>` : ""}
<form class="inline" method="post" action="/proposals/${p.id}/approve"><input type="hidden" name="csrf" value="${csrf ?? ""}"><button class="approve" type="submit">Approve</button></form>
<form class="inline" method="post" action="/proposals/${p.id}/reject"><input type="hidden" name="csrf" value="${csrf ?? ""}"><input type="text" name="reason" placeholder="why (required)" required><button class="reject" type="submit">Reject</button></form></div>`,
  );
  const rows = recent.map(
    (p) => html`<tr data-proposal="${p.id}"><td>${p.id}</td><td>${p.agentId}</td><td>${p.tool}</td><td>${p.risk}</td><td class="state">${p.state}</td><td>${p.decision ? `${p.decision.decision} by ${p.decision.by}` : ""}</td><td>${ago(now - p.createdAt)} ago</td></tr>`,
  );
  return html`<h1>Proposals</h1>${notice ? html`<div class="notice">${notice}</div>` : ""}
<h2>Awaiting a human (${waiting.length})</h2>${waiting.length ? cards : empty("nothing waits for a decision")}
<h2>Recent</h2>${recent.length ? table(["PROPOSAL", "AGENT", "TOOL", "RISK", "STATE", "DECISION", "CREATED"], rows) : empty("no settled proposals")}`;
}

export function heldPage(held: HeldTask[], usage: UsageReply | undefined, now: number): Html {
  const rows = held.map(
    (h) => html`<tr><td>${h.agentId}</td><td>${h.taskId}</td><td>${h.hold.reason}</td><td>${h.hold.detail}</td><td>in ${ago(h.hold.until - now)}</td><td>${ago(now - h.since)}</td></tr>`,
  );
  const waiting = (usage?.waiting ?? []).map((w) => html`<tr><td>${w.agentId}</td><td>${w.callId}</td><td>${ago(now - w.since)}</td><td>in ${ago(w.nextAttemptAt - now)}</td></tr>`);
  return html`<h1>Held and waiting work</h1><p>Held work is never failed: each task runs when its hold ends (quiet hours, a spent cap).</p>
${held.length ? table(["AGENT", "TASK", "REASON", "WHY", "RUNS", "HELD FOR"], rows) : empty("no held work")}
<h2>Premium calls waiting for their provider</h2>${waiting.length ? table(["AGENT", "CALL", "WAITING FOR", "NEXT TRY"], waiting) : empty(usage ? "none" : "no router answers")}`;
}

export function dlqPage(letters: DeadLetterRow[], depth: number): Html {
  const rows = letters.map(
    (d) => html`<tr><td>${d.seq}</td><td>${d.at ? new Date(d.at).toISOString().slice(0, 19).replace("T", " ") : "-"}</td><td>${d.code}</td><td>${d.reason}</td><td>${d.original}</td></tr>`,
  );
  return html`<h1>Dead letters</h1><p>${depth} message(s) in the DLQ${depth > letters.length ? ` (the newest ${letters.length} shown)` : ""}.</p>
${letters.length ? table(["SEQ", "AT (UTC)", "CODE", "REASON", "ORIGINAL"], rows) : empty("the DLQ is empty")}`;
}

export function findingsPage(findings: Finding[], now: number): Html {
  const bySubject = new Map<string, Finding[]>();
  for (const f of findings) bySubject.set(f.subject, [...(bySubject.get(f.subject) ?? []), f]);
  const sections = [...bySubject].sort(([a], [b]) => a.localeCompare(b)).map(
    ([subject, list]) => html`<h2>${subject} (${list.length})</h2>${table(
      ["WHEN", "SEVERITY", "AGENT", "DUTY", "SUMMARY"],
      list.slice(0, 20).map((f) => html`<tr><td>${ago(now - f.at)} ago</td><td class="${f.severity === "critical" ? "bad" : f.severity === "warning" ? "warn" : ""}">${f.severity}</td><td>${f.agentId}</td><td>${f.duty}</td><td>${f.summary}</td></tr>`),
    )}`,
  );
  return html`<h1>Findings by subject</h1>${sections.length ? sections : empty("no findings")}`;
}
