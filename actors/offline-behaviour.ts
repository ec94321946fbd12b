import { randomUUID } from "node:crypto";
import { textOf } from "../protocol/index.js";
import { matchSkill, type AgentBehaviour, type HostedAgent } from "./behaviour.js";

/**
 * What an execution agent does while no model provider is configured (the router arrives with its own issue): a task is
 * accepted, matched to one of the agent's skills, and answered with a clearly labelled record of what would have been
 * done and at which tier. No model is called and nothing outside the fleet is touched. A cycle has nothing to do.
 */
export function offlineBehaviour(agent: HostedAgent): AgentBehaviour {
  return {
    plan: planBySkill(agent),
    async act(input, ctx) {
      ctx.signal.throwIfAborted();
      const request = input.plan.item ? textOf(input.plan.item.message) : "";
      const skill = agent.skills.find((s) => s.id === input.plan.skillId);
      const summary = skill
        ? `${agent.name} would handle this with its "${skill.name}" skill at the ${agent.defaultTier} tier.`
        : `${agent.name} has no skill matching this request; it would take it at the ${agent.defaultTier} tier.`;
      return {
        ok: true,
        artifacts: [
          {
            artifactId: randomUUID(),
            name: "offline-answer",
            description: "No model provider is configured: this records the request and its routing, it does not answer it.",
            parts: [
              { text: `[offline] ${summary} Request: ${request}` },
              { data: { agent: agent.id, skill: skill?.id ?? null, tier: agent.defaultTier, simulated: true } },
            ],
          },
        ],
      };
    },
  };
}

/** An execution agent's plan: a cycle has nothing to do (no model call); a task is work for its best-matching skill. */
export function planBySkill(agent: HostedAgent): AgentBehaviour["plan"] {
  return async (input) => {
    if (input.trigger === "cycle" || !input.item) return { kind: "nothing" };
    const skill = matchSkill(agent, textOf(input.item.message))?.id;
    return { kind: "work", item: input.item, skillId: skill };
  };
}
