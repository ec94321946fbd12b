import { z } from "zod";
import { Severity } from "../protocol/index.js";
import { pathProblem, PATH_ROOTS, placeholdersOf, RULE_PATH_ROOTS, stringsIn } from "./pipeline-paths.js";
import { CronExpression } from "./schedule.js";
import { strict } from "./strict-object.js";

/*
 * Pipelines and duties in the fleet config. A pipeline is JSON in, JSON out: ordered steps, each a tool call (tier 0, no
 * model) or a model step with its own tier or alias, prompt template and output schema. A step sees only the run's input
 * and the outputs of the steps it names; there is no conversation history. A duty is an agent's standing work: a
 * pipeline on an interval or a cron expression, with explicit delivery.
 *
 * Templates: a string may hold `{{path}}` placeholders, resolved against the step's scope: `input.<field>` (the run's
 * input), `item` (the current element of a `forEach`), `output` (a tool step's output, in its finding rules),
 * `steps.<id>.output` (an earlier step's output) and `findings` (the findings so far). A string that is exactly one
 * placeholder keeps the value's type (a number stays a number, a list a list).
 */

const StepId = z.string().regex(/^[a-z][a-z0-9-]{0,63}$/, "must be lowercase letters, digits and '-', starting with a letter");
const ToolName = z.string().regex(/^[a-z][a-z0-9_]*(\.[a-z0-9_*-]+)?$/, 'must be a tool name (lowercase, digits, "_"), or "<server>.<tool>"');
const Template = z.string().min(1);

/**
 * A condition on the scope, with no code in config: the value at `path` is truthy, falsy, empty or non-empty, or compares
 * with `value` (`below` and `above` for numbers, `equal` for anything JSON). A missing value is falsy and empty, and never
 * below, above or equal to anything.
 */
export const Condition = strict({
  path: z.string().min(1),
  is: z.enum(["truthy", "falsy", "empty", "nonEmpty", "below", "above", "equal"]),
  value: z.unknown().optional(),
}).superRefine((c, ctx) => {
  if ((c.is === "below" || c.is === "above") && typeof c.value !== "number") ctx.addIssue({ code: "custom", path: ["value"], message: `"is: ${c.is}" compares with a number: give value` });
  if (c.is === "equal" && c.value === undefined) ctx.addIssue({ code: "custom", path: ["value"], message: '"is: equal" needs a value' });
  if (!["below", "above", "equal"].includes(c.is) && c.value !== undefined) ctx.addIssue({ code: "custom", path: ["value"], message: `"is: ${c.is}" takes no value` });
});
export type Condition = z.infer<typeof Condition>;

/**
 * A deterministic rule that turns a tool's output into a finding: when the condition holds on the step's scope (with
 * `output`, and `item` under a `forEach`), a finding with these templated fields is recorded.
 */
export const FindingRule = strict({
  when: Condition,
  severity: Severity.default("warning"),
  /** what it is about: a site, a repo, a customer */
  subject: Template,
  /** identifies the problem, so the same one found again is recognisably the same */
  key: Template,
  summary: Template,
});
export type FindingRule = z.infer<typeof FindingRule>;

/** The deterministic checks a tool step may name: each fails the step when the output does not pass it. */
export const TOOL_CHECKS = {
  "exit-code-zero": "the output's exitCode is 0",
  ok: "the output's ok is true",
  open: "the output's open is true",
} as const;

/**
 * A tool call: tier 0, no model. Under `forEach` (a path to a list) it runs once per element, with `item` in scope.
 * `onError: record` turns a failed call (the tool threw or timed out) into the output `{ error: { code, message } }`, so a
 * finding rule can report it (a TLS check of a host that no longer speaks TLS is itself the finding); a refusal by
 * governance always fails the step.
 */
export const ToolStep = strict({
  id: StepId,
  tool: ToolName,
  input: z.record(z.string(), z.unknown()).default({}),
  forEach: z.string().min(1).optional(),
  when: Condition.optional(),
  findings: z.array(FindingRule).default([]),
  /** a named deterministic check of the output (e.g. `exit-code-zero`); a failed check fails the step */
  check: z.string().min(1).optional(),
  onError: z.enum(["fail", "record"]).default("fail"),
});
export type ToolStep = z.infer<typeof ToolStep>;

/**
 * A model step: its own tier or alias, its prompt (a template), the outputs it may see, and the JSON schema its answer
 * must satisfy (asked for as the response format, then validated). A failed check escalates this step alone one tier up.
 */
export const ModelStep = strict({
  id: StepId,
  model: strict({
    /** a tier name or an alias (`triage`, `standard`, `heavy`); the router decides when omitted */
    tier: z.string().min(1).optional(),
    prompt: Template,
    /** the ids of earlier steps whose outputs the prompt may use; no other history reaches the model */
    uses: z.array(StepId).default([]),
    /** the JSON schema of the answer (an object schema) */
    output: z.record(z.string(), z.unknown()),
    /** a named deterministic check beyond the schema */
    check: z.string().min(1).optional(),
  }),
  when: Condition.optional(),
});
export type ModelStep = z.infer<typeof ModelStep>;

export const PipelineStep = z.union([ToolStep, ModelStep]);
export type PipelineStep = z.infer<typeof PipelineStep>;

