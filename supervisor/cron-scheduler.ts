import type { JetStreamClient } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import { taskIdFor, TaskStore } from "../actors/index.js";
import { latestDue, nextDue, scheduleOf, type CronJob } from "../config/index.js";
import { CronRunRecord, decode, encode, requestOperation, type Clock, type CodecName, type FleetNames, type Message, type Task, type TaskWork } from "../protocol/index.js";
import { deliverToOutbox, taskText } from "./outbox-delivery.js";
import { runOutcomeOf } from "./run-outcome.js";

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
 * Runs the fleet's cron jobs: at each job's due time (a local time, an interval or a cron expression in the fleet's zone,
 * DST-correct) it sends the job's agent an A2A task (a message for a model step, a tool to run at tier 0, or a pipeline)
 * and delivers the result only where the job says (an OUTBOX channel and recipient, or nowhere); a pipeline's report only
 * when it found something. The last due time run is kept in KV `schedules`: after downtime, missed runs of a job coalesce
 * into one catch-up run, never a replay storm. A run is idempotent (the task id follows from the job and its due time;
 * the outbox deduplicates by content), so a scheduler that dies mid-run and runs it again completes and delivers it once.
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

  /** The first due time strictly after `after`. */
  nextDue(job: CronJob, after: number): number {
    return nextDue(scheduleOf(job), this.options.timeZone, after);
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
      const due = latestDue(scheduleOf(job), this.options.timeZone, record.lastDueAt, now);
      if (due === undefined) continue;
      this.running.add(job.id);
      runs.push(this.run(job, due).finally(() => this.running.delete(job.id)));
    }
    await Promise.all(runs);
  }

  private async run(job: CronJob, dueAt: number): Promise<void> {
    const messageId = `cron:${job.id}:${dueAt}`;
    const log = this.log.child({ job: job.id, agentId: job.agent, dueAt: new Date(dueAt).toISOString() });
    try {
      const task = await requestOperation(this.options.nc, this.options.names, job.agent, "SendMessage", { message: cronMessage(job, messageId) });
      const signal = AbortSignal.any([AbortSignal.timeout(this.options.runTimeoutMs ?? 30 * 60_000), this.stopping.signal]);
      const done = await this.store.waitForTerminal(job.agent, task.id, signal);
      const delivery = job.delivery === "none" ? undefined : job.delivery;
      // a pipeline that found nothing has nothing to say; a message's or a tool's answer is the job's report
      const text = job.pipeline !== undefined ? reportOf(done) : taskText(done);
      if (delivery && text !== undefined) {
        await deliverToOutbox(this.options, delivery, text, { agentId: job.agent, taskId: done.id, jobId: job.id }, this.options.clock.now());
      }
      await this.writeRecord({ jobId: job.id, lastDueAt: dueAt, taskId: done.id });
      log.info({ taskId: done.id, state: done.status.state, delivery: delivery && text !== undefined ? delivery.channel : "none" }, "cron job ran");
    } catch (err) {
      // not recorded as run: the next tick tries again, with the same task id (no second task)
      log.warn({ err, taskId: taskIdFor(job.agent, messageId) }, "cron job run failed; will retry");
    }
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

/**
 * What a job sends its agent. A message is a model step, as always. A tool is named the way any task names one (a data
 * part `{ tool, input }`, answered by the agent's tool-task stage at tier 0, within its allow list); a pipeline is named
 * in `metadata.work`, as a duty names its own. Every job's work says it came from cron and which job.
 */
export function cronMessage(job: CronJob, messageId: string): Message {
  const work: TaskWork = { cronJob: job.id, trigger: "cron" };
  if (job.pipeline !== undefined) {
    Object.assign(work, { pipeline: job.pipeline, input: job.input ?? {}, ...(job.tier ? { tier: job.tier } : {}) });
    return { messageId, role: "ROLE_USER", parts: [{ text: `Cron job ${job.id}: pipeline ${job.pipeline}` }], metadata: { cronJob: job.id, work } };
  }
  if (job.tool !== undefined) {
    const parts: Message["parts"] = [{ text: `Cron job ${job.id}: run ${job.tool}` }, { data: { tool: job.tool, input: job.input ?? {}, reason: `cron job ${job.id}` } }];
    return { messageId, role: "ROLE_USER", parts, metadata: { cronJob: job.id, work } };
  }
  return { messageId, role: "ROLE_USER", parts: [{ text: job.message ?? "" }], metadata: { cronJob: job.id, work } };
}

/** A pipeline run's report, or undefined when it found nothing; a failed run says why. */
function reportOf(task: Task): string | undefined {
  const outcome = runOutcomeOf(task);
  if (outcome.outcome === "clean") return undefined;
  return outcome.report ?? taskText(task);
}
