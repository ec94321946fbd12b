import { randomUUID } from "node:crypto";
import { FleetError } from "../protocol/index.js";
import type { RouterClient } from "../router/index.js";
import type { AgentBehaviour, HostedAgent } from "./behaviour.js";
import { planBySkill, textOf } from "./offline-behaviour.js";

/**
 * An execution agent whose work goes through the model router: a task is matched to one of the agent's skills and
 * answered by one `complete` call, at the tier the router picks for the step (its title is the task's first line), billed
 * to the agent and the task. A cycle has nothing to do and makes no call. With no provider configured the router answers
 * on its simulated provider, and the artifact says so.
 */
export function routedBehaviour(agent: HostedAgent, router: RouterClient): AgentBehaviour {
  return {
    plan: planBySkill(agent),
    async act(input, ctx) {
      ctx.signal.throwIfAborted();
      const item = input.plan.item;
      const request = item ? textOf(item.message) : "";
      const skill = agent.skills.find((s) => s.id === input.plan.skillId);
      try {
        const reply = await router.complete({
          agentId: agent.id,
          ...(item ? { taskId: item.taskId } : {}),
          kind: skill?.id ?? "general",
          title: request.split("\n", 1)[0]?.slice(0, 200) ?? "",
          messages: [
            { role: "system", content: systemPrompt(agent, skill) },
            { role: "user", content: request },
          ],
          // an empty answer or a refusal is not an answer: the router escalates the step one tier up
          checks: ["non-empty", "no-refusal"],
        });
        ctx.log.info({ tier: reply.servedTier, costUsd: reply.costUsd, cacheHit: reply.cacheHit, simulated: reply.simulated }, "step answered");
        return {
          ok: true,
          artifacts: [
            {
              artifactId: randomUUID(),
              name: reply.simulated ? "simulated-answer" : "answer",
              ...(reply.simulated ? { description: "No model provider is configured: the router's simulated provider wrote this; no model was called." } : {}),
              parts: [
                { text: reply.text },
                {
                  data: {
                    agent: agent.id,
                    skill: skill?.id ?? null,
                    tier: reply.servedTier,
                    model: reply.model,
                    why: reply.decision.detail,
                    costUsd: reply.costUsd,
                    cacheHit: reply.cacheHit,
                    simulated: reply.simulated,
                  },
                },
              ],
            },
          ],
        };
      } catch (err) {
        const error = FleetError.from(err);
        const reason = `${error.code}: ${error.message}`;
        // no router or NATS away passes: the task comes back later. A spent budget or a failed check does not pass soon.
        if (PASSING.has(error.code)) return { ok: false, retry: true, reason };
        return { ok: false, reason };
      }
    },
  };
}

const PASSING = new Set(["ROUTER_UNAVAILABLE", "TIMEOUT", "NATS_UNAVAILABLE", "PROVIDER_FAILED"]);

function systemPrompt(agent: HostedAgent, skill: HostedAgent["skills"][number] | undefined): string {
  const lines = [`You are ${agent.name}. ${agent.role}`];
  if (skill) lines.push(`Use your "${skill.name}" skill: ${skill.description}`);
  lines.push("Answer briefly and say what you found or did; say so plainly when you cannot tell.");
  return lines.join("\n");
}
