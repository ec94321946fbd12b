import { z } from "zod";
import { AgentCard, Message } from "./a2a.js";
import { TaskId } from "./wire-types.js";

/** The fleet's own records, beside the A2A data model. */

/** A unit of assigned work on TASKS (`fleet.task.<agentId>`); the Task itself lives in KV, this points at it. */
export const TaskAssignment = z.object({
  taskId: TaskId,
  contextId: TaskId,
  agentId: z.string().min(1),
  message: Message,
  assignedBy: z.string(),
  /** epoch ms */
  assignedAt: z.number(),
});
export type TaskAssignment = z.infer<typeof TaskAssignment>;

/** What `fleet status` shows for an agent: its card, where its chart is, and whether it is alive (KV `agents`). */
export const AgentRecord = z.object({
  agentId: z.string(),
  card: AgentCard,
  /** the agent chart's state value, e.g. "idle" or "acting" */
  state: z.string(),
  currentTaskId: z.string().optional(),
  tier: z.string(),
  pid: z.number().int(),
  host: z.string(),
  /** one id per `fleet up`/`fleet run`, so restarts are counted per run and not across runs */
  runId: z.string(),
  restarts: z.number().int().min(0),
  startedAt: z.number(),
  heartbeatAt: z.number(),
  /** heartbeats are this far apart: a record older than 3 intervals means the process is gone */
  heartbeatMs: z.number(),
  tasksCompleted: z.number().int().min(0),
  tasksFailed: z.number().int().min(0),
  /** the persisted XState snapshot, so a restarted agent resumes where it was */
  snapshot: z.unknown().optional(),
  /** the circuit breaker as `fleet status` shows it, and its persisted chart */
  breaker: z
    .object({
      state: z.enum(["closed", "open", "half-open"]),
      consecutiveFailures: z.number().int(),
      reopenCount: z.number().int(),
      openUntil: z.number().optional(),
    })
    .optional(),
  breakerSnapshot: z.unknown().optional(),
  /** tasks and discoveries the dedup layers refused for this agent */
  dedupSuppressed: z.number().int().optional(),
});
export type AgentRecord = z.infer<typeof AgentRecord>;

export function isAlive(record: AgentRecord, now: number): boolean {
  return now - record.heartbeatAt < 3 * record.heartbeatMs;
}

/** A message for a person on a channel (`fleet.outbox.<channel>`); bridges deliver it and ack only after delivery. */
export const OutboxRecord = z.object({
  channel: z.string(),
  to: z.string(),
  /** the message; for an email, its body */
  text: z.string(),
  /** an email's subject (records written before it existed carry it as a first line `Subject: …` of the text) */
  subject: z.string().optional(),
  /** the message's OUTBOX id (outboxMessageId: a hash of channel, recipient and content), also its Nats-Msg-Id */
  id: z.string().optional(),
  /** where it came from: a cron job's run, a duty's run, an agent's task, a proposal */
  source: z.object({ agentId: z.string(), taskId: z.string().optional(), jobId: z.string().optional(), duty: z.string().optional(), proposalId: z.string().optional() }),
  createdAt: z.number(),
});
export type OutboxRecord = z.infer<typeof OutboxRecord>;

/** The OUTBOX channel of email (`fleet.outbox.email`): email_send publishes there, the email bridge delivers it. */
export const EMAIL_CHANNEL = "email";

/** When a cron job last ran (KV `schedules`), so a restarted scheduler neither repeats nor replays missed runs. */
export const CronRunRecord = z.object({ jobId: z.string(), lastDueAt: z.number(), taskId: z.string().optional() });
export type CronRunRecord = z.infer<typeof CronRunRecord>;

/** What a duty run came to: it found nothing (`clean`), it found something (`found`, delivered), or it did not finish well. */
export const DutyOutcome = z.enum(["clean", "found", "failed"]);
export type DutyOutcome = z.infer<typeof DutyOutcome>;

/**
 * A duty's schedule state and its last run (KV `schedules`, key `duty.<agentId>.<dutyId>`): the due time last handled,
 * so a restarted scheduler neither repeats a run nor replays missed ones, and what `fleet status` shows (the schedule,
 * the last outcome, the next due time, how often it came out each way).
 */
