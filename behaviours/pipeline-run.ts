import type { Tracer } from "@opentelemetry/api";
import type { Logger } from "pino";
import { gateModelCall, ModelWorkHeld, type HostedAgent, type ModelStepWork, type ModelWorkGate } from "../actors/index.js";
import type { PipelineConfig } from "../config/index.js";
import type { AgentTools } from "../governance/index.js";
import type { Finding, OpenProblem, PipelineRunRecord, PipelineStepRecord, TaskWork } from "../protocol/index.js";
import type { RouterClient } from "../router/index.js";
import { runModelStep } from "./pipeline-model-step.js";
import type { PipelineRunStore } from "./pipeline-store.js";
import { findingsView, holds, renderText, type PipelineScope } from "./pipeline-templates.js";
import { runToolStep } from "./pipeline-tool-step.js";

export interface PipelineRunnerDeps {
  agent: HostedAgent;
  tools: AgentTools;
  router: RouterClient;
  /** where each step's record is saved before the next starts (PipelineRunStore) */
  store: Pick<PipelineRunStore, "load" | "save">;
  publishFinding: (finding: Finding) => Promise<void>;
  now: () => number;
  /** quiet hours and spent caps: asked before each model step; a hold stops the run at that step (saved steps stay) */
  gate?: ModelWorkGate | undefined;
  /** tool steps' calls as `execute_tool` spans (telemetry on) */
  tracer?: Tracer | undefined;
}

export interface PipelineRunRequest {
  pipelineId: string;
  pipeline: PipelineConfig;
  taskId: string;
  /** the run's input: the pipeline's default input with the task's merged over it */
  input: Record<string, unknown>;
  /** the tier or alias of model steps that name none */
  tier?: string | undefined;
  /** the duty the run belongs to (its findings say so); the pipeline's id otherwise */
  duty?: string | undefined;
  /** the task's own work record (trigger, urgent): what quiet hours' policy reads */
  work?: TaskWork | undefined;
  /** the duty's open problems: seen again, they are still open, not new findings (TaskWork.open) */
  open?: readonly OpenProblem[] | undefined;
}

export interface PipelineResult {
  /** false: no finding and no model step ran — nothing to deliver, and the run cost $0 */
  found: boolean;
  /** the text to deliver; undefined when nothing was found */
  report: string | undefined;
  steps: PipelineStepRecord[];
  findings: Finding[];
  /** the duty's open problems this run saw again (not published again, no model step for them) */
  stillOpen: Finding[];
  /** what the run's model steps cost, each once */
  costUsd: number;
  /** the steps this attempt found finished by an earlier one (a redelivered task), which it did not run again */
  resumed: number;
}

/**
 * Runs a pipeline for one task, step by step, each step's record saved before the next starts. A task redelivered after
 * a crash finds its run's record and goes on at the step it was in: finished steps are neither run nor billed again, and
 * the step that was interrupted asks its tool calls under the same idempotency keys and its model call under the same
 * step name, so the tool host and the router answer from what they recorded.
 */
