import type { Logger } from "pino";
import type { ActInput, Outcome, Plan, PlanInput } from "./agent-machine.js";

/** What an effect gets besides its input: a signal that aborts when the work is canceled or the host stops, and a logger. */
export interface EffectContext {
  signal: AbortSignal;
  log: Logger;
}

/** A role's effects, provided to the agent chart by the actor host. */
export interface AgentBehaviour {
  plan(input: PlanInput, ctx: EffectContext): Promise<Plan>;
  act(input: ActInput, ctx: EffectContext): Promise<Outcome>;
}

/** The part of an agent's config the host and behaviours need (AgentConfig satisfies it). */
export interface HostedAgent {
  id: string;
  name: string;
  role: string;
  defaultTier: string;
  cycleMinutes: number;
  /** `tier`: the tier or alias the skill's model steps ask for (SkillConfig.tier) */
  skills: ReadonlyArray<{ id: string; name: string; description: string; tags: ReadonlyArray<string>; examples?: ReadonlyArray<string> | undefined; tier?: string | undefined }>;
}

/** Scores each skill by how many of its tags occur in the text; the best wins, ties go to the first listed. */
export function matchSkill(agent: Pick<HostedAgent, "skills">, text: string): { id: string; score: number } | undefined {
  const haystack = text.toLowerCase();
  let best: { id: string; score: number } | undefined;
  for (const skill of agent.skills) {
    const score = skill.tags.filter((tag) => haystack.includes(tag.toLowerCase())).length;
    if (score > 0 && (!best || score > best.score)) best = { id: skill.id, score };
  }
  return best;
}
