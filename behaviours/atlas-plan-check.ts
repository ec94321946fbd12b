import { matchSkill } from "../actors/index.js";
import { PEER_ASSIGNEE_PREFIX, peerSkillRisk, type AgentConfig, type FleetConfig } from "../config/index.js";
import { TierName, titleOfText } from "../protocol/index.js";
import type { AgentFacts, AtlasPlan, PlannedAssignment } from "./atlas-plan.js";

/*
 * The deterministic check of a plan, assignment by assignment: the agent exists (and is not Atlas), the work matches one
 * of its skills or names a pipeline whose tools are all on its allow list, the tools the work names are on it too, the
 * tier is a tier or alias, the agent has budget headroom and room under its WIP limit, and the work is no duplicate of
 * open or recent work. A failure of the first kinds is the plan's mistake: the plan is asked again one tier up. A
 * duplicate is no mistake (the work is being or was just done): it is skipped and recorded, never escalated.
 */

export interface CheckContext {
  config: FleetConfig;
  self: string;
  facts: ReadonlyMap<string, AgentFacts>;
  wipLimit: number;
  /** why this work duplicates open or recent work of the agent, or undefined (task and discovery dedup, open tasks) */
  duplicateOf: (agentId: string, title: string) => Promise<string | undefined>;
}

export interface CheckedPlan {
  passed: PlannedAssignment[];
  failed: { assignment: PlannedAssignment; reasons: string[] }[];
  skipped: { assignment: PlannedAssignment; reason: string }[];
}

/** The failures as lines for the retry prompt and the operator's notice. */
export function failureLines(checked: CheckedPlan): string[] {
  return checked.failed.map(({ assignment, reasons }) => `assignment to "${assignment.agent}" ("${titleOfText(assignment.what)}"): ${reasons.join("; ")}`);
}

export async function checkPlan(plan: AtlasPlan, ctx: CheckContext): Promise<CheckedPlan> {
  const out: CheckedPlan = { passed: [], failed: [], skipped: [] };
  // open tasks of each agent, counting the ones this plan already gave it
  const load = new Map<string, number>([...ctx.facts].map(([id, f]) => [id, f.openTasks]));
  for (const assignment of plan.assignments) {
    const peer = assignment.agent.startsWith(PEER_ASSIGNEE_PREFIX) ? assignment.agent.slice(PEER_ASSIGNEE_PREFIX.length) : undefined;
    const agent = peer === undefined ? ctx.config.agents.find((a) => a.id === assignment.agent) : undefined;
    const reasons = peer !== undefined ? peerReasons(assignment, peer, ctx) : agent ? structural(assignment, agent, ctx) : [`no agent "${assignment.agent}" in this fleet (agents: ${others(ctx).join(", ")})`];
    if (peer !== undefined && reasons.length === 0 && (load.get(assignment.agent) ?? 0) >= ctx.wipLimit) reasons.push(`${assignment.agent} is at its WIP limit (${ctx.wipLimit} delegations this plan)`);
    if (agent && reasons.length === 0) {
      const facts = ctx.facts.get(agent.id);
      if (facts?.budget === "nanoOnly") reasons.push(`${agent.id} has no budget headroom (at its daily cap of $${agent.dailyCapUsd})`);
      const open = load.get(agent.id) ?? 0;
      if (open >= ctx.wipLimit) reasons.push(`${agent.id} is at its WIP limit (${open} open tasks, limit ${ctx.wipLimit})`);
    }
    if (reasons.length > 0) {
      out.failed.push({ assignment, reasons });
      continue;
    }
    const duplicate = await ctx.duplicateOf(assignment.agent, titleOfText(assignment.what));
    if (duplicate) {
      out.skipped.push({ assignment, reason: duplicate });
      continue;
    }
    load.set(assignment.agent, (load.get(assignment.agent) ?? 0) + 1);
    out.passed.push(assignment);
  }
  return out;
}

