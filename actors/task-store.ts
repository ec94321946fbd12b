import type { KV } from "@nats-io/kv";
import { decode, encode, FleetError, isTerminal, Task, type CodecName, type FleetNames } from "../protocol/index.js";

/**
 * Tasks in KV, keyed `<agentId>.<taskId>`. Every change is a compare-and-set on the revision it read, so two processes
 * can never both move a task (for example both complete it): the loser re-reads and sees the winner's state.
 */
export class TaskStore {
  /**
   * The last revision this process read or wrote per key: an update tries it first and re-reads only when another
   * process got there in between (CAS tells), which saves a round trip on the common path.
   */
  private readonly known = new Map<string, { task: Task; revision: number }>();

  constructor(
    private readonly kv: KV,
    private readonly names: FleetNames,
    private readonly codec: CodecName,
  ) {}

  /** Creates the task; an existing one with the same id is returned unchanged (re-sent messages are idempotent). */
  async create(agentId: string, task: Task): Promise<Task> {
    try {
      const revision = await this.kv.create(this.names.taskKey(agentId, task.id), encode(task, this.codec));
      this.remember(this.names.taskKey(agentId, task.id), task, revision);
      return task;
    } catch (err) {
      const existing = await this.get(agentId, task.id);
      if (existing) return existing;
      throw FleetError.from(err);
    }
  }

  /** Overwrites a task the caller alone owns (Atlas's rolling status report). */
  async put(agentId: string, task: Task): Promise<void> {
    await this.kv.put(this.names.taskKey(agentId, task.id), encode(task, this.codec));
  }

  /** Resolves with the task once it reaches a terminal state (watching KV, so no polling), or rejects on abort. */
  async waitForTerminal(agentId: string, taskId: string, signal: AbortSignal): Promise<Task> {
    return this.waitUntil(agentId, taskId, signal, (task) => isTerminal(task.status.state));
  }

  /** Resolves with the task once `settled` holds for it (a terminal state, say, or a hold), or rejects on abort. */
  async waitUntil(agentId: string, taskId: string, signal: AbortSignal, settled: (task: Task) => boolean): Promise<Task> {
    const watch = await this.kv.watch({ key: this.names.taskKey(agentId, taskId) });
    const onAbort = () => watch.stop();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      for await (const entry of watch) {
        if (entry.operation !== "PUT") continue;
        const decoded = decode(Task, entry.value, { codec: this.codec });
        if (decoded.ok && settled(decoded.value)) return decoded.value;
      }
      signal.throwIfAborted();
      throw new FleetError("INTERNAL", `watch on task ${taskId} ended before the task finished`);
    } finally {
      signal.removeEventListener("abort", onAbort);
      watch.stop();
    }
  }

  async get(agentId: string, taskId: string): Promise<Task | undefined> {
    return (await this.getWithRevision(agentId, taskId))?.task;
  }

  private async getWithRevision(agentId: string, taskId: string): Promise<{ task: Task; revision: number } | undefined> {
    const entry = await this.kv.get(this.names.taskKey(agentId, taskId));
    if (!entry || entry.operation !== "PUT") return undefined;
    const decoded = decode(Task, entry.value, { codec: this.codec });
    if (!decoded.ok) throw decoded.error;
    this.remember(entry.key, decoded.value, entry.revision);
    return { task: decoded.value, revision: entry.revision };
  }

  private remember(key: string, task: Task, revision: number): void {
    this.known.delete(key);
    this.known.set(key, { task, revision });
    // bounded: the oldest entries go first (a Map iterates in insertion order)
    if (this.known.size > 1000) this.known.delete(this.known.keys().next().value!);
  }

  /**
   * Applies `change` to the current task by CAS, retrying on a lost race. `change` returns undefined to leave the task
   * as it is (for example when it is already terminal). Returns the task as stored afterwards.
   */
  async update(agentId: string, taskId: string, change: (task: Task) => Task | undefined): Promise<Task> {
    const key = this.names.taskKey(agentId, taskId);
    for (let attempt = 0; attempt < 10; attempt++) {
      const current = (attempt === 0 ? this.known.get(key) : undefined) ?? (await this.getWithRevision(agentId, taskId));
      if (!current) throw new FleetError("TASK_NOT_FOUND", `task ${taskId} not found for agent ${agentId}`);
      const next = change(current.task);
      if (!next) return current.task;
      try {
        const revision = await this.kv.update(key, encode(next, this.codec), current.revision);
        this.remember(key, next, revision);
        return next;
      } catch (err) {
        this.known.delete(key);
        if (!isWrongRevision(err)) throw FleetError.from(err);
      }
    }
    throw new FleetError("CONFLICT", `task ${taskId}: too many concurrent updates`);
  }

  /** Moves a task to a new state unless it is already terminal. */
  async transition(agentId: string, taskId: string, patch: (task: Task) => Partial<Task>): Promise<Task> {
    return this.update(agentId, taskId, (task) => (isTerminal(task.status.state) ? undefined : { ...task, ...patch(task) }));
  }

  async list(agentId: string): Promise<Task[]> {
    const tasks: Task[] = [];
    const keys = await this.kv.keys(`${agentId}.>`);
    for await (const key of keys) {
      const taskId = key.slice(agentId.length + 1);
      const task = await this.get(agentId, taskId).catch(() => undefined);
      if (task) tasks.push(task);
    }
    return tasks.sort((a, b) => a.status.timestamp.localeCompare(b.status.timestamp));
  }
}

function isWrongRevision(err: unknown): boolean {
  return err instanceof Error && /wrong last sequence/i.test(err.message);
}
