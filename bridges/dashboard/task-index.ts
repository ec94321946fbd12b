import type { KV } from "@nats-io/kv";
import type { Logger } from "pino";
import { Task, type CodecName } from "../../protocol/index.js";
import { countBy, KvIndex } from "./kv-index.js";
import { decodeRecord } from "./record-codec.js";

/* Which tasks there are, newest first: per key of KV `tasks` only what ordering, paging, filtering and counting need. */

export interface TaskEntry {
  /** `<agentId>.<taskId>` */
  key: string;
  agentId: string;
  /** without `TASK_STATE_` */
  state: string;
  /** the status timestamp (ISO): the order of the tasks page */
  updatedAt: string;
}

export interface TaskQuery {
  /** 0-based page, `limit` tasks per page */
  page: number;
  limit: number;
  state?: string | undefined;
  agentId?: string | undefined;
}

export interface TaskIndexPage {
  entries: TaskEntry[];
  /** how many tasks match the query (all pages) */
  matching: number;
  /** how many tasks there are by state, over the whole bucket */
  byState: Map<string, number>;
}

export class TaskIndex {
  private readonly index: KvIndex<TaskEntry>;

  constructor(deps: { kv: KV; codec: CodecName; log: Logger }) {
    this.index = new KvIndex({
      kv: deps.kv,
      summarize: (key, value) => {
        const task = decodeRecord(Task, value, deps.codec);
        return task && { key, agentId: key.slice(0, key.indexOf(".")), state: task.status.state.replace("TASK_STATE_", ""), updatedAt: task.status.timestamp };
      },
      order: (a, b) => b.updatedAt.localeCompare(a.updatedAt) || a.key.localeCompare(b.key),
      log: deps.log,
    });
  }

  get ready(): Promise<void> {
    return this.index.ready;
  }

  start(): Promise<void> {
    return this.index.start();
  }

  stop(): Promise<void> {
    return this.index.stop();
  }

  /** One page of the newest tasks that match. */
  async page(query: TaskQuery): Promise<TaskIndexPage> {
    const all = await this.index.entries();
    const matching = query.state || query.agentId ? all.filter((e) => (!query.state || e.state === query.state) && (!query.agentId || e.agentId === query.agentId)) : all;
    const from = query.page * query.limit;
    return { entries: matching.slice(from, from + query.limit), matching: matching.length, byState: countBy(all, (e) => e.state) };
  }

  /** Tasks by agent and state, for /metrics (`natsfleet_tasks`). */
  async countsByAgentAndState(): Promise<{ agent: string; state: string; n: number }[]> {
    const counts = countBy(await this.index.entries(), (e) => `${e.agentId}\u0000${e.state}`);
    return [...counts].map(([key, n]) => {
      const [agent, state] = key.split("\u0000") as [string, string];
      return { agent, state, n };
    });
  }
}
