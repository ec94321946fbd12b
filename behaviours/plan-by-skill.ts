import { textOf } from "../protocol/index.js";
import { matchSkill, type AgentBehaviour, type HostedAgent } from "../actors/index.js";

/** An execution agent's plan: a cycle has nothing to do (no model call); a task is work for its best-matching skill. */
export function planBySkill(agent: HostedAgent): AgentBehaviour["plan"] {
  return async (input) => {
    if (input.trigger === "cycle" || !input.item) return { kind: "nothing" };
    const skill = matchSkill(agent, textOf(input.item.message))?.id;
    return { kind: "work", item: input.item, skillId: skill };
  };
}
