import { randomUUID } from "node:crypto";
import { textOf } from "../protocol/index.js";
import type { AgentBehaviour, HostedAgent } from "../actors/index.js";
import { planBySkill } from "./plan-by-skill.js";

/**
 * An execution agent that calls no model, not even the router's simulated one: a task is accepted, matched to one of the
 * agent's skills, and answered with a clearly labelled record of what would have been done and at which tier. Nothing
 * outside the fleet is touched. A cycle has nothing to do.
 *
 * No role runs it in production (with no provider the router's simulated provider answers instead). Tests and the
 * benchmarks use it as the cheapest real behaviour; it lives here rather than in test/fixtures because bench/ may not
 * import test/.
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
