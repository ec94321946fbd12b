import { z } from "zod";
import { TierName } from "../protocol/index.js";
import { strict } from "./strict-object.js";

/*
 * Atlas's plan and the events that feed it, in the fleet config. `planning:` says at which tier Atlas plans (and the one
 * tier a failed check may climb to), how much open work an agent may hold, and where the plan's notices go. `events:`
 * maps an event source to the agent (and pipeline) that handles it directly, without a plan.
 */

const SubjectToken = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1-64 letters, digits, '-' or '_' (one subject token)");

export const PlanningConfig = strict({
  /** the tier (or alias) of Atlas's planning step: cheap on purpose, the check below catches its mistakes */
  tier: z.string().min(1).default("workhorse"),
  /** the one tier a plan that failed its check is asked again at; a second failure is a notice, never a loop */
  escalateTo: z.string().min(1).default("power"),
  /** an agent with this many open tasks gets no new assignment */
  wipLimit: z.number().int().min(1).default(3),
  /** the most new records of each input (findings, events, failures, ...) one cycle takes; the rest wait for the next */
  maxInputs: z.number().int().min(1).max(500).default(50),
  /** how far back a first cycle (no cursor yet) looks, in hours */
  lookbackHours: z.number().positive().max(24 * 30).default(24),
  /** where notices go; the first principal's channel and recipient when omitted */
  notices: strict({ channel: SubjectToken, to: z.string().min(1) }).optional(),
});
export type PlanningConfig = z.infer<typeof PlanningConfig>;

/** One event source handled directly: its events become tasks of this agent (running this pipeline, when named). */
export const EventRoute = strict({
  agent: z.string().min(1),
  pipeline: z.string().min(1).optional(),
  /** a tier or alias for the task's model step when no pipeline is named */
  tier: z.string().min(1).optional(),
});
export type EventRoute = z.infer<typeof EventRoute>;

export const EventsConfig = strict({
  /** source (the last token of `fleet.event.<source>`, or `POST /event/<source>`) → the agent that handles it */
  sources: z
    .record(SubjectToken, EventRoute, { error: (iss) => (iss.code === "invalid_key" ? "a source must be one subject token: 1-64 letters, digits, '-' or '_'" : undefined) })
    .default({}),
});
export type EventsConfig = z.infer<typeof EventsConfig>;

const maybe = <T extends z.ZodType>(schema: T) => schema.optional().catch(undefined);
const View = z
  .object({
    agents: z.array(z.object({ id: maybe(z.string()), reportsTo: maybe(z.string()) }).catch({})).catch([]),
    pipelines: z.record(z.string(), z.unknown()).catch({}),
    routing: z.object({ aliases: maybe(z.record(z.string(), z.unknown())) }).catch({}),
    planning: z.object({ tier: maybe(z.string()), escalateTo: maybe(z.string()), notices: maybe(z.unknown()) }).catch({}),
    events: z.object({ sources: z.record(z.string(), z.object({ agent: maybe(z.string()), pipeline: maybe(z.string()), tier: maybe(z.string()) }).catch({})).catch({}) }).catch({ sources: {} }),
  })
  .catch({ agents: [], pipelines: {}, routing: {}, planning: {}, events: { sources: {} } });

/** The planning and events rules that span sections (names of agents, pipelines, tiers); called by the fleet schema. */
export function planningCrossRules(value: unknown, report: (path: PropertyKey[], message: string) => void): void {
  const { agents, pipelines, routing, planning, events } = View.parse(value);
  const aliases = Object.keys(routing.aliases ?? { triage: 1, standard: 1, heavy: 1 });
  const isTier = (name: string) => TierName.safeParse(name).success || aliases.includes(name);
  for (const key of ["tier", "escalateTo"] as const) {
    const name = planning[key];
    if (name !== undefined && !isTier(name)) report(["planning", key], `"${name}" is neither a tier nor an alias (${[...TierName.options, ...aliases].join(", ")})`);
  }
  const agentIds = agents.map((a) => a.id).filter((id): id is string => id !== undefined);
  agents.forEach((agent, i) => {
    if (agent.reportsTo === undefined) return;
    if (!agentIds.includes(agent.reportsTo)) report(["agents", i, "reportsTo"], `no agent "${agent.reportsTo}" in this fleet (agents: ${agentIds.join(", ")})`);
    else if (agent.reportsTo === agent.id) report(["agents", i, "reportsTo"], "an agent does not report to itself");
  });
  for (const [source, route] of Object.entries(events.sources)) {
    if (route.agent !== undefined && !agentIds.includes(route.agent)) {
      report(["events", "sources", source, "agent"], `no agent "${route.agent}" in this fleet (agents: ${agentIds.join(", ")})`);
    }
    if (route.pipeline !== undefined && !(route.pipeline in pipelines)) {
      report(["events", "sources", source, "pipeline"], `no pipeline "${route.pipeline}" in this fleet (pipelines: ${Object.keys(pipelines).join(", ") || "none"})`);
    }
    if (route.tier !== undefined && !isTier(route.tier)) report(["events", "sources", source, "tier"], `"${route.tier}" is neither a tier nor an alias`);
  }
}
