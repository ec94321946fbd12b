import type { JetStreamClient } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import { taskIdFor } from "../actors/index.js";
import { describeSchedule, latestDue, nextDue, scheduleOf, type DutyConfig, type Schedule } from "../config/index.js";
import {
  heldOf,
  decode,
  dutyRunKey,
  DutyRunRecord,
  encode,
  FleetError,
  isTerminal,
  requestOperation,
  Task,
  type Clock,
  type CodecName,
  type FleetNames,
  type OpenProblem,
  type TaskWork,
} from "../protocol/index.js";
import { withLocalTargets, type LocalTargets } from "./local-targets.js";
import { deliverToOutbox } from "./outbox-delivery.js";
import { runOutcomeOf, type RunOutcome } from "./run-outcome.js";

/** The part of a held task's `metadata.held` the scheduler reads: when the hold ends (epoch ms). */

export interface DutySchedulerOptions {
  nc: NatsConnection;
  js: JetStreamClient;
  kv: { schedules: KV; tasks: KV };
  names: FleetNames;
  codec: CodecName;
  /** each agent's duties (AgentConfig satisfies it) */
  agents: readonly { id: string; duties: readonly DutyConfig[] }[];
  /** the pipelines' descriptions, for the run's title */
  pipelines?: Readonly<Record<string, { description?: string | undefined }>>;
  timeZone: string;
  clock: Clock;
  log: Logger;
  /** where `{{local.<name>}}` in a duty's input points (see local-targets.ts) */
  localTargets?: LocalTargets;
  /** how long a run may take before it is recorded as failed */
  runTimeoutMs?: number;
  /** how long to wait before trying again to start a run whose agent did not answer */
  retryMs?: number;
}

interface Entry {
  agentId: string;
  duty: DutyConfig;
  schedule: Schedule;
  key: string;
}

/**
 * Runs the agents' duties: at each due time (an interval or a cron expression in the fleet's zone) it sends the agent a
 * task naming the duty's pipeline (`metadata.work`), waits for it, and delivers the report only when the run found
 * something; a run that found nothing ends there and says nothing. Each duty's state is a record in KV `schedules`
 * (`duty.<agent>.<id>`): the last due time handled, a run in flight, the last outcome. After downtime the missed due
 * times coalesce into one run; a run in flight when the scheduler died is completed first, with the same task id (it
 * follows from the duty and its due time), and its report is delivered once (the outbox deduplicates by content).
 *
 * A duty keeps watching whatever its model steps are doing: a run whose model step is held (quiet hours, a spent cap)
 * after its tool steps found something is kept in the record's `held` list and delivered when its task ends, while the
 * next runs go on at the interval. The problems a run saw are the duty's `open` ones and go with the next runs
 * (`work.open`), which do not publish them again: one broken site is one open finding, not one per run, and a run that
 * sees only open problems costs $0 and says nothing. A clean run closes them.
 */
export class DutyScheduler {
  private timer: NodeJS.Timeout | undefined;
  private readonly running = new Set<string>();
  /** per duty, the earliest time a tick needs to look at it again (its next due time, or a retry) */
  private readonly notBefore = new Map<string, number>();
  private readonly stopping = new AbortController();
  private readonly log: Logger;
  private readonly entries: Entry[];

  constructor(private readonly options: DutySchedulerOptions) {
    this.log = options.log.child({ component: "duties" });
    this.entries = options.agents.flatMap((agent) =>
      agent.duties.map((duty) => ({ agentId: agent.id, duty, schedule: scheduleOf(duty), key: dutyRunKey(agent.id, duty.id) })),
    );
  }