function structural(assignment: PlannedAssignment, agent: AgentConfig, ctx: CheckContext): string[] {
  const reasons: string[] = [];
  if (agent.id === ctx.self) return [`${agent.id} is the orchestrator: it assigns work, it takes none (agents: ${others(ctx).join(", ")})`];
  const allowed = (tool: string) => agent.tools.includes("*") || agent.tools.includes(tool);
  if (assignment.pipeline !== null) {
    const pipeline = ctx.config.pipelines[assignment.pipeline];
    if (!pipeline) reasons.push(`no pipeline "${assignment.pipeline}" in this fleet (pipelines: ${Object.keys(ctx.config.pipelines).join(", ") || "none"})`);
    else {
      const missing = [...new Set(pipeline.steps.flatMap((s) => ("tool" in s ? [s.tool] : [])))].filter((t) => !allowed(t));
      if (missing.length > 0) reasons.push(`${agent.id} may not use the tools of pipeline "${assignment.pipeline}": ${missing.join(", ")}`);
    }
  } else if (assignment.skill !== null) {
    if (!agent.skills.some((s) => s.id === assignment.skill)) reasons.push(`${agent.id} has no skill "${assignment.skill}" (skills: ${agent.skills.map((s) => s.id).join(", ")})`);
  } else if (!matchSkill(agent, `${assignment.what} ${assignment.why}`)) {
    reasons.push(`${agent.id} has no skill matching "${titleOfText(assignment.what)}" (skills: ${agent.skills.map((s) => `${s.id} [${s.tags.join(", ")}]`).join("; ")})`);
  }
  const lacking = assignment.tools.filter((t) => !allowed(t));
  if (lacking.length > 0) reasons.push(`${agent.id} lacks the tool${lacking.length > 1 ? "s" : ""} ${lacking.join(", ")} (its tools: ${agent.tools.join(", ") || "none"})`);
  if (assignment.tier !== null && !TierName.safeParse(assignment.tier).success && !(assignment.tier in ctx.config.routing.aliases)) {
    reasons.push(`"${assignment.tier}" is neither a tier nor an alias`);
  }
  return reasons;
}

/**
 * A delegation to another company's agent (`peer:<name>`): the peer is configured, the skill is one config grants it
 * (PEER_SKILL_NOT_GRANTED otherwise: the plan may ask only for what the operator allowed), its risk lets Atlas delegate
 * without a person (not CONFIRM or BLOCK), and the work is the skill alone (no pipeline, no tools of ours).
 */
function peerReasons(assignment: PlannedAssignment, name: string, ctx: CheckContext): string[] {
  const peer = ctx.config.peers[name];
  const peers = Object.keys(ctx.config.peers);
  if (!peer) return [`no peer "${name}" in this fleet (peers: ${peers.join(", ") || "none"})`];
  const granted = Object.keys(peer.skills);
  if (assignment.skill === null) return [`a delegation to ${assignment.agent} names the skill it asks for (granted: ${granted.join(", ")})`];
  const risk = peerSkillRisk(peer, assignment.skill);
  if (risk === undefined) return [`PEER_SKILL_NOT_GRANTED: ${assignment.agent} is not granted skill "${assignment.skill}" (granted: ${granted.join(", ")})`];
  const reasons: string[] = [];
  if (risk === "BLOCK" || risk === "CONFIRM") reasons.push(`${assignment.agent}'s skill "${assignment.skill}" is ${risk}: ${risk === "BLOCK" ? "it is never asked" : "it needs a person; say so in a notice"}`);
  if (assignment.pipeline !== null) reasons.push(`a peer runs no pipeline of ours ("${assignment.pipeline}")`);
  if (assignment.tools.length > 0) reasons.push(`a peer uses no tools of ours (${assignment.tools.join(", ")})`);
  return reasons;
}

function others(ctx: CheckContext): string[] {
  return ctx.config.agents.filter((a) => a.id !== ctx.self).map((a) => a.id);
}
