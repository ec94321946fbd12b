import { randomUUID } from "node:crypto";
import { FleetError, taskWorkOf, triggerOf, textOf, titleOfText, type ChatMessage, type CompleteReply, type SessionLogEntry } from "../protocol/index.js";
import { heldOutcome, type AgentBehaviour, type HostedAgent, type ModelStepWork, type ModelWorkGate, type StepMemory, type StepToolOutcome, type StepTools } from "../actors/index.js";
import { pruneToolRounds, routeIntent, type RouterClient } from "../router/index.js";
import { planBySkill } from "./plan-by-skill.js";

export interface RoutedStepOptions {
  /** the agent's tools, offered to the model; without them (or with none to offer) a step is one plain call */
  tools?: StepTools | undefined;
  /** how many rounds of tool calls a step may make before it must answer in text (default 5) */
  maxToolRounds?: number;
  /** asked before the step's first model call (quiet hours), and told of a refusal (a spent cap): the task waits */
  gate?: ModelWorkGate | undefined;
  /**
   * the step's input budget in (estimated) tokens: past it, tool rounds before the last two are folded into a summary
   * (router/lean-context.ts pruneToolRounds) so a long tool conversation does not re-send every result (default 12,000)
   */
  maxStepInputTokens?: number;
}

export const DEFAULT_MAX_TOOL_ROUNDS = 5;
export const DEFAULT_MAX_STEP_INPUT_TOKENS = 12_000;

/**
 * An execution agent whose work goes through the model router: a task is matched to one of the agent's skills and
 * answered at the tier the router picks for the step (its title is the task's first line), billed to the agent and the
 * task. A cycle has nothing to do and makes no call. With no provider configured the router answers on its simulated
 * provider, and the artifact says so.
 *
 * With tools, the step is a conversation: while the model answers with tool calls, each call is carried out through
 * StepTools (governed: it runs, becomes a proposal, or is refused), the results go back as tool messages, and the model
 * is asked again, every round a normal router call. The text answer it finally gives is the artifact. The tool calls stay
 * inside this step rather than in a stage of their own: they are rounds of one model conversation, each round needing
 * the messages of the one before.
 *
 * It is the terminal of an execution role's chain (behaviours/role-behaviour.ts): what runs once no stage has answered.
 */
