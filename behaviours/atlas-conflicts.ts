import type { Task } from "../protocol/index.js";
import { taskWorkOf, type ProposalRecord } from "../protocol/index.js";
import type { PlannedAssignment, PlanPriority } from "./atlas-plan.js";
import type { Blocker } from "./atlas-records.js";

/*
 * Two pieces of work on one target (a site, a repo, a customer) never run at once: a deploy and a TLS renewal on the
 * same site, two agents editing one customer's record. Open work goes ahead of new work (it started first); between new
 * assignments the higher priority goes, then the one the plan listed first. The other is held, with the reason and what
 * it waits for, and goes out in a later cycle once that work has ended.
 */

/** Work that is under way on a target: an open task or a proposal that is not final yet. */
export interface OpenWork {
  blocker: Blocker;
  target: string;
  what: string;
}

export interface Arbitrated {
  go: { assignment: PlannedAssignment; taskId: string; holds: { agent: string; what: string }[] }[];
  held: { assignment: PlannedAssignment; reason: string; blockedBy: Blocker }[];
}

const RANK: Record<PlanPriority, number> = { urgent: 3, high: 2, normal: 1, low: 0 };

/** One spelling per target: a URL and its host name, any case, with or without `www.` or a trailing slash, are one. */
export function normalizeTarget(raw: string): string {
  let text = raw.trim().toLowerCase();
  if (/^[a-z][a-z0-9+.-]*:\/\//.test(text)) {
    try {
      text = new URL(text).hostname;
    } catch {
      // not a URL after all: compared as written
    }
  }
  return text.replace(/^www\./, "").replace(/\/+$/, "");
}

/**
 * Decides which assignments go and which wait. `taskIdOf` gives the task id an assignment will get, so an assignment
 * held behind another one of the same plan waits for that task.
 */
export function arbitrate(assignments: readonly PlannedAssignment[], open: readonly OpenWork[], taskIdOf: (a: PlannedAssignment) => string): Arbitrated {
  const out: Arbitrated = { go: [], held: [] };
  const ordered = assignments.map((assignment, index) => ({ assignment, index })).sort((a, b) => RANK[b.assignment.priority] - RANK[a.assignment.priority] || a.index - b.index);
  const claimed = new Map<string, Arbitrated["go"][number]>();
  for (const { assignment } of ordered) {
    const target = assignment.target ? normalizeTarget(assignment.target) : undefined;
    const taskId = taskIdOf(assignment);
    if (!target) {
      out.go.push({ assignment, taskId, holds: [] });
      continue;
    }
    const busy = open.find((w) => w.target === target);
    if (busy) {
      const what = busy.blocker.kind === "task" ? `${busy.blocker.agentId}'s open task ${busy.blocker.id}` : `${busy.blocker.agentId}'s proposal ${busy.blocker.id}`;
      out.held.push({ assignment, reason: `${target} is already being worked on by ${what} ("${busy.what}"); this waits until it ends`, blockedBy: busy.blocker });
      continue;
    }
    const first = claimed.get(target);
    if (first) {
      const why = RANK[first.assignment.priority] > RANK[assignment.priority] ? `it has priority ${first.assignment.priority} over ${assignment.priority}` : "it came first in the plan";
      out.held.push({
        assignment,
        reason: `${target} is also the target of ${first.assignment.agent}'s "${first.assignment.what.slice(0, 80)}", which goes ahead (${why}); this waits until it ends`,
        blockedBy: { kind: "task", id: first.taskId, agentId: first.assignment.agent },
      });
      first.holds.push({ agent: assignment.agent, what: assignment.what.slice(0, 200) });
      continue;
    }
    const going = { assignment, taskId, holds: [] };
    claimed.set(target, going);
    out.go.push(going);
  }
  return out;
}

/** The target an open task works on: what Atlas or the event router recorded, or its pipeline input's subject. */
export function targetOfTask(task: Task): string | undefined {
  const metadata = task.history?.[0]?.metadata;
  const recorded = metadata?.target;
  if (typeof recorded === "string" && recorded) return normalizeTarget(recorded);
  const input = taskWorkOf(metadata)?.input;
  for (const key of ["target", "subject", "site", "url", "host"]) {
    const value = input?.[key];
    if (typeof value === "string" && value) return normalizeTarget(value);
  }
  return undefined;
}

/** The target a proposal's tool call touches, from the fields tools name their target with. */
export function targetOfProposal(proposal: ProposalRecord): string | undefined {
  const input = proposal.input;
  if (typeof input !== "object" || input === null) return undefined;
  for (const key of ["target", "site", "url", "host", "domain", "repo", "customer", "subject"]) {
    const value: unknown = Reflect.get(input, key);
    if (typeof value === "string" && value) return normalizeTarget(value);
  }
  return undefined;
}
