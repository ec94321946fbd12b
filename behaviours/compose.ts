import type { AgentBehaviour, EffectContext } from "../actors/index.js";
import type { BehaviourStage, Next, StageMethod } from "./stage.js";

/**
 * The behaviour the agent chart runs: `stages` in order around `terminal`. The first stage sees an effect's input first
 * and its answer last (Temporal's order), so a stage that must win over everything after it goes earlier in the list.
 */
export function composeBehaviour(stages: readonly BehaviourStage[], terminal: AgentBehaviour): AgentBehaviour {
  return {
    plan: chain(stages.map((s) => s.plan), (input, ctx) => terminal.plan(input, ctx)),
    act: chain(stages.map((s) => s.act), (input, ctx) => terminal.act(input, ctx)),
  };
}

function chain<I, O>(methods: ReadonlyArray<StageMethod<I, O> | undefined>, terminal: Next<I, O>): Next<I, O> {
  // folded once, from the end: a step pays one closure call per stage that hooks the effect and nothing for the others
  let next = terminal;
  for (let i = methods.length - 1; i >= 0; i--) {
    const method = methods[i];
    if (!method) continue;
    const rest = next;
    next = (input: I, ctx: EffectContext) => method(input, ctx, rest);
  }
  return next;
}