export function routedModelStep(agent: HostedAgent, router: RouterClient, memory?: StepMemory, options: RoutedStepOptions = {}): AgentBehaviour {
  const maxRounds = options.maxToolRounds ?? DEFAULT_MAX_TOOL_ROUNDS;
  if (!Number.isInteger(maxRounds) || maxRounds < 0) throw new RangeError(`maxToolRounds must be a whole number, not ${maxRounds}`);
  return {
    plan: planBySkill(agent),
    async act(input, ctx) {
      ctx.signal.throwIfAborted();
      const item = input.plan.item;
      const request = item ? textOf(item.message) : "";
      const skill = agent.skills.find((s) => s.id === input.plan.skillId);
      const title = titleOfText(request);
      // what the task names (metadata.work.tier) wins over the skill's tier; with neither, the router reads the title
      const work = item ? taskWorkOf(item.message.metadata) : undefined;
      const askedBy = work?.duty !== undefined ? "duty" : work?.cronJob !== undefined ? "cron" : "task";
      const intent = work?.tier !== undefined ? routeIntent(work.tier, askedBy) : routeIntent(skill?.tier, "skill");
      const remember = (kind: SessionLogEntry["kind"], text: string) =>
        memory?.record({ agentId: agent.id, kind, text, taskId: item?.taskId }).catch((err: unknown) => ctx.log.warn({ err }, "session log not written"));
      const made: { name: string; outcome: StepToolOutcome }[] = [];
      const step: ModelStepWork = { agentId: agent.id, taskId: item?.taskId, work: taskWorkOf(item?.message.metadata), title };
      // asked before the prompt is even assembled: held work costs nothing
      const held = options.gate?.check(step);
      if (held) return heldOutcome(held);
      try {
        let messages: ChatMessage[] = memory
          ? await memory.prompt(agent, request)
          : [
              { role: "system", content: systemPrompt(agent, skill) },
              { role: "user", content: request },
            ];
        const definitions = options.tools?.definitions() ?? [];
        let costUsd = 0;
        let reply: CompleteReply;
        const stepBudget = options.maxStepInputTokens ?? DEFAULT_MAX_STEP_INPUT_TOKENS;
        for (let round = 0; ; round++) {
          ctx.signal.throwIfAborted();
          if (round > 0) messages = pruneToolRounds(messages, stepBudget);
          reply = await router.complete({
            agentId: agent.id,
            // the round names the step: a redelivered task asks in the same order and is answered from the router's
            // kept answer instead of paying again
            ...(item ? { taskId: item.taskId, step: String(round) } : {}),
            kind: skill?.id ?? "general",
            title,
            ...(item ? { trigger: triggerOf(item.message) } : {}),
            ...intent,
            messages,
            ...(definitions.length > 0 ? { tools: definitions } : {}),
            // an empty answer or a refusal is not an answer: the router escalates the step one tier up (a turn that
            // calls tools is exempt there; the text answer after it is checked)
            checks: ["non-empty", "no-refusal"],
          });
          costUsd += reply.costUsd;
          const calls = reply.toolCalls ?? [];
          if (calls.length === 0) break;
          const names = calls.map((c) => c.name).join(", ");
          // a model may hallucinate a tools API it was never given; nothing could carry the calls out
          if (!options.tools || definitions.length === 0) return await failed(`the model asked for tools (${names}) but none were offered`);
          if (round >= maxRounds) return await failed(`the model still asked for tools (${names}) after ${maxRounds} rounds of tool calls: no answer`);
          messages.push({ role: "assistant", content: reply.text, toolCalls: calls });
          // one at a time and in order: the model may have meant them as a sequence, and governance sees them so
          for (const call of calls) {
            const result = await options.tools.run(call, item?.taskId);
            ctx.log.info({ tool: result.tool ?? call.name, outcome: result.outcome, round }, "model tool call");
            made.push({ name: result.tool ?? call.name, outcome: result.outcome });
            messages.push({ role: "tool", toolCallId: call.id, content: result.content });
          }
        }
        ctx.log.info({ tier: reply.servedTier, costUsd, cacheHit: reply.cacheHit, simulated: reply.simulated, toolCalls: made.length }, "step answered");
        await remember("task", `${title} → ${reply.text.replace(/\s+/g, " ").slice(0, 300)}${made.length > 0 ? ` (tools: ${summarise(made)})` : ""}`);
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
                    costUsd,
                    cacheHit: reply.cacheHit,
                    simulated: reply.simulated,
                    ...(made.length > 0 ? { toolCalls: made } : {}),
                  },
                },
              ],
            },
          ],
        };
      } catch (err) {
        // a spent cap is no failure: the task waits for midnight (a kept answer spares a redone round its bill)
        const hold = options.gate?.holdOf(err, step);
        if (hold) return heldOutcome(hold);
        const error = FleetError.from(err);
        const reason = `${error.code}: ${error.message}`;
        await remember("error", `${title} → ${reason.slice(0, 300)}`);
        // no router or NATS away passes: the task comes back later. A spent budget or a failed check does not pass soon.
        if (PASSING.has(error.code)) return { ok: false, retry: true, reason };
        return { ok: false, reason };
      }

      async function failed(reason: string) {
        await remember("error", `${title} → ${reason.slice(0, 300)}`);
        return { ok: false as const, reason: made.length > 0 ? `${reason} (tools called: ${summarise(made)})` : reason };
      }
    },
  };
}

const PASSING = new Set(["ROUTER_UNAVAILABLE", "TIMEOUT", "NATS_UNAVAILABLE", "PROVIDER_FAILED"]);

function summarise(made: readonly { name: string; outcome: StepToolOutcome }[]): string {
  return made.map((m) => `${m.name} ${m.outcome}`).join(", ");
}

function systemPrompt(agent: HostedAgent, skill: HostedAgent["skills"][number] | undefined): string {
  const lines = [`You are ${agent.name}. ${agent.role}`];
  if (skill) lines.push(`Use your "${skill.name}" skill: ${skill.description}`);
  lines.push("Answer briefly and say what you found or did; say so plainly when you cannot tell.");
  return lines.join("\n");
}
