import type { JetStreamClient } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { Logger } from "pino";
import { nextDailyAt, type SweeperConfig } from "../config/index.js";
import type { z } from "zod";
import { decode, heldOf, isTerminal, ProposalRecord, Task, titleOf, type Clock, type CodecName, type FleetNames } from "../protocol/index.js";
import { LastRun } from "./last-run.js";
import { publishNotice } from "./notice.js";

/*
 * The closeout sweeper: report-only. It reads the tasks and proposals KV and lists stale work with a reason code and the evidence;
 * it never closes, cancels or edits anything (it holds no store that could: it reads the bucket's bytes).
 */

export type SweepReason = "STALE_WORKING" | "LOOKS_FINISHED" | "WAITS_ON_HUMAN" | "BLOCKED";

export interface SweepLine {
  agentId: string;
  /** the task, or for a proposal the task that asked for it ("" when none did) */
  taskId: string;
  /** set when the line is about a proposal awaiting a human */
  proposalId?: string;
  reason: SweepReason;
  evidence: string;
  title: string;
}

const HOUR = 3_600_000;

/** The stale work among `tasks`, by the rules of `config`: pure. */
export function sweepTasks(tasks: readonly { agentId: string; task: Task }[], now: number, config: Pick<SweeperConfig, "staleHours" | "waitingHours">): SweepLine[] {
  const out: SweepLine[] = [];
  for (const { agentId, task } of tasks) {
    const state = task.status.state;
    if (isTerminal(state)) continue;
    const since = Date.parse(task.status.timestamp);
    const hours = (now - since) / HOUR;
    const title = task.history?.[0] ? titleOf(task.history[0]).slice(0, 80) : "";
    const line = (reason: SweepReason, evidence: string) => out.push({ agentId, taskId: task.id, reason, evidence, title });
    const held = heldOf(task.metadata);
    if (held) line("BLOCKED", `held (${JSON.stringify(held).slice(0, 120)}) since ${task.status.timestamp}`);
    else if ((task.artifacts?.length ?? 0) > 0) line("LOOKS_FINISHED", `${task.artifacts!.length} artifact(s) but state ${state.replace("TASK_STATE_", "")} since ${task.status.timestamp}`);
    else if ((state === "TASK_STATE_INPUT_REQUIRED" || state === "TASK_STATE_AUTH_REQUIRED") && hours >= config.waitingHours) line("WAITS_ON_HUMAN", `${state.replace("TASK_STATE_", "")} for ${Math.floor(hours)} h`);
    else if (state === "TASK_STATE_WORKING" && hours >= config.staleHours) line("STALE_WORKING", `WORKING for ${Math.floor(hours)} h (since ${task.status.timestamp})`);
  }
  return out.sort(byReason);
}

/**
 * Every proposal awaiting a human's decision (WAITS_ON_HUMAN), with since when and until when: all of them, whatever
 * `waitingHours` says, since a CONFIRM proposal expires within a day and the human is the only one who can move it.
 */
export function sweepProposals(proposals: readonly ProposalRecord[], now: number): SweepLine[] {
  const out: SweepLine[] = [];
  for (const p of proposals) {
    if (p.state !== "awaiting_human") continue;
    const since = [...p.history].reverse().find((t) => t.to === "awaiting_human")?.at ?? p.updatedAt;
    const hours = Math.floor((now - since) / HOUR);
    const expires = p.deadlines ? `, expires ${new Date(p.deadlines.expiresAt).toISOString()}` : "";
    out.push({
      agentId: p.agentId,
      taskId: p.taskId ?? "",
      proposalId: p.id,
      reason: "WAITS_ON_HUMAN",
      evidence: `proposal ${p.id} (${p.tool}, ${p.risk}) awaiting a human since ${new Date(since).toISOString()} (${hours} h)${expires}${p.taskId ? `; task ${p.taskId}` : ""}`,
      title: p.reason.slice(0, 80),
    });
  }
  return out;
}

