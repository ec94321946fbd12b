import { randomUUID } from "node:crypto";
import { heldOutcome, ModelWorkHeld } from "../actors/index.js";
import type { PipelineConfig } from "../config/index.js";
import { FleetError, taskWorkOf, triggerOf, type Artifact } from "../protocol/index.js";
import { runPipeline, type PipelineResult, type PipelineRunnerDeps } from "./pipeline-run.js";
import type { BehaviourStage } from "./stage.js";

/** Failures that pass (no router, no tool host, NATS away, a call still running): the task is redelivered and resumes. */
const PASSING: ReadonlySet<string> = new Set(["ROUTER_UNAVAILABLE", "TIMEOUT", "NATS_UNAVAILABLE", "PROVIDER_FAILED", "PROVIDER_WAITING", "TOOL_UNAVAILABLE", "TOOL_IN_PROGRESS", "INTERNAL"]);

/**
 * A task whose message names a pipeline (`metadata.work.pipeline`, as `fleet send --pipeline`, a duty or Atlas send it)
 * runs that pipeline, with `work.input` merged over the pipeline's default input, for any role: the plan is the task
 * itself (no skill match, no delegation), and the outcome is the run's artifact. Any other task goes on down the chain.
 */
export function pipelineStage(pipelines: Readonly<Record<string, PipelineConfig>>, deps: PipelineRunnerDeps): BehaviourStage {
  return {
    name: "pipeline",
    async plan(input, ctx, next) {
      const work = input.item ? taskWorkOf(input.item.message.metadata) : undefined;
      if (!work?.pipeline) return next(input, ctx);
      return { kind: "work", item: input.item, skillId: undefined };
    },
    async act(input, ctx, next) {
      const item = input.plan.item;
      const work = item ? taskWorkOf(item.message.metadata) : undefined;
      if (!item || !work?.pipeline) return next(input, ctx);
      const pipeline = pipelines[work.pipeline];
      if (!pipeline) {
        const known = Object.keys(pipelines).join(", ") || "none";
        return { ok: false, reason: `PIPELINE_NOT_FOUND: no pipeline "${work.pipeline}" in this fleet (pipelines: ${known})` };
      }
      const log = ctx.log.child({ pipeline: work.pipeline });
      try {
        const result = await runPipeline(
          deps,
          { pipelineId: work.pipeline, pipeline, taskId: item.taskId, input: { ...pipeline.input, ...work.input }, tier: work.tier, duty: work.duty, work: { ...work, trigger: triggerOf(item.message) }, open: work.open },
          { signal: ctx.signal, log },
        );
        log.info({ found: result.found, findings: result.findings.length, stillOpen: result.stillOpen.length, costUsd: result.costUsd, resumed: result.resumed }, result.found ? "pipeline run found something" : "pipeline run found nothing");
        return { ok: true, artifacts: [pipelineArtifact(work.pipeline, result)] };
      } catch (err) {
        // quiet hours or a spent cap: the run waits at this step (the finished ones are saved) and goes on at the hold's end
        if (err instanceof ModelWorkHeld) return heldOutcome(err.hold);
        const error = FleetError.from(err);
        const reason = `${error.code}: ${error.message}`;
        // stopped or canceled mid-run: what is saved stays saved, and a redelivery resumes from it
        if (ctx.signal.aborted) return { ok: false, retry: true, reason: `stopped mid-run: ${reason}` };
        log.warn({ code: error.code }, "pipeline run failed");
        if (PASSING.has(error.code)) return { ok: false, retry: true, reason };
        return { ok: false, reason };
      }
    },
  };
}

/**
 * The run as the task's artifact: the report as text ("nothing found" when it found nothing), the step records and the
 * findings as data, and `found` in the metadata, which is what a duty's delivery reads to stay silent.
 */
export function pipelineArtifact(pipelineId: string, result: PipelineResult): Artifact {
  const simulated = result.steps.some((s) => s.model?.simulated);
  return {
    artifactId: randomUUID(),
    name: "pipeline-run",
    description: simulated
      ? `pipeline ${pipelineId}; no model provider is configured: the router's simulated provider answered its model steps (placeholder JSON, no model was called)`
      : `pipeline ${pipelineId}`,
    parts: [
      { text: result.found ? (result.report ?? "") || "(empty report)" : "nothing found" },
      {
        data: {
          pipeline: pipelineId,
          found: result.found,
          costUsd: result.costUsd,
          // each step's record without its output (that is in `outputs`, once): the artifact must fit the task's record
          steps: result.steps.map(({ output: _output, ...step }) => step),
          findings: result.findings,
          ...(result.stillOpen.length > 0 ? { stillOpen: result.stillOpen } : {}),
          outputs: Object.fromEntries(result.steps.filter((s) => s.status === "done").map((s) => [s.id, s.output ?? null])),
        },
      },
    ],
    metadata: {
      pipeline: pipelineId,
      found: result.found,
      costUsd: result.costUsd,
      findings: result.findings.length,
      // every problem the run saw, new or still open: the duty's open problems from now on
      open: [...result.findings, ...result.stillOpen].map((f) => ({ subject: f.subject, key: f.key })),
      ...(result.stillOpen.length > 0 ? { stillOpen: result.stillOpen.length } : {}),
      ...(simulated ? { simulated: true } : {}),
    },
  };
}
