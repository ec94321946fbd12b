import { z } from "zod";
import type { FleetConfig } from "../config/index.js";
import { FleetEvent, Finding, Severity, type BudgetState, type ChatMessage } from "../protocol/index.js";

/*
 * Atlas's plan as the model must write it (the response format of the planning step, derived from zod, so the schema
 * the provider is held to and the one the router validates against are the same), and what the planning step is
 * shown: the roster of agents and pipelines, and only what changed since the last cycle. Every field is required
 * (optional ones are nullable) and no others are allowed, as strict structured output asks.
 */

export const PlanPriority = z.enum(["low", "normal", "high", "urgent"]);
export type PlanPriority = z.infer<typeof PlanPriority>;

export const PlannedAssignment = z.object({
  /** the agent's id, or `peer:<name>` for another company's agent */
  agent: z.string().min(1).max(64),
  /** the task, in a sentence: its first line is the task's title (dedup compares titles) */
  what: z.string().min(1).max(1000),
  why: z.string().min(1).max(500),
  priority: PlanPriority,
  /** the skill of the agent's this uses (its id), or null */
  skill: z.string().max(64).nullable(),
  /** a pipeline to run, or null for an ordinary task */
  pipeline: z.string().max(64).nullable(),
  /** a tier or alias for an ordinary task's model step, or null for the router's choice */
  tier: z.string().max(64).nullable(),
  /** the site, repo or customer this touches, or null: two pieces of work on one target never run at once */
  target: z.string().max(200).nullable(),
  /** the tools the work needs (each must be on the agent's allow list) */
  tools: z.array(z.string().max(128)).max(10),
});
export type PlannedAssignment = z.infer<typeof PlannedAssignment>;

export const PlanNotice = z.object({
  text: z.string().min(1).max(1000),
  severity: Severity,
});
export type PlanNotice = z.infer<typeof PlanNotice>;

export const AtlasPlan = z.object({
  assignments: z.array(PlannedAssignment).max(20),
  notices: z.array(PlanNotice).max(10),
});
export type AtlasPlan = z.infer<typeof AtlasPlan>;

/** The response format of the planning step. */
export const ATLAS_PLAN_SCHEMA = { name: "atlas_plan", schema: z.toJSONSchema(AtlasPlan, { target: "draft-7" }) as Record<string, unknown> };

/** A note from another agent's inbox message (scout's reports reach Atlas so). */
export const InboxNote = z.object({
  messageId: z.string(),
  from: z.string(),
  text: z.string(),
  at: z.number(),
});
export type InboxNote = z.infer<typeof InboxNote>;

/** What changed since Atlas's last cycle: the planning step's only news. */
export interface PlanInputs {
  findings: Finding[];
  events: FleetEvent[];
  failedTasks: { agentId: string; taskId: string; title: string; reason: string }[];
  deadLetters: { agentId: string | undefined; taskId: string | undefined; code: string; reason: string }[];
  notes: InboxNote[];
  awaitingHuman: { proposalId: string; agentId: string; tool: string; reason: string }[];
  /** budgets whose state changed */
  budgets: { agentId: string; state: BudgetState; spentUsd: number; capUsd: number }[];
}

export function inputCount(inputs: PlanInputs): number {
  return Object.values(inputs).reduce((sum: number, list: unknown[]) => sum + list.length, 0);
}

/** What the planner knows of each agent when it asks: the roster line and the check's facts. */
export interface AgentFacts {
  openTasks: number;
  budget: BudgetState;
}

const SYSTEM = [
  "You are Atlas, the orchestrator of a fleet of agents. You decide which agent does what about what changed.",
  "Answer with a JSON plan: `assignments` (work for an agent) and `notices` (what the operator should know). Nothing else.",
  "Rules: assign only to agents listed, only work matching one of their skills or a pipeline they can run, naming only tools on their list.",
  "Prefer a pipeline when one fits (it is cheap). Give the target (site, repo, customer) the work touches. Do not assign work",
  "that repeats open work. An agent at its WIP limit or out of budget takes nothing. When nothing needs doing, say so with",
  "empty lists. Use notices for what needs a human (a proposal awaiting approval, an outage nobody can fix).",
].join("\n");

/** The roster: stable between cycles, so it comes first and providers' prompt caches hit. */
export function rosterText(config: FleetConfig, self: string): string {
  const lines = ["Agents:"];
  for (const agent of config.agents) {
    if (agent.id === self) continue;
    const skills = agent.skills.map((s) => `${s.id} (${s.tags.join(", ")})`).join("; ");
    lines.push(`- ${agent.id}: ${agent.role}. skills: ${skills}. tools: ${agent.tools.join(", ") || "none"}`);
  }
  const pipelines = Object.entries(config.pipelines);
  if (pipelines.length > 0) {
    lines.push("Pipelines:");
    for (const [id, pipeline] of pipelines) {
      const tools = [...new Set(pipeline.steps.flatMap((s) => ("tool" in s ? [s.tool] : [])))];
      lines.push(`- ${id}: ${pipeline.description ?? "(no description)"}. tools: ${tools.join(", ") || "none"}`);
    }
  }
  const peers = Object.entries(config.peers);
  if (peers.length > 0) {
    lines.push('Peers (other companies\' agents; assign to agent "peer:<name>" with one of its skills, no pipeline, no tools):');
    for (const [name, peer] of peers) {
      const skills = Object.entries(peer.skills).map(([id, s]) => `${id}${s.description ? ` (${s.description})` : ""} [${s.risk ?? peer.risk}]`).join("; ");
      lines.push(`- peer:${name}: skills: ${skills}`);
    }
  }
  const aliases = Object.keys(config.routing.aliases);
  lines.push(`Tiers: nano, workhorse, capable, power, premium; aliases: ${aliases.join(", ")}`);
  return lines.join("\n");
}

export interface PlanRetry {
  previous: AtlasPlan;
  failures: string[];
}

/** The planning step's messages: the rules and roster first (stable), then the agents' state and the news. */
export function planMessages(config: FleetConfig, self: string, facts: ReadonlyMap<string, AgentFacts>, wipLimit: number, inputs: PlanInputs, retry?: PlanRetry): ChatMessage[] {
  const state = [...facts].map(([id, f]) => `- ${id}: ${f.openTasks}/${wipLimit} open tasks, budget ${f.budget}`).join("\n");
  const news = JSON.stringify(compact(inputs), null, 1);
  const messages: ChatMessage[] = [
    { role: "system", content: `${SYSTEM}\n\n${rosterText(config, self)}` },
    { role: "user", content: `Agents now:\n${state}\n\nWhat changed since the last cycle:\n${news}` },
  ];
  if (retry) {
    messages.push({ role: "assistant", content: JSON.stringify(retry.previous) });
    messages.push({
      role: "user",
      content: `That plan failed its check:\n${retry.failures.map((f) => `- ${f}`).join("\n")}\nWrite the whole plan again, fixing these (or drop what cannot be done and say so in a notice).`,
    });
  }
  return messages;
}

/** Only the lists that have something in them, so an empty input costs no tokens. */
function compact(inputs: PlanInputs): Record<string, unknown> {
  return Object.fromEntries(Object.entries(inputs).filter(([, list]) => Array.isArray(list) && list.length > 0));
}
