import { randomUUID } from "node:crypto";
import type { HostedAgent, RuntimeDeps, TaskStore } from "../actors/index.js";
import { AgentRecord, storedCodec, decode, Finding, isAlive, isTerminal, readAfter, type Artifact, type Severity } from "../protocol/index.js";

/** The id of the Task holding Atlas's latest cross-agent status report (overwritten each cycle; KV keeps the history). */
export const STATUS_REPORT_TASK = "status-report";

/** Findings seen within this window count as open in the report. */
export const REPORT_WINDOW_MS = 24 * 3_600_000;
/** The most findings one report reads. */
const MAX_FINDINGS = 2_000;

export interface AgentStatusLine {
  agentId: string;
  state: string;
  alive: boolean;
  currentTaskId: string | undefined;
  openTasks: number;
  completed: number;
  failed: number;
  restarts: number;
}

/** One site (or repo, or customer) in the report: its open findings, the worst severity, the latest evidence. */
export interface SiteStatus {
  subject: string;
  worst: Severity;
  findings: { key: string; severity: Severity; summary: string; agentId: string; duty: string; seen: number; latestAt: number; evidence?: unknown }[];
}

const RANK: Record<Severity, number> = { critical: 2, warning: 1, info: 0 };

/** Groups findings by subject, then by problem key: the latest of each key with how often it was seen. Pure. */
export function sitesOf(findings: readonly Finding[]): SiteStatus[] {
  const bySubject = new Map<string, Map<string, SiteStatus["findings"][number]>>();
  for (const f of findings) {
    const keys = bySubject.get(f.subject) ?? new Map<string, SiteStatus["findings"][number]>();
    bySubject.set(f.subject, keys);
    const known = keys.get(f.key);
    if (known && known.latestAt > f.at) {
      known.seen++;
      continue;
    }
    keys.set(f.key, {
      key: f.key,
      severity: f.severity,
      summary: f.summary,
      agentId: f.agentId,
      duty: f.duty,
      seen: (known?.seen ?? 0) + 1,
      latestAt: f.at,
      ...(f.evidence !== undefined ? { evidence: f.evidence } : {}),
    });
  }
  const sites: SiteStatus[] = [...bySubject].map(([subject, keys]) => {
    const list = [...keys.values()].sort((a, b) => RANK[b.severity] - RANK[a.severity] || b.latestAt - a.latestAt);
    return { subject, worst: list[0]?.severity ?? "info", findings: list };
  });
  return sites.sort((a, b) => RANK[b.worst] - RANK[a.worst] || a.subject.localeCompare(b.subject));
}

/**
 * The cross-site status report: the findings of the last 24 hours, site by site (open problems per subject, severity,
 * latest evidence), then a line per agent (alive, state, open tasks, done, failed, restarts). No model is involved.
 */
export async function buildStatusReport(fleet: readonly HostedAgent[], deps: RuntimeDeps, store: TaskStore): Promise<{ lines: AgentStatusLine[]; sites: SiteStatus[]; artifact: Artifact }> {
  const now = deps.clock.now();
  const read = await readAfter(deps.js, deps.jsm, deps.names.stream("FINDINGS"), deps.names.finding("*"), { fromTime: now - REPORT_WINDOW_MS, max: MAX_FINDINGS });
  const findings: Finding[] = [];
  for (const m of read.messages) {
    const decoded = decode(Finding, m.data, { codec: storedCodec(m.data, m.contentType, deps.codec) });
    if (decoded.ok && decoded.value.at >= now - REPORT_WINDOW_MS) findings.push(decoded.value);
  }
  const sites = sitesOf(findings);

  const lines: AgentStatusLine[] = [];
  for (const agent of fleet) {
    const entry = await deps.kv.agents.get(agent.id);
    const decoded = entry && entry.operation === "PUT" ? decode(AgentRecord, entry.value, { codec: deps.codec }) : undefined;
    const record = decoded?.ok ? decoded.value : undefined;
    const tasks = await store.list(agent.id);
    lines.push({
      agentId: agent.id,
      state: record?.state ?? "never started",
      alive: record ? isAlive(record, now) : false,
      currentTaskId: record?.currentTaskId,
      openTasks: tasks.filter((t) => !isTerminal(t.status.state) && t.id !== STATUS_REPORT_TASK).length,
      completed: record?.tasksCompleted ?? 0,
      failed: record?.tasksFailed ?? 0,
      restarts: record?.restarts ?? 0,
    });
  }
  const siteText =
    sites.length === 0
      ? ["Sites: no findings in the last 24 h."]
      : [
          "Sites (findings of the last 24 h):",
          ...sites.map((s) => {
            const latest = s.findings[0];
            const evidence = latest?.evidence !== undefined ? ` evidence: ${JSON.stringify(latest.evidence).slice(0, 200)}` : "";
            return `${s.subject}: ${s.findings.length} open (${s.worst}); latest: ${latest?.summary ?? "-"} (${latest?.agentId}/${latest?.duty}, ${new Date(latest?.latestAt ?? now).toISOString()})${evidence}`;
          }),
        ];
  const agentText = lines.map((l) => `${l.agentId}: ${l.alive ? l.state : "DOWN"}, ${l.openTasks} open, ${l.completed} done, ${l.failed} failed, ${l.restarts} restarts`);
  const text = [...siteText, "", "Agents:", ...agentText].join("\n");
  return {
    lines,
    sites,
    artifact: { artifactId: randomUUID(), name: "status-report", parts: [{ text }, { data: { at: new Date(now).toISOString(), sites, agents: lines } }] },
  };
}
