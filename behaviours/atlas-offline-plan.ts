import { matchSkill } from "../actors/index.js";
import type { AgentConfig, FleetConfig } from "../config/index.js";
import type { Finding, RiskLevel, Severity } from "../protocol/index.js";
import type { AtlasPlan, PlanInputs, PlannedAssignment, PlanNotice, PlanPriority } from "./atlas-plan.js";

/*
 * Atlas's plan when no model is configured (the router answered the planning step on its simulated provider, whose
 * placeholder plan would assign nothing): a deterministic plan from the same inputs the prompt was made of, so the
 * default fleet shows on a laptop with no key what a planner does. Every finding goes to the agent whose duty found it,
 * with the skill of its that fits and, when one of its PROPOSE tools names the finding's subject (`demo_site_restart`
 * for "demo-site"), that tool as the fix; everything else becomes a notice. Every text says it is the offline
 * simulation, and the plan passes the same deterministic check as a model's.
 */

export const OFFLINE_LABEL = "[offline simulation]";

const MAX_ASSIGNMENTS = 20;
const MAX_NOTICES = 10;
const SEVERITY_RANK: Record<Severity, number> = { info: 0, warning: 1, critical: 2 };
const PRIORITY: Record<Severity, PlanPriority> = { info: "low", warning: "normal", critical: "high" };

export function offlinePlan(config: FleetConfig, self: string, inputs: PlanInputs, risks: Readonly<Record<string, RiskLevel>>): AtlasPlan {
  const assignments: PlannedAssignment[] = [];
  const notices: PlanNotice[] = [];
  const lines: string[] = [];
  // one piece of work per problem (agent, subject, key), however many runs saw it; oldest first, so the order is the stream's
  const problems = new Map<string, Finding>();
  for (const finding of [...inputs.findings].sort((a, b) => a.at - b.at || a.id.localeCompare(b.id))) {
    const key = `${finding.agentId}\u0000${finding.subject}\u0000${finding.key}`;
    const seen = problems.get(key);
    if (!seen || SEVERITY_RANK[finding.severity] > SEVERITY_RANK[seen.severity]) problems.set(key, finding);
  }
  for (const finding of problems.values()) {
    const agent = config.agents.find((a) => a.id === finding.agentId && a.id !== self);
    if (!agent || assignments.length >= MAX_ASSIGNMENTS) {
      lines.push(`${finding.subject}: ${finding.summary} (nobody to assign it to)`);
      continue;
    }
    const fix = fixingTool(agent, finding, risks);
    const skill = matchSkill(agent, `${finding.subject} ${finding.key} ${finding.summary} ${fix ?? ""}`)?.id ?? agent.skills[0]?.id ?? null;
    assignments.push({
      agent: agent.id,
      what: fix ? `Restore ${finding.subject} with ${fix}: ${finding.summary}` : `Look into ${finding.subject}: ${finding.summary}`,
      why: `${OFFLINE_LABEL} ${agent.id}'s ${finding.duty} duty found it (${finding.severity}); ${agent.id} watches ${finding.subject}${fix ? ` and may use ${fix}` : ""}.`,
      priority: PRIORITY[finding.severity],
      skill,
      pipeline: null,
      tier: null,
      target: finding.subject,
      tools: fix ? [fix] : [],
    });
    lines.push(`${finding.subject}: ${finding.summary} → ${agent.id}${fix ? ` (${fix}, a proposal)` : ""}`);
  }
  if (lines.length > 0) {
    const worst = [...problems.values()].reduce<Severity>((w, f) => (SEVERITY_RANK[f.severity] > SEVERITY_RANK[w] ? f.severity : w), "info");
    notices.push({ severity: worst, text: cut(`${OFFLINE_LABEL} ${problems.size} problem(s) found:\n${lines.join("\n")}`) });
  }
  for (const p of inputs.awaitingHuman) notices.push({ severity: "warning", text: cut(`${OFFLINE_LABEL} proposal ${p.proposalId} (${p.agentId}, ${p.tool}) awaits your decision: fleet approve ${p.proposalId}`) });
  for (const t of inputs.failedTasks) notices.push({ severity: "warning", text: cut(`${OFFLINE_LABEL} ${t.agentId}'s task "${t.title}" failed: ${t.reason}`) });
  if (inputs.deadLetters.length > 0) notices.push({ severity: "warning", text: cut(`${OFFLINE_LABEL} ${inputs.deadLetters.length} task message(s) were dead-lettered: ${inputs.deadLetters.map((d) => `${d.code} ${d.reason}`).join("; ")}`) });
  if (inputs.events.length > 0) notices.push({ severity: "info", text: cut(`${OFFLINE_LABEL} ${inputs.events.length} event(s) came in (${[...new Set(inputs.events.map((e) => e.source))].join(", ")}); no agent handles them directly`) });
  return { assignments, notices: notices.slice(0, MAX_NOTICES) };
}

/** The agent's PROPOSE tool whose name shares the most words with the finding's subject (none when no word is shared). */
function fixingTool(agent: AgentConfig, finding: Finding, risks: Readonly<Record<string, RiskLevel>>): string | undefined {
  const subject = new Set(words(finding.subject));
  let best: { tool: string; score: number } | undefined;
  for (const tool of agent.tools) {
    if (risks[tool] !== "PROPOSE") continue;
    const score = words(tool).filter((w) => subject.has(w)).length;
    if (score > 0 && (!best || score > best.score)) best = { tool, score };
  }
  return best?.tool;
}

function words(text: string): string[] {
  return text.toLowerCase().split(/[^a-z0-9]+/).filter((w) => w.length > 1);
}

function cut(text: string): string {
  return text.length > 1000 ? `${text.slice(0, 999)}…` : text;
}
