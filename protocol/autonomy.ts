import { z } from "zod";

/*
 * The records of the fleet's own initiative: what started a piece of work, what a task asks for beyond its text (a
 * pipeline, a tier or alias), what a duty found, and what arrived from outside. Duties, pipelines, Atlas's plan, the
 * webhook and the cost report all read and write these shapes, so they are defined once, here.
 */

/** What started a piece of work: USAGE records, tasks and the weekly report group spend by it. */
export const TRIGGERS = ["operator", "cron", "duty", "atlas", "webhook", "event", "peer", "agent"] as const;
export const Trigger = z.enum(TRIGGERS);
export type Trigger = z.infer<typeof Trigger>;

/** How bad a finding is: `critical` may wake the fleet in quiet hours, the rest waits for the morning plan. */
export const Severity = z.enum(["info", "warning", "critical"]);
export type Severity = z.infer<typeof Severity>;

/** A problem a duty reported and still sees: a finding's (subject, key). */
export const OpenProblem = z.object({ subject: z.string().min(1).max(500), key: z.string().min(1).max(500) });
export type OpenProblem = z.infer<typeof OpenProblem>;

/**
 * What a task asks for beyond its text, carried in the A2A message's `metadata.work`: the pipeline to run (and its input),
 * a tier or alias for its model steps, the duty or job it belongs to, what started it, and whether policy marks it urgent
 * (urgent work is not held by quiet hours).
 */
export const TaskWork = z.object({
  pipeline: z.string().min(1).optional(),
  input: z.record(z.string(), z.unknown()).optional(),
  /** a tier name or an alias (`triage`, `standard`, `heavy`) */
  tier: z.string().min(1).optional(),
  duty: z.string().min(1).optional(),
  cronJob: z.string().min(1).optional(),
  trigger: Trigger.optional(),
  urgent: z.boolean().optional(),
  /**
   * a duty run's: the problems (subject, key) its duty reported before and still has open; seen again they are not
   * published again, so one broken site stays one open finding however many runs see it
   */
  open: z.array(OpenProblem).max(200).optional(),
});
export type TaskWork = z.infer<typeof TaskWork>;

/** The `TaskWork` of a message's metadata, or undefined when it carries none (or one that does not parse). */
export function taskWorkOf(metadata: Record<string, unknown> | undefined): TaskWork | undefined {
  const parsed = TaskWork.safeParse(metadata?.work);
  return parsed.success ? parsed.data : undefined;
}

/**
 * What started a task, from its message: the trigger its work record names; else a cron job's run (`metadata.cronJob`)
 * is `cron` and a duty's is `duty`; a message that refers to another task (`referenceTaskIds`: delegated by an agent,
 * Atlas included, which names its own trigger) is `agent`; anything else came from outside through SendMessage, i.e.
 * `fleet send` or a client acting for the operator, and is `operator`.
 */
export function triggerOf(message: { metadata?: Record<string, unknown> | undefined; referenceTaskIds?: readonly string[] | undefined }): Trigger {
  const work = taskWorkOf(message.metadata);
  if (work?.trigger) return work.trigger;
  if (typeof message.metadata?.cronJob === "string" || work?.cronJob) return "cron";
  if (work?.duty) return "duty";
  if ((message.referenceTaskIds?.length ?? 0) > 0) return "agent";
  return "operator";
}

/**
 * What a duty run found (`fleet.finding.<agentId>`, stream FINDINGS): Atlas plans from these, the status report is built
 * from them site by site. `subject` is what it is about (a site, a repo, a customer); `key` identifies the problem so a
 * finding seen again is recognisably the same one.
 */
export const Finding = z.object({
  id: z.string().min(1),
  agentId: z.string().min(1),
  duty: z.string().min(1),
  subject: z.string().min(1),
  key: z.string().min(1),
  severity: Severity,
  summary: z.string().min(1).max(1000),
  evidence: z.unknown().optional(),
  /** the task of the duty run that found it */
  taskId: z.string().optional(),
  /** epoch ms */
  at: z.number(),
});
export type Finding = z.infer<typeof Finding>;

/**
 * Something that happened outside the fleet (`fleet.event.<source>`, stream EVENTS): a webhook body or a message any
 * system published. Atlas plans from it, or the config maps its source to an agent and pipeline directly.
 */
export const FleetEvent = z.object({
  id: z.string().min(1).max(200),
  source: z.string().regex(/^[A-Za-z0-9_-]+$/),
  type: z.string().min(1).max(200).optional(),
  /** what it is about (a site, a repo, a customer), for dedup and conflicts */
  subject: z.string().min(1).max(500).optional(),
  summary: z.string().min(1).max(1000).optional(),
  body: z.unknown().optional(),
  /** epoch ms */
  at: z.number(),
});
export type FleetEvent = z.infer<typeof FleetEvent>;