export const DutyRunRecord = z.object({
  agentId: z.string(),
  dutyId: z.string(),
  pipeline: z.string(),
  /** as configured, e.g. `every 30m` or `cron 0 9 * * 1` */
  schedule: z.string(),
  /** epoch ms of the last due time handled; a new duty starts at the moment it was first seen */
  lastDueAt: z.number(),
  /** epoch ms of the next due time after it; null: never again */
  nextDueAt: z.number().nullable(),
  /** a run started and not yet recorded (the scheduler may have died in it: the next one completes it, same task) */
  running: z.object({ dueAt: z.number(), taskId: z.string(), startedAt: z.number(), heldUntil: z.number().optional() }).optional(),
  /**
   * runs whose model steps are held (quiet hours, a spent cap) after their tool steps found something: the duty goes on
   * watching meanwhile, and each one's report is delivered when its task ends
   */
  held: z.array(z.object({ dueAt: z.number(), taskId: z.string(), until: z.number() })).default([]),
  /** the problems (a finding's subject and key) this duty reported and still sees: seen again, not reported again */
  open: z.array(z.object({ subject: z.string(), key: z.string(), since: z.number() })).default([]),
  lastRun: z
    .object({
      dueAt: z.number(),
      taskId: z.string(),
      outcome: DutyOutcome,
      /** how many findings, when the run says */
      findings: z.number().int().min(0).optional(),
      /** how many of the duty's open problems it saw again (not reported again) */
      stillOpen: z.number().int().min(0).optional(),
      /** its model steps wait until then (quiet hours, a spent cap); its report is delivered when they have run */
      heldUntil: z.number().optional(),
      /** whether a report went to the duty's delivery */
      delivered: z.boolean(),
      /** why it failed */
      reason: z.string().optional(),
      finishedAt: z.number(),
    })
    .optional(),
  counts: z.object({ clean: z.number().int().min(0), found: z.number().int().min(0), failed: z.number().int().min(0) }).default({ clean: 0, found: 0, failed: 0 }),
});
export type DutyRunRecord = z.infer<typeof DutyRunRecord>;
export const dutyRunKey = (agentId: string, dutyId: string): string => `duty.${agentId}.${dutyId}`;

/** The fleet's running quiet-hours chart as the scheduler last saw it (KV `schedules`, key `quiet-hours`), for `fleet status`. */
export const QuietHoursRecord = z.object({
  state: z.enum(["active", "quiet"]),
  /** epoch ms of the next change; null: never quiet */
  nextBoundaryAt: z.number().nullable(),
  timeZone: z.string(),
  updatedAt: z.number(),
});
export type QuietHoursRecord = z.infer<typeof QuietHoursRecord>;
export const QUIET_HOURS_KEY = "quiet-hours";

/** One entry of an agent's session memory (`fleet.memory.log.<agentId>.<yyyymmdd>`, stream MEMLOG): what happened, briefly. */
export const SessionLogEntry = z.object({
  agentId: z.string(),
  /** the local day (yyyy-mm-dd in the fleet's time zone) the entry belongs to */
  day: z.string(),
  /** epoch ms */
  at: z.number(),
  kind: z.enum(["task", "finding", "decision", "error", "note"]),
  taskId: z.string().optional(),
  /** at most a few lines: the log is read back into prompts, so it must stay small */
  text: z.string().min(1).max(4000),
});
export type SessionLogEntry = z.infer<typeof SessionLogEntry>;

/** `fleet.memory.search.<agentId>`: an agent's question to its own semantic memory (the subject says whose), answered by the vector store's owner. */
export const MemorySearchRequest = z.object({
  /** older clients name the caller here too: it must be the subject's (anyone else's is refused) */
  agentId: z.string().regex(/^[a-z][a-z0-9-]{0,31}$/).optional(),
  query: z.string().min(1).max(8000),
  limit: z.number().int().min(1).max(50),
});
export type MemorySearchRequest = z.infer<typeof MemorySearchRequest>;

export const MemorySearchResult = z.object({
  hits: z.array(z.object({ id: z.string(), score: z.number(), text: z.string(), kind: z.string(), updatedAt: z.number() })),
});
export type MemorySearchResult = z.infer<typeof MemorySearchResult>;