export const PipelineConfig = strict({
  description: z.string().min(1).optional(),
  /** the input a run gets when its duty, job or task gives none (merged under what they give) */
  input: z.record(z.string(), z.unknown()).default({}),
  steps: z.array(PipelineStep).min(1),
  /** the text delivered when the run found something (a template); the last model step's output when omitted */
  report: Template.optional(),
}).superRefine(checkPipeline);
export type PipelineConfig = z.infer<typeof PipelineConfig>;

/** `30s`, `15m`, `2h`, `1d`: how often an interval schedule runs. */
export const Interval = z
  .string()
  .regex(/^[1-9]\d*(s|m|h|d)$/, "must be an interval such as 30s, 15m, 2h or 1d")
  .transform((text) => Number(text.slice(0, -1)) * { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[text.slice(-1) as "s" | "m" | "h" | "d"]);

export const Delivery = z.union([z.literal("none"), strict({ channel: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/), to: z.string().min(1) })], {
  error: 'required: a channel and recipient ({ channel, to }) or "none"',
});
export type Delivery = z.infer<typeof Delivery>;

/**
 * An agent's standing work: a pipeline on an interval (`every`) or a 5-field cron expression (`cron`, in the fleet's time
 * zone), with explicit delivery of what a run finds. A run that finds nothing delivers nothing.
 */
export const DutyConfig = strict({
  id: z.string().regex(/^[a-z][a-z0-9-]{0,63}$/, "must be lowercase letters, digits and '-', starting with a letter"),
  pipeline: z.string().min(1),
  every: Interval.optional(),
  /** minute hour day-of-month month day-of-week, in the fleet's time zone; checked at load */
  cron: CronExpression.optional(),
  input: z.record(z.string(), z.unknown()).default({}),
  /** a tier name or alias for the pipeline's model steps that name none */
  tier: z.string().min(1).optional(),
  delivery: Delivery,
}).refine((duty) => (duty.every === undefined) !== (duty.cron === undefined), { message: "give exactly one of every or cron", path: ["every"] });
export type DutyConfig = z.infer<typeof DutyConfig>;

/**
 * What the step shapes alone cannot say: step ids are unique, `uses` and every `steps.<id>` path name an earlier step, a
 * path starts at a root of the scope, a model prompt reads only the outputs its step uses, a model step's output is an
 * object schema zod can validate, a tool step's check is one there is. Each issue carries the path of its field.
 */
function checkPipeline(pipeline: { steps: PipelineStep[]; report?: string | undefined }, ctx: z.RefinementCtx): void {
  const report = (path: PropertyKey[], message: string) => ctx.addIssue({ code: "custom", path, message });
  const earlier = new Set<string>();
  const checkPath = (path: string, at: PropertyKey[], roots: readonly string[]) => {
    const problem = pathProblem(path, roots, earlier);
    if (problem) report(at, problem);
  };
  pipeline.steps.forEach((step, i) => {
    const at: PropertyKey[] = ["steps", i];
    if (earlier.has(step.id)) report([...at, "id"], `duplicate step id "${step.id}"`);
    if (step.when) checkPath(step.when.path, [...at, "when", "path"], PATH_ROOTS);
    if ("tool" in step) {
      if (step.forEach) checkPath(step.forEach, [...at, "forEach"], PATH_ROOTS);
      for (const { path, text } of stringsIn(step.input)) for (const p of placeholdersOf(text)) checkPath(p, [...at, "input", ...path], PATH_ROOTS);
      step.findings.forEach((rule, k) => {
        const ruleAt = [...at, "findings", k];
        checkPath(rule.when.path, [...ruleAt, "when", "path"], RULE_PATH_ROOTS);
        for (const field of ["subject", "key", "summary"] as const) for (const p of placeholdersOf(rule[field])) checkPath(p, [...ruleAt, field], RULE_PATH_ROOTS);
      });
      if (step.check !== undefined && !(step.check in TOOL_CHECKS)) report([...at, "check"], `unknown check "${step.check}" (known: ${Object.keys(TOOL_CHECKS).join(", ")})`);
    } else {
      const model = step.model;
      model.uses.forEach((used, k) => {
        if (!earlier.has(used)) report([...at, "model", "uses", k], `no earlier step "${used}" (earlier: ${[...earlier].join(", ") || "none"})`);
      });
      for (const p of placeholdersOf(model.prompt)) {
        checkPath(p, [...at, "model", "prompt"], PATH_ROOTS.filter((r) => r !== "item"));
        const [root, stepId] = p.split(".");
        if (root === "steps" && stepId !== undefined && earlier.has(stepId) && !model.uses.includes(stepId)) {
          report([...at, "model", "prompt"], `"${p}": the prompt may read only the steps it uses; add "${stepId}" to uses`);
        }
      }
      const schemaProblem = objectSchemaProblem(model.output);
      if (schemaProblem) report([...at, "model", "output"], schemaProblem);
    }
    earlier.add(step.id);
  });
  if (pipeline.report !== undefined) for (const p of placeholdersOf(pipeline.report)) checkPath(p, ["report"], PATH_ROOTS.filter((r) => r !== "item"));
}

/** Why a model step's output is not an object JSON schema the router can validate answers against, or undefined. */
function objectSchemaProblem(schema: Record<string, unknown>): string | undefined {
  if (schema.type !== "object") return `must be an object schema (type: object), not ${schema.type === undefined ? "a schema without a type" : `type: ${JSON.stringify(schema.type)}`}`;
  try {
    z.fromJSONSchema(schema);
  } catch (err) {
    return `is not a JSON schema zod can validate: ${err instanceof Error ? err.message : String(err)}`;
  }
  return undefined;
}
