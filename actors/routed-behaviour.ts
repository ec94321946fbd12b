import { randomUUID } from "node:crypto";
import { FleetError, type ChatMessage, type SessionLogEntry } from "../protocol/index.js";
import type { RouterClient } from "../router/index.js";
import type { AgentBehaviour, HostedAgent } from "./behaviour.js";
import { planBySkill, textOf } from "./offline-behaviour.js";

/**
 * An execution agent whose work goes through the model router: a task is matched to one of the agent's skills and
 * answered by one `complete` call, at the tier the router picks for the step (its title is the task's first line), billed
 * to the agent and the task. A cycle has nothing to do and makes no call. With no provider configured the router answers
 * on its simulated provider, and the artifact says so.
 */
/** The memory an agent's step reads and writes; without it a step sees only its role, its skill and the task. */
export interface StepMemory {
  /** the step's messages: role, the skills the task matches, the memory tiers within their budgets, then the task */
  prompt(agent: HostedAgent, task: string): Promise<ChatMessage[]>;
  /** what happened, for the session log that tomorrow's prompts and tonight's distillation read */
  record(entry: { agentId: string; kind: SessionLogEntry["kind"]; text: string; taskId?: string | undefined }): Promise<void>;
}

export function routedBehaviour(agent: HostedAgent, router: RouterClient, memory?: StepMemory): AgentBehaviour {
  return {
    plan: planBySkill(agent),
    async act(input, ctx) {
      ctx.signal.throwIfAborted();
      const item = input.plan.item;
      const request = item ? textOf(item.message) : "";
      const skill = agent.skills.find((s) => s.id === input.plan.skillId);
      const title = request.split("\n", 1)[0]?.slice(0, 200) ?? "";
      const remember = (kind: SessionLogEntry["kind"], text: string) =>
        memory?.record({ agentId: agent.id, kind, text, taskId: item?.taskId }).catch((err: unknown) => ctx.log.warn({ err }, "session log not written"));
      try {
        const messages: ChatMessage[] = memory
          ? await memory.prompt(agent, request)
          : [
              { role: "system", content: systemPrompt(agent, skill) },
              { role: "user", content: request },
            ];
        const reply = await router.complete({
          agentId: agent.id,
          ...(item ? { taskId: item.taskId } : {}),
          kind: skill?.id ?? "general",
          title,
          messages,
          // an empty answer or a refusal is not an answer: the router escalates the step one tier up
          checks: ["non-empty", "no-refusal"],
        });
        ctx.log.info({ tier: reply.servedTier, costUsd: reply.costUsd, cacheHit: reply.cacheHit, simulated: reply.simulated }, "step answered");
        await remember("task", `${title} → ${reply.text.replace(/\s+/g, " ").slice(0, 300)}`);
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
        await remember("error", `${title} → ${reason.slice(0, 300)}`);
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