export async function runPipeline(deps: PipelineRunnerDeps, request: PipelineRunRequest, ctx: { signal: AbortSignal; log: Logger }): Promise<PipelineResult> {
  const { agent, store } = deps;
  const started = deps.now();
  const stored = await store.load(agent.id, request.taskId);
  const record: PipelineRunRecord = stored && stored.pipeline === request.pipelineId ? stored : {
    agentId: agent.id,
    taskId: request.taskId,
    pipeline: request.pipelineId,
    input: request.input,
    steps: [],
    findings: [],
    startedAt: started,
    updatedAt: started,
  };
  // a redelivered task runs with the input it started with, whatever the config says now
  const scope: PipelineScope = { input: record.input, steps: {}, findings: findingsView(record.findings) };
  const steps = request.pipeline.steps;
  const open = request.open ?? [];
  const isOpen = (f: Finding) => open.some((o) => o.subject === f.subject && o.key === f.key);
  let resumed = 0;
  // a stored step counts only while it matches the pipeline's step at the same place (a changed config starts over there)
  for (const done of record.steps) {
    if (!sameStep(done, steps[resumed])) break;
    scope.steps[done.id] = done.status === "skipped" ? { skipped: true } : { output: done.output };
    resumed++;
  }
  if (resumed < record.steps.length) record.steps = record.steps.slice(0, resumed);
  if (resumed > 0) ctx.log.info({ pipeline: request.pipelineId, resumedAt: steps[resumed]?.id ?? "(end)", finished: resumed }, "pipeline run resumed");

  for (const step of steps.slice(resumed)) {
    ctx.signal.throwIfAborted();
    const isTool = "tool" in step;
    let done: PipelineStepRecord;
    // a step-level condition; under forEach a condition on `item` is asked per element by the tool step
    const perItem = isTool && step.forEach !== undefined && step.when?.path.split(".")[0] === "item";
    if (step.when && !perItem && !holds(step.when, scope)) {
      done = { id: step.id, kind: isTool ? "tool" : "model", status: "skipped", findings: [], at: deps.now() };
    } else if (isTool) {
      const ran = await runToolStep(step, scope, {
        tools: deps.tools,
        tracer: deps.tracer,
        pipelineId: request.pipelineId,
        origin: { agentId: agent.id, duty: request.duty ?? request.pipelineId, taskId: request.taskId, at: deps.now() },
        signal: ctx.signal,
        publish: deps.publishFinding,
        isOpen,
        now: deps.now,
      });
      done = ran.record;
      record.findings = [...record.findings, ...ran.findings];
      if (ran.stillOpen.length > 0) record.stillOpen = [...(record.stillOpen ?? []), ...ran.stillOpen];
      scope.findings = findingsView(record.findings);
    } else {
      const work: ModelStepWork = {
        agentId: agent.id,
        taskId: request.taskId,
        work: { ...request.work, ...(step.model.tier ?? request.tier ? { tier: step.model.tier ?? request.tier } : {}) },
        title: `${request.pipelineId}: ${step.id}`,
      };
      try {
        done = await gateModelCall(deps.gate, work, () =>
          runModelStep(step, scope, { agent, router: deps.router, pipelineId: request.pipelineId, taskId: request.taskId, tier: request.tier, tierFrom: request.work?.duty !== undefined ? "duty" : request.work?.cronJob !== undefined ? "cron" : "task", trigger: request.work?.trigger, now: deps.now }, ctx.signal),
        );
      } catch (err) {
        // held here: the hold says what the run found so far (published already), so the duty's next runs know it
        if (err instanceof ModelWorkHeld && record.findings.length > 0) throw new ModelWorkHeld({ ...err.hold, found: record.findings.map((f) => ({ subject: f.subject, key: f.key })) });
        throw err;
      }
    }
    scope.steps[step.id] = done.status === "skipped" ? { skipped: true } : { output: done.output };
    record.steps = [...record.steps, done];
    record.updatedAt = deps.now();
    await store.save(record);
    ctx.log.info(
      { pipeline: request.pipelineId, step: step.id, status: done.status, findings: done.findings.length, ...(done.model ? { tier: done.model.servedTier, costUsd: done.model.costUsd, escalations: done.model.escalations.length, replayed: done.model.replayed } : {}) },
      "pipeline step done",
    );
  }

  const modelRan = record.steps.some((s) => s.kind === "model" && s.status === "done");
  // a pipeline that watches (finding rules or model steps) and saw nothing has nothing to say; one that only gathers
  // (tool steps, no rules) always reports what it gathered
  const watches = steps.some((s) => ("tool" in s ? s.findings.length > 0 : true));
  const found = record.findings.length > 0 || modelRan || !watches;
  return {
    found,
    report: found ? reportOf(request.pipeline, scope, record) : undefined,
    steps: record.steps,
    findings: record.findings,
    stillOpen: record.stillOpen ?? [],
    costUsd: record.steps.reduce((sum, s) => sum + (s.model?.costUsd ?? 0), 0),
    resumed,
  };
}

function sameStep(stored: PipelineStepRecord, step: PipelineConfig["steps"][number] | undefined): boolean {
  return step !== undefined && stored.id === step.id && stored.kind === ("tool" in step ? "tool" : "model");
}

/** The `report` template; else the last model step's answer; else the findings' summaries; else the last output. */
function reportOf(pipeline: PipelineConfig, scope: PipelineScope, record: PipelineRunRecord): string {
  if (pipeline.report !== undefined) return renderText(pipeline.report, scope);
  const lastModel = [...record.steps].reverse().find((s) => s.kind === "model" && s.status === "done");
  if (lastModel) return JSON.stringify(lastModel.output, null, 2);
  if (record.findings.length > 0) return record.findings.map((f) => `[${f.severity}] ${f.subject}: ${f.summary}`).join("\n");
  const last = [...record.steps].reverse().find((s) => s.status === "done");
  return last ? JSON.stringify(last.output, null, 2) : "";
}
