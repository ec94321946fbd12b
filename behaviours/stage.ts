import type { ActInput, EffectContext, Outcome, Plan, PlanInput } from "../actors/index.js";

/**
 * The rest of the chain as a stage sees it: the next stage, or at the end the role's own behaviour. It has an effect's
 * signature, so a stage may hand on a different input or context (a child logger, say) and the terminal is just an
 * AgentBehaviour's method.
 */
export type Next<I, O> = (input: I, ctx: EffectContext) => Promise<O>;

/** One stage's hook on one effect: answer by itself (never calling `next`), or call `next` and return or adjust its answer. */
export type StageMethod<I, O> = (input: I, ctx: EffectContext, next: Next<I, O>) => Promise<O>;

/**
 * One link in a step's chain, in the spirit of Temporal's interceptors: each hook is optional, and a stage without one for
 * an effect is skipped for that effect. The chain is assembled in one place (behaviours/role-behaviour.ts) by
 * `composeBehaviour`, so what a role does in a step reads as one list. New kinds of work (pipelines, duties) are a stage
 * added to that list, not a wrapper hidden in another file.
 */
export interface BehaviourStage {
  /** says which stage this is in logs and tests */
  readonly name: string;
  plan?: StageMethod<PlanInput, Plan>;
  act?: StageMethod<ActInput, Outcome>;
}
