import { z } from "zod";
import { Finding } from "./autonomy.js";
import { RouteReason, RouteStep, TierName } from "./router.js";

/*
 * A pipeline run's durable record (KV `pipelineruns`, key `<agentId>.<taskId>`): each step's result is written here
 * before the next step starts, so a task redelivered after a crash resumes at the step it was in and never re-runs or
 * re-bills a finished one.
 */

/** How a model step was served: the router's decision and any escalation after a failed check. */
export const ModelStepServed = z.object({
  requestedTier: TierName,
  servedTier: TierName,
  reason: RouteReason,
  detail: z.string(),
  escalations: z.array(RouteStep),
  fallbacks: z.array(RouteStep),
  model: z.string(),
  costUsd: z.number().nonnegative(),
  /** answered from the router's kept answer for this step (a redelivery): no model call, nothing billed */
  replayed: z.boolean(),
  simulated: z.boolean(),
});
export type ModelStepServed = z.infer<typeof ModelStepServed>;

export const PipelineStepRecord = z.object({
  id: z.string(),
  kind: z.enum(["tool", "model"]),
  status: z.enum(["done", "skipped"]),
  /** the tool's output (a list under forEach, one per element) or the model's parsed answer */
  output: z.unknown().optional(),
  tool: z
    .object({
      name: z.string(),
      calls: z.number().int().nonnegative(),
      /** calls the tool host answered from its record of an earlier call with the same idempotency key */
      replayed: z.number().int().nonnegative(),
      /** proposals a PROPOSE or CONFIRM tool became */
      proposals: z.array(z.string()),
    })
    .optional(),
  model: ModelStepServed.optional(),
  /** the ids of the findings this step published */
  findings: z.array(z.string()),
  /** epoch ms the step finished */
  at: z.number(),
});
export type PipelineStepRecord = z.infer<typeof PipelineStepRecord>;

export const PipelineRunRecord = z.object({
  agentId: z.string(),
  taskId: z.string(),
  pipeline: z.string(),
  input: z.record(z.string(), z.unknown()),
  /** the steps finished so far, in order */
  steps: z.array(PipelineStepRecord),
  findings: z.array(Finding),
  /** what the run saw again of the problems its duty has open: not published again (TaskWork.open) */
  stillOpen: z.array(Finding).optional(),
  startedAt: z.number(),
  updatedAt: z.number(),
});
export type PipelineRunRecord = z.infer<typeof PipelineRunRecord>;
