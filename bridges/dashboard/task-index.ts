import type { KV, KvWatchEntry } from "@nats-io/kv";
import type { QueuedIterator } from "@nats-io/nats-core";
import type { Logger } from "pino";
import { Task, type CodecName } from "../../protocol/index.js";
import { decodeRecord } from "./record-codec.js";

/*
 * Which tasks there are, newest first, without reading the tasks bucket per page: a KV watch of `tasks` (its last values
 * once at start, then each change) keeps, per key, only what ordering, paging, filtering and counting need. A page then
 * gets the few Tasks it shows by key. The Tasks stay the truth: this is where they are and in what state, not a copy.
 */

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

/** How long a page waits for the index's first reading of the bucket before it shows what is known so far. */
const READY_WAIT_MS = 30_000;

export class TaskIndex {
  private readonly entries = new Map<string, TaskEntry>();
  /** newest first; rebuilt on the first read after a change */
  private sorted: TaskEntry[] | undefined;
  private watcher: QueuedIterator<KvWatchEntry> | undefined;
  private loop: Promise<void> | undefined;
  private markReady: () => void = () => undefined;
  /** resolves once the bucket's values at start are all in */
  readonly ready: Promise<void> = new Promise((resolve) => (this.markReady = resolve));

  constructor(private readonly deps: { kv: KV; codec: CodecName; log: Logger }) {}

  async start(): Promise<void> {
    const { kv } = this.deps;
    this.watcher = await kv.watch();
    // an empty bucket sends nothing to mark the end of its values
    if ((await kv.status()).values === 0) this.markReady();
    this.loop = this.follow(this.watcher);
  }

  async stop(): Promise<void> {
    this.watcher?.stop();
    await this.loop;
    this.markReady();
  }

  get size(): number {
    return this.entries.size;
  }

  /** One page of the newest tasks that match; waits (bounded) for the first reading. */
  async page(query: TaskQuery): Promise<TaskIndexPage> {
    await Promise.race([this.ready, new Promise((resolve) => setTimeout(resolve, READY_WAIT_MS).unref())]);
    const all = this.newestFirst();
    const matching = query.state || query.agentId ? all.filter((e) => (!query.state || e.state === query.state) && (!query.agentId || e.agentId === query.agentId)) : all;
    const from = query.page * query.limit;
    return { entries: matching.slice(from, from + query.limit), matching: matching.length, byState: this.countBy((e) => e.state) };
  }

  /** Tasks by agent and state, for /metrics (`natsfleet_tasks`). */
  async countsByAgentAndState(): Promise<{ agent: string; state: string; n: number }[]> {
    await Promise.race([this.ready, new Promise((resolve) => setTimeout(resolve, READY_WAIT_MS).unref())]);
    const counts = new Map<string, { agent: string; state: string; n: number }>();
    for (const e of this.entries.values()) {
      const key = `${e.agentId}\u0000${e.state}`;
      const c = counts.get(key) ?? { agent: e.agentId, state: e.state, n: 0 };
      c.n++;
      counts.set(key, c);
    }
    return [...counts.values()];
  }

  private countBy(keyOf: (e: TaskEntry) => string): Map<string, number> {
    const out = new Map<string, number>();
    for (const e of this.entries.values()) out.set(keyOf(e), (out.get(keyOf(e)) ?? 0) + 1);
    return out;
  }

  private newestFirst(): TaskEntry[] {
    this.sorted ??= [...this.entries.values()].sort((a, b) => b.updatedAt.localeCompare(a.updatedAt) || a.key.localeCompare(b.key));
    return this.sorted;
  }

  private async follow(watcher: QueuedIterator<KvWatchEntry>): Promise<void> {
    try {
      for await (const e of watcher) {
        this.apply(e);
        // the last of the values at start is the first marked as an update
        if (e.isUpdate || e.delta === 0) this.markReady();
      }
    } catch (err) {
      this.deps.log.warn({ err }, "task index watch ended");
    }
  }

  private apply(e: KvWatchEntry): void {
    this.sorted = undefined;
    if (e.operation !== "PUT") {
      this.entries.delete(e.key);
      return;
    }
    const task = decodeRecord(Task, e.value, this.deps.codec);
    if (!task) return;
    const dot = e.key.indexOf(".");
    this.entries.set(e.key, { key: e.key, agentId: e.key.slice(0, dot), state: task.status.state.replace("TASK_STATE_", ""), updatedAt: task.status.timestamp });
  }
}
