import type { JetStreamClient } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import { taskIdFor, TaskStore } from "../actors/index.js";
import { localParts, nextDailyAt, type CronJob } from "../config/index.js";
import {
  CronRunRecord,
  decode,
  encode,
  outboxMessageId,
  partsText,
  textOf,
  requestOperation,
  wireHeaders,
  type Clock,
  type CodecName,
  type FleetNames,
  type OutboxRecord,
  type Task,
} from "../protocol/index.js";

const WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"] as const;

export interface CronSchedulerOptions {
  nc: NatsConnection;
  js: JetStreamClient;
  kv: { schedules: KV; tasks: KV };
  names: FleetNames;
  codec: CodecName;
  jobs: readonly CronJob[];
  timeZone: string;
  clock: Clock;
  log: Logger;
  /** how long a run may take before it is given up (and retried at the next tick) */
  runTimeoutMs?: number;
}

/**
 * Runs the fleet's cron jobs: at each job's local time (DST-correct) it sends the job's message to its agent as an A2A
 * task and delivers the result only where the job says (an OUTBOX channel and recipient, or nowhere). The last due time
 * run is kept in KV `schedules`: after downtime, missed runs of a job coalesce into one catch-up run, never a replay
 * storm. A run is idempotent (the task id follows from the job and its due time; the outbox deduplicates by content), so
 * a scheduler that dies mid-run and runs it again completes and delivers it once.
 */
export class CronScheduler {
  private timer: NodeJS.Timeout | undefined;
  private running = new Set<string>();
  private readonly stopping = new AbortController();
  private readonly log: Logger;
  private readonly store: TaskStore;

  constructor(private readonly options: CronSchedulerOptions) {
    this.log = options.log.child({ component: "cron" });
    this.store = new TaskStore(options.kv.tasks, options.names, options.codec);
  }

  /** The first due time strictly after `after` (a time on one of the job's days). */
  nextDue(job: CronJob, after: number): number {
    let due = nextDailyAt(job.at, this.options.timeZone, after);
    for (let i = 0; i < 8 && job.days && !job.days.includes(WEEKDAYS[localParts(due, this.options.timeZone).weekday]!); i++) {
      due = nextDailyAt(job.at, this.options.timeZone, due);
    }
    return due;
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), 1_000);
    void this.tick();
  }

  /** No new runs start; runs in flight stop waiting for their task and stay unrecorded, so the next start runs them again. */
  stop(): void {
    clearInterval(this.timer);
    this.stopping.abort();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.stop();
  }

  /** One pass over the jobs: starts the run of each job that is due. Resolves when the runs it started are done. */
  async tick(): Promise<void> {
    const now = this.options.clock.now();
    const runs: Promise<void>[] = [];
    for (const job of this.options.jobs) {
      if (this.running.has(job.id)) continue;
      const record = await this.readRecord(job.id);
      if (!record) {
        // a new job starts counting from now: nothing before it was ever due
        await this.writeRecord({ jobId: job.id, lastDueAt: now });
        continue;
      }
      // the latest due time at or before now that has not run yet; earlier missed ones coalesce into it
      let due = this.nextDue(job, record.lastDueAt);
      if (due > now) continue;
      for (let next = this.nextDue(job, due); next <= now; next = this.nextDue(job, next)) due = next;
      this.running.add(job.id);
      runs.push(this.run(job, due).finally(() => this.running.delete(job.id)));
    }
    await Promise.all(runs);
  }

  private async run(job: CronJob, dueAt: number): Promise<void> {
    const messageId = `cron:${job.id}:${dueAt}`;
    const log = this.log.child({ job: job.id, agentId: job.agent, dueAt: new Date(dueAt).toISOString() });
    try {
      const task = await requestOperation(this.options.nc, this.options.names, job.agent, "SendMessage", {
        message: { messageId, role: "ROLE_USER", parts: [{ text: job.message }], metadata: { cronJob: job.id } },
      });
      const signal = AbortSignal.any([AbortSignal.timeout(this.options.runTimeoutMs ?? 30 * 60_000), this.stopping.signal]);
      const done = await this.store.waitForTerminal(job.agent, task.id, signal);
      if (job.delivery !== "none") await this.deliver(job, job.delivery, done);
      await this.writeRecord({ jobId: job.id, lastDueAt: dueAt, taskId: done.id });
      log.info({ taskId: done.id, state: done.status.state, delivery: job.delivery === "none" ? "none" : job.delivery.channel }, "cron job ran");
    } catch (err) {
      // not recorded as run: the next tick tries again, with the same task id (no second task)
      log.warn({ err, taskId: taskIdFor(job.agent, messageId) }, "cron job run failed; will retry");
    }
  }

  /** Only where the job says; the same text to the same recipient within the OUTBOX window is accepted once. */
  private async deliver(job: CronJob, delivery: { channel: string; to: string }, task: Task): Promise<void> {
    const text = taskText(task);
    const contentId = outboxMessageId({ channel: delivery.channel, to: delivery.to, text });
    const record: OutboxRecord = {
      channel: delivery.channel,
      to: delivery.to,
      text,
      id: contentId,
      source: { agentId: job.agent, taskId: task.id, jobId: job.id },
      createdAt: this.options.clock.now(),
    };
    await this.options.js.publish(this.options.names.outbox(delivery.channel), encode(record, this.options.codec), { headers: wireHeaders(this.options.codec, contentId) });
  }

  private async readRecord(jobId: string): Promise<CronRunRecord | undefined> {
    const entry = await this.options.kv.schedules.get(`cron.${jobId}`);
    if (!entry || entry.operation !== "PUT") return undefined;
    const decoded = decode(CronRunRecord, entry.value, { codec: this.options.codec });
    return decoded.ok ? decoded.value : undefined;
  }

  private async writeRecord(record: CronRunRecord): Promise<void> {
    await this.options.kv.schedules.put(`cron.${record.jobId}`, encode(record, this.options.codec));
  }
}

function taskText(task: Task): string {
  const artifacts = partsText((task.artifacts ?? []).flatMap((a) => a.parts));
  if (artifacts) return artifacts;
  return task.status.message ? textOf(task.status.message) : `task ${task.id} ended ${task.status.state}`;
}