function byReason(a: SweepLine, b: SweepLine): number {
  return a.reason.localeCompare(b.reason) || a.agentId.localeCompare(b.agentId) || (a.proposalId ?? "").localeCompare(b.proposalId ?? "") || a.taskId.localeCompare(b.taskId);
}

export function sweepText(lines: readonly SweepLine[]): string {
  if (lines.length === 0) return "Closeout sweep: no stale work";
  return [`Closeout sweep: ${lines.length} item(s) (report only; nothing was changed)`, ...lines.map((l) => `  ${l.reason} ${l.agentId}/${l.proposalId ? `proposal:${l.proposalId}` : l.taskId} "${l.title}": ${l.evidence}`)].join("\n");
}

export interface CloseoutSweeperOptions {
  js: JetStreamClient;
  kv: { tasks: KV; proposals: KV; schedules: KV };
  names: FleetNames;
  codec: CodecName;
  sweeper: SweeperConfig;
  timeZone: string;
  clock: Clock;
  log: Logger;
}

const RECORD_KEY = "sweeper.daily";

/** The daily sweep, run by the scheduler like a cron job (last run in KV `schedules`, missed days coalesced). */
export class CloseoutSweeper {
  private readonly lastRun: LastRun;
  constructor(private readonly options: CloseoutSweeperOptions) {
    this.lastRun = new LastRun(options.kv.schedules, RECORD_KEY, options.codec);
  }

  /** Reads every task and proposal (bytes, decoded here) and lists the stale ones. */
  async sweep(now: number): Promise<SweepLine[]> {
    const tasks: { agentId: string; task: Task }[] = [];
    for await (const { key, value } of this.entries(this.options.kv.tasks)) {
      const task = this.decode(Task, value);
      if (task) tasks.push({ agentId: key.split(".")[0]!, task });
    }
    const proposals: ProposalRecord[] = [];
    for await (const { value } of this.entries(this.options.kv.proposals)) {
      const proposal = this.decode(ProposalRecord, value);
      if (proposal) proposals.push(proposal);
    }
    return [...sweepTasks(tasks, now, this.options.sweeper), ...sweepProposals(proposals, now)].sort(byReason);
  }

  private async *entries(kv: KV): AsyncGenerator<{ key: string; value: Uint8Array }> {
    for await (const key of await kv.keys()) {
      const entry = await kv.get(key);
      if (entry?.operation === "PUT") yield { key, value: entry.value };
    }
  }

  /** With the fleet's codec, else the other one (a record written by a process on the other codec still counts). */
  private decode<S extends z.ZodType>(schema: S, bytes: Uint8Array): z.infer<S> | undefined {
    for (const codec of [this.options.codec, this.options.codec === "msgpack" ? "json" : "msgpack"] as const) {
      const decoded = decode(schema, bytes, { codec });
      if (decoded.ok) return decoded.value;
    }
    return undefined;
  }

  async tick(): Promise<string | undefined> {
    const { sweeper, timeZone } = this.options;
    const now = this.options.clock.now();
    const last = await this.lastRun.get();
    if (last === undefined) {
      await this.lastRun.set(now);
      return undefined;
    }
    let due = nextDailyAt(sweeper.at, timeZone, last);
    if (due > now) return undefined;
    for (let n = nextDailyAt(sweeper.at, timeZone, due); n <= now; n = nextDailyAt(sweeper.at, timeZone, n)) due = n;
    try {
      const text = sweepText(await this.sweep(now));
      if (sweeper.delivery !== "none") await publishNotice(this.options.js, this.options.names, this.options.codec, sweeper.delivery, { text, jobId: RECORD_KEY, msgId: `${RECORD_KEY}:${due}`, at: now });
      await this.lastRun.set(due);
      return text;
    } catch (err) {
      this.options.log.error({ err }, "closeout sweep failed; it will be retried");
      return undefined;
    }
  }
}