  get size(): number {
    return this.entries.length;
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), 1_000);
    void this.tick();
  }

  /** No new runs start; runs in flight stop waiting and stay marked as running, so the next start completes them. */
  stop(): void {
    clearInterval(this.timer);
    this.stopping.abort();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.stop();
  }

  /** One pass over the duties: starts each run that is due. Resolves when the runs it started are done. */
  async tick(): Promise<void> {
    const now = this.options.clock.now();
    const runs: Promise<void>[] = [];
    for (const entry of this.entries) {
      if (this.stopping.signal.aborted) break;
      if (this.running.has(entry.key) || (this.notBefore.get(entry.key) ?? -Infinity) > now) continue;
      this.running.add(entry.key);
      runs.push(this.consider(entry, now).finally(() => this.running.delete(entry.key)));
    }
    await Promise.all(runs);
  }

  private async consider(entry: Entry, now: number): Promise<void> {
    try {
      const record = await this.readRecord(entry.key);
      if (!record) {
        // a new duty starts counting from now: nothing before it was ever due
        const fresh: DutyRunRecord = { ...this.identity(entry), lastDueAt: now, nextDueAt: this.nextAfter(entry, now), held: [], open: [], counts: { clean: 0, found: 0, failed: 0 } };
        await this.writeRecord(entry.key, fresh);
        this.notBefore.set(entry.key, fresh.nextDueAt ?? Infinity);
        return;
      }
      const current = await this.settleHeld(entry, record, now);
      // a run the last scheduler started and never recorded is completed first, under its own due time and task
      const due = current.running?.dueAt ?? latestDue(entry.schedule, this.options.timeZone, current.lastDueAt, now);
      if (due === undefined) {
        this.notBefore.set(entry.key, Math.min(this.nextAfter(entry, current.lastDueAt) ?? Infinity, this.heldCheckAt(current, now)));
        return;
      }
      await this.run(entry, due, current);
    } catch (err) {
      this.log.warn({ err, agentId: entry.agentId, duty: entry.duty.id }, "duty not checked; will retry");
      this.notBefore.set(entry.key, now + (this.options.retryMs ?? 15_000));
    }
  }

  private async run(entry: Entry, dueAt: number, record: DutyRunRecord): Promise<void> {
    const { agentId, duty } = entry;
    const messageId = `duty:${agentId}.${duty.id}:${dueAt}`;
    const taskId = record.running?.taskId ?? taskIdFor(agentId, messageId);
    const log = this.log.child({ agentId, duty: duty.id, dueAt: new Date(dueAt).toISOString(), taskId });
    const startedAt = this.options.clock.now();
    if (!record.running) await this.writeRecord(entry.key, { ...record, running: { dueAt, taskId, startedAt } });

    let outcome: RunOutcome;
    const timeoutMs = this.options.runTimeoutMs ?? 30 * 60_000;
    const timeout = AbortSignal.timeout(timeoutMs);
    try {
      const input = withLocalTargets(duty.input, this.options.localTargets);
      // the problems this duty has open go with the run: seen again, they are not reported again
      const open = record.open.map(({ subject, key }) => ({ subject, key }));
      const work: TaskWork = { pipeline: duty.pipeline, input, duty: duty.id, trigger: "duty", ...(duty.tier ? { tier: duty.tier } : {}), ...(open.length > 0 ? { open } : {}) };
      await requestOperation(this.options.nc, this.options.names, agentId, "SendMessage", {
        message: { messageId, role: "ROLE_USER", parts: [{ text: this.title(entry) }], metadata: { work } },
      });
      const done = await this.waitForOutcome(agentId, taskId, AbortSignal.any([timeout, this.stopping.signal]));
      if ("heldUntil" in done) {
        // model work held (quiet hours, a spent cap) after the tool steps found something (published already): the run
        // waits for its model steps with the agent, its report is delivered when it ends, and the duty goes on watching
        // at its interval meanwhile; what this run found is open, so the next runs do not report it again
        await this.recordHeld(entry, record, { dueAt, taskId, until: done.heldUntil }, done.found);
        log.info({ heldUntil: new Date(done.heldUntil).toISOString(), found: done.found.length }, "duty run held; the duty goes on watching");
        return;
      }
      outcome = runOutcomeOf(done);
    } catch (err) {
      if (this.stopping.signal.aborted) return; // left marked as running: the next scheduler completes it
      const error = FleetError.from(err);
      // a duty that names a local target nothing serves, or an agent that never finished: recorded, and the next due time runs
      if (error.code === "CONFIG_INVALID") outcome = { outcome: "failed", reason: error.message };
      else if (timeout.aborted) outcome = { outcome: "failed", reason: `no answer within ${Math.round(timeoutMs / 1000)} s` };
      else {
        // the agent did not take the task (not running, busy restarting): try again soon, with the same task id
        log.warn({ err }, "duty run not started; will retry");
        this.notBefore.set(entry.key, this.options.clock.now() + (this.options.retryMs ?? 15_000));
        return;
      }
    }

    const delivered = await this.deliver(entry, outcome, taskId);
    const counts = { ...record.counts, [outcome.outcome]: record.counts[outcome.outcome] + 1 };
    const nextDueAt = this.nextAfter(entry, Math.max(dueAt, record.lastDueAt));
    const now = this.options.clock.now();
    await this.writeRecord(entry.key, {
      ...this.identity(entry),
      lastDueAt: Math.max(dueAt, record.lastDueAt),
      nextDueAt,
      held: record.held,
      // a failed run says nothing of the problems: they stay as they were; otherwise the run's view is the duty's
      open: outcome.outcome === "failed" ? record.open : openSince(record.open, outcome.open ?? [], now),
      lastRun: {
        dueAt,
        taskId,
        outcome: outcome.outcome,
        ...(outcome.findings !== undefined ? { findings: outcome.findings } : {}),
        ...(outcome.stillOpen ? { stillOpen: outcome.stillOpen } : {}),
        delivered,
        ...(outcome.reason ? { reason: outcome.reason } : {}),
        finishedAt: this.options.clock.now(),
      },
      counts,
    });
    // a completed catch-up of an interrupted run may leave a later due time to run now: look again at the next tick
    this.notBefore.delete(entry.key);
    const line = { outcome: outcome.outcome, findings: outcome.findings, stillOpen: outcome.stillOpen, delivered, reason: outcome.reason };
    if (outcome.outcome === "failed") log.warn(line, "duty run failed");
    else log.info(line, "duty ran");
  }

  /**
   * The task once it ends, or the end of its hold when the agent holds it (SUBMITTED with `metadata.held` in the future).
   * A hold whose time has passed is the agent about to run it again: keep waiting.
   */
  private async waitForOutcome(agentId: string, taskId: string, signal: AbortSignal): Promise<Task | { heldUntil: number; found: OpenProblem[] }> {
    const watch = await this.options.kv.tasks.watch({ key: this.options.names.taskKey(agentId, taskId) });
    const onAbort = () => watch.stop();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      for await (const entry of watch) {
        if (entry.operation !== "PUT") continue;
        const decoded = decode(Task, entry.value, { codec: this.options.codec });
        if (!decoded.ok) continue;
        const task = decoded.value;
        if (isTerminal(task.status.state)) return task;
        const held = heldOf(task.metadata);
        if (held && held.until > this.options.clock.now()) return { heldUntil: held.until, found: held.found ?? [] };
      }
      signal.throwIfAborted();
      throw new FleetError("INTERNAL", `watch on task ${taskId} ended before the task finished`);
    } finally {
      signal.removeEventListener("abort", onAbort);
      watch.stop();
    }
  }

  /** The report of a run that found something new goes to the duty's delivery; whether it went. */
  private async deliver(entry: Entry, outcome: RunOutcome, taskId: string): Promise<boolean> {
    const { agentId, duty } = entry;
    if (outcome.outcome !== "found" || outcome.report === undefined || duty.delivery === "none") return false;
    const text = `${agentId} · ${duty.id}: ${outcome.report}`;
    await deliverToOutbox(this.options, duty.delivery, text, { agentId, taskId, duty: duty.id }, this.options.clock.now());
    return true;
  }

  /** A run held at its model steps: counted as found, kept in `held` until its task ends, and the duty moves on. */
  private async recordHeld(entry: Entry, record: DutyRunRecord, run: { dueAt: number; taskId: string; until: number }, found: readonly OpenProblem[]): Promise<void> {
    const { running: _running, ...rest } = record;
    const now = this.options.clock.now();
    const lastDueAt = Math.max(run.dueAt, record.lastDueAt);
    await this.writeRecord(entry.key, {
      ...rest,
      lastDueAt,
      nextDueAt: this.nextAfter(entry, lastDueAt),
      held: [...record.held.filter((h) => h.taskId !== run.taskId), run],
      open: openSince(record.open, [...record.open, ...found], now),
      lastRun: { dueAt: run.dueAt, taskId: run.taskId, outcome: "found", findings: found.length, heldUntil: run.until, delivered: false, finishedAt: now },
      counts: { ...record.counts, found: record.counts.found + 1 },
    });
    this.notBefore.delete(entry.key);
  }

  /**
   * Held runs whose hold has ended are looked at: one whose task has ended is delivered (when it found something new)
   * and dropped; one still under way is looked at again soon.
   */
  private async settleHeld(entry: Entry, record: DutyRunRecord, now: number): Promise<DutyRunRecord> {
    const due = record.held.filter((h) => h.until <= now);
    if (due.length === 0) return record;
    const still = record.held.filter((h) => h.until > now);
    for (const h of due) {
      const stored = await this.options.kv.tasks.get(this.options.names.taskKey(entry.agentId, h.taskId)).catch(() => null);
      const decoded = stored && stored.operation === "PUT" ? decode(Task, stored.value, { codec: this.options.codec }) : undefined;
      const task = decoded?.ok ? decoded.value : undefined;
      if (!task || !isTerminal(task.status.state)) {
        still.push(h);
        continue;
      }
      const outcome = runOutcomeOf(task);
      const delivered = await this.deliver(entry, outcome, h.taskId);
      this.log.info({ agentId: entry.agentId, duty: entry.duty.id, taskId: h.taskId, outcome: outcome.outcome, delivered }, "held duty run ended");
    }
    if (still.length === record.held.length) return record;
    const updated = { ...record, held: still };
    await this.writeRecord(entry.key, updated);
    return updated;
  }

  /** When the held runs need a look: the earliest end of a hold, or soon when one has ended and its task has not. */
  private heldCheckAt(record: DutyRunRecord, now: number): number {
    return record.held.reduce((at, h) => Math.min(at, h.until > now ? h.until : now + (this.options.retryMs ?? 15_000)), Infinity);
  }

  private title(entry: Entry): string {
    const description = this.options.pipelines?.[entry.duty.pipeline]?.description;
    return `Duty ${entry.duty.id} (${entry.agentId}): ${description ?? `pipeline ${entry.duty.pipeline}`}`;
  }

  private identity(entry: Entry): Pick<DutyRunRecord, "agentId" | "dutyId" | "pipeline" | "schedule"> {
    return { agentId: entry.agentId, dutyId: entry.duty.id, pipeline: entry.duty.pipeline, schedule: describeSchedule(entry.schedule) };
  }

  private nextAfter(entry: Entry, after: number): number | null {
    const next = nextDue(entry.schedule, this.options.timeZone, after);
    return Number.isFinite(next) ? next : null;
  }

  private async readRecord(key: string): Promise<DutyRunRecord | undefined> {
    const entry = await this.options.kv.schedules.get(key);
    if (!entry || entry.operation !== "PUT") return undefined;
    const decoded = decode(DutyRunRecord, entry.value, { codec: this.options.codec });
    return decoded.ok ? decoded.value : undefined;
  }

  private async writeRecord(key: string, record: DutyRunRecord): Promise<void> {
    await this.options.kv.schedules.put(key, encode(record, this.options.codec));
  }
}

/** The problems a run saw, each open since it was first seen (kept from the duty's record when it was open already). */
function openSince(before: DutyRunRecord["open"], seen: readonly OpenProblem[], now: number): DutyRunRecord["open"] {
  const out: DutyRunRecord["open"] = [];
  for (const { subject, key } of seen) {
    if (out.some((o) => o.subject === subject && o.key === key)) continue;
    out.push({ subject, key, since: before.find((o) => o.subject === subject && o.key === key)?.since ?? now });
  }
  return out;
}
