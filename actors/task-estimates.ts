import type { KV } from "@nats-io/kv";
import type { Logger } from "pino";
import { z } from "zod";
import { decode, taskWorkOf, textOf, Task, type CodecName, type FleetNames, type Message } from "../protocol/index.js";
import { pointsOf } from "../router/index.js";
import { matchSkill, type HostedAgent } from "./behaviour.js";

/** `metadata.estimate`: made when the task is claimed, before any work on it (router/weekly-report.ts reads `points`). */
export const TaskEstimate = z.object({
  /** the kind whose history it comes from: `pipeline:<id>`, `duty:<id>` or `skill:<id>` */
  kind: z.string(),
  points: z.number().nonnegative(),
  /** `history`: the median actual of the agent's last finished tasks of the kind; `default`: none finished yet */
  basis: z.enum(["history", "default"]),
  /** how many finished tasks the median was taken over */
  samples: z.number().int().nonnegative(),
});
export type TaskEstimate = z.infer<typeof TaskEstimate>;

/** `metadata.actual`: the tokens (input + output) of the task's model calls, written when it is settled. */
export const TaskActual = z.object({ tokens: z.number().int().nonnegative(), points: z.number().nonnegative() });
export type TaskActual = z.infer<typeof TaskActual>;

/** how many finished tasks of a kind the median looks at */
export const ESTIMATE_HISTORY = 20;
/** a kind with no finished task yet */
export const DEFAULT_ESTIMATE_POINTS = 1;
/** the first estimate reads at most this many of the agent's Tasks (the latest written): the cost stays bounded */
export const ESTIMATE_SCAN_LIMIT = 500;

/** A task's kind: the pipeline it runs, else the duty that asked, else the skill its text matches (`skill:general`). */
export function kindOf(agent: Pick<HostedAgent, "skills">, message: Message): string {
  const work = taskWorkOf(message.metadata);
  if (work?.pipeline) return `pipeline:${work.pipeline}`;
  if (work?.duty) return `duty:${work.duty}`;
  return `skill:${matchSkill(agent, textOf(message))?.id ?? "general"}`;
}

export function estimateOfTask(task: Task): TaskEstimate | undefined {
  const parsed = TaskEstimate.safeParse(task.metadata?.estimate);
  return parsed.success ? parsed.data : undefined;
}

export function actualOfTask(task: Task): TaskActual | undefined {
  const parsed = TaskActual.safeParse(task.metadata?.actual);
  return parsed.success ? parsed.data : undefined;
}

export interface TaskEstimatorOptions {
  kv: KV;
  names: FleetNames;
  codec: CodecName;
  agent: Pick<HostedAgent, "id" | "skills">;
  log: Logger;
}

/**
 * One agent's estimates in story points (1 point = 1,000 tokens): the median actual of its last 20 completed tasks of
 * the same kind. The history lives in the agent's own Tasks (KV `tasks`, `<agentId>.<taskId>`, which it may read), not
 * in USAGE (which it may not): read once, at the first estimate, by a bounded scan of its keys, then kept in memory and
 * added to at each completion.
 */
export class TaskEstimator {
  private history: Promise<Map<string, { at: string; tokens: number }[]>> | undefined;

  constructor(private readonly options: TaskEstimatorOptions) {}

  async estimate(message: Message): Promise<TaskEstimate> {
    const kind = kindOf(this.options.agent, message);
    const done = (await this.load()).get(kind) ?? [];
    if (done.length === 0) return { kind, points: DEFAULT_ESTIMATE_POINTS, basis: "default", samples: 0 };
    return { kind, points: pointsOf(median(done.map((d) => d.tokens))), basis: "history", samples: done.length };
  }

  /** A completed task of `kind` used `tokens`: the next estimate of its kind counts it. */
  async completed(kind: string, at: string, tokens: number): Promise<void> {
    add(await this.load(), kind, { at, tokens });
  }

  private load(): Promise<Map<string, { at: string; tokens: number }[]>> {
    this.history ??= this.scan().catch((err: unknown) => {
      // no history is no reason to refuse work: the defaults stand, and the completions of this run are kept
      this.options.log.warn({ err }, "task history not read; estimates start from the default");
      return new Map();
    });
    return this.history;
  }

  private async scan(): Promise<Map<string, { at: string; tokens: number }[]>> {
    const { kv, names, agent, codec } = this.options;
    const prefix = names.taskKey(agent.id, "");
    // keys come in the order of their last write (oldest first): the last ones are the latest work
    const keys: string[] = [];
    for await (const key of await kv.keys(`${prefix}>`)) {
      keys.push(key);
      if (keys.length > ESTIMATE_SCAN_LIMIT) keys.shift();
    }
    const history = new Map<string, { at: string; tokens: number }[]>();
    for (const key of keys) {
      const entry = await kv.get(key);
      if (!entry || entry.operation !== "PUT") continue;
      const decoded = decode(Task, entry.value, { codec });
      if (!decoded.ok || decoded.value.status.state !== "TASK_STATE_COMPLETED") continue;
      const estimate = estimateOfTask(decoded.value);
      const actual = actualOfTask(decoded.value);
      if (estimate && actual) add(history, estimate.kind, { at: decoded.value.status.timestamp, tokens: actual.tokens });
    }
    return history;
  }
}

/** Keeps the last ESTIMATE_HISTORY of a kind, newest last. */
function add(history: Map<string, { at: string; tokens: number }[]>, kind: string, done: { at: string; tokens: number }): void {
  const list = [...(history.get(kind) ?? []), done].sort((a, b) => a.at.localeCompare(b.at));
  history.set(kind, list.slice(-ESTIMATE_HISTORY));
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
