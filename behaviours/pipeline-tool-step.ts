import { TOOL_CHECKS, type ToolStep } from "../config/index.js";
import type { AgentTools } from "../governance/index.js";
import { FleetError, type Finding, type PipelineStepRecord } from "../protocol/index.js";
import type { Tracer } from "@opentelemetry/api";
import { tracedGovernedCall } from "./governed-call.js";
import { findingsOf, type FindingOrigin } from "./pipeline-findings.js";
import { holds, renderValue, resolvePath, type PipelineScope } from "./pipeline-templates.js";

/** Failures of the tool itself (not governance saying no) that `onError: record` turns into an output. */
const RECORDABLE: ReadonlySet<string> = new Set(["TOOL_FAILED", "TIMEOUT", "TOOL_OUTCOME_UNKNOWN"]);

export interface ToolStepContext {
  tools: AgentTools;
  /** each call an `execute_tool` span (telemetry on) */
  tracer?: Tracer | undefined;
  pipelineId: string;
  origin: Omit<FindingOrigin, "stepId" | "itemIndex">;
  signal: AbortSignal;
  /** publishes a finding before the step's record is saved */
  publish: (finding: Finding) => Promise<void>;
  /** whether a finding is one of the duty's open problems (seen again: kept, not published again) */
  isOpen?: (finding: Finding) => boolean;
  now: () => number;
}

/**
 * The idempotency key of one tool call of a run: the same task, step and element always give the same key, so a run
 * resumed after a crash asks the tool host again under it and gets the recorded result instead of a second effect.
 */
export function toolCallKey(taskId: string, stepId: string, itemIndex: number): string {
  return `pipeline:${taskId}:${stepId}:${itemIndex}`.slice(0, 200);
}

/**
 * A tool step: tier 0, through the agent's governed tool path (allow list, audit, idempotency key); once per element
 * under forEach. A PROPOSE or CONFIRM tool becomes a proposal (its output names it). After each call the step's finding
 * rules run on its output and what they find is published at once, except a problem the duty has open already: that is
 * returned as still open, not published again.
 */
export async function runToolStep(step: ToolStep, scope: PipelineScope, c: ToolStepContext): Promise<{ record: PipelineStepRecord; findings: Finding[]; stillOpen: Finding[] }> {
  const items = step.forEach === undefined ? [undefined] : resolvePath(scope, step.forEach);
  if (!Array.isArray(items)) throw new FleetError("PIPELINE_STEP_FAILED", `step "${step.id}": forEach "${step.forEach}" is not a list`);
  // a condition on the element is asked per element; any other once, for the whole step
  const perItem = step.forEach !== undefined && step.when?.path.split(".")[0] === "item";
  const outputs: unknown[] = [];
  const findings: Finding[] = [];
  const stillOpen: Finding[] = [];
  const proposals: string[] = [];
  let calls = 0;
  let replayed = 0;
  for (const [index, item] of items.entries()) {
    c.signal.throwIfAborted();
    const itemScope: PipelineScope = step.forEach === undefined ? scope : { ...scope, item };
    if (perItem && step.when && !holds(step.when, itemScope)) {
      outputs.push(null);
      continue;
    }
    const input = renderValue(step.input, itemScope);
    let output: unknown;
    try {
      const done = await tracedGovernedCall(c.tools, {
        tool: step.tool,
        input,
        reason: `pipeline ${c.pipelineId}, step ${step.id}`,
        taskId: c.origin.taskId,
        idempotencyKey: toolCallKey(c.origin.taskId, step.id, index),
      }, c.tracer);
      calls++;
      if (done.kind === "proposed") {
        proposals.push(done.proposalId);
        output = { proposed: true, proposalId: done.proposalId, tool: done.tool, risk: done.risk };
      } else {
        if (done.replayed) replayed++;
        output = done.output;
      }
    } catch (err) {
      const error = FleetError.from(err);
      if (step.onError !== "record" || !RECORDABLE.has(error.code)) throw error;
      calls++;
      output = { error: { code: error.code, message: error.message } };
    }
    const failed = step.check === undefined ? undefined : checkOutput(step.check, output);
    if (failed) throw new FleetError("PIPELINE_STEP_FAILED", `step "${step.id}" failed its check "${step.check}" (${failed})`);
    outputs.push(output);
    const found = findingsOf(step.findings, { ...itemScope, output }, { ...c.origin, stepId: step.id, itemIndex: index, at: c.now() }, {
      tool: step.tool,
      input,
      output,
    });
    for (const finding of found) {
      if (c.isOpen?.(finding)) {
        stillOpen.push(finding);
        continue;
      }
      await c.publish(finding);
      findings.push(finding);
    }
  }
  const record: PipelineStepRecord = {
    id: step.id,
    kind: "tool",
    status: "done",
    output: step.forEach === undefined ? outputs[0] : outputs,
    tool: { name: step.tool, calls, replayed, proposals },
    findings: findings.map((f) => f.id),
    at: c.now(),
  };
  return { record, findings, stillOpen };
}

const field = (output: unknown, name: string): unknown => (typeof output === "object" && output !== null ? Reflect.get(output, name) : undefined);
const expect = (name: string, wanted: unknown) => (output: unknown) => (field(output, name) === wanted ? undefined : `${name} is ${JSON.stringify(field(output, name)) ?? "missing"}`);

/** Each named check: why an output fails it, or undefined when it passes. */
const CHECKS: Record<keyof typeof TOOL_CHECKS, (output: unknown) => string | undefined> = {
  "exit-code-zero": expect("exitCode", 0),
  ok: expect("ok", true),
  open: expect("open", true),
};

function checkOutput(check: string, output: unknown): string | undefined {
  const run = Object.entries(CHECKS).find(([name]) => name === check)?.[1];
  return run ? run(output) : `no check "${check}" (known: ${Object.keys(TOOL_CHECKS).join(", ")})`;
}
