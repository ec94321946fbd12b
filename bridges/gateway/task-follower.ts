import type { NatsConnection, Subscription } from "@nats-io/nats-core";
import { decode, isTerminal, TaskEvent, type FleetNames, type Task } from "../../protocol/index.js";

/*
 * Follows one task through its agent's events (`fleet.agent.<id>.events`) for SSE streams and blocking sends. The
 * subscription starts before the message is sent, so no event can slip past between the send and the first wait; events
 * ride core NATS, so a lost one is made good by reading the Task itself when nothing arrived for a while (its terminal
 * state then closes the stream all the same).
 */

export interface FollowOptions {
  nc: NatsConnection;
  names: FleetNames;
  agentId: string;
  /** reads the task when no event arrived for `pollMs` */
  getTask: (taskId: string) => Promise<Task>;
  pollMs: number;
  signal?: AbortSignal | undefined;
}

export class TaskFollower {
  private readonly sub: Subscription;
  private readonly buffered: TaskEvent[] = [];
  private wake: (() => void) | undefined;
  private closed = false;

  constructor(private readonly o: FollowOptions) {
    this.sub = o.nc.subscribe(o.names.agentEvents(o.agentId), {
      callback: (err, msg) => {
        if (err) return;
        const d = decode(TaskEvent, msg.data);
        if (!d.ok) return;
        this.buffered.push(d.value);
        this.wake?.();
      },
    });
    if (o.signal?.aborted) this.close();
    else o.signal?.addEventListener("abort", () => this.close(), { once: true });
  }

  /** The subscription is registered with the server (call before sending the message). */
  async ready(): Promise<void> {
    await this.o.nc.flush();
  }

  /**
   * The task's events from now on, ending after its final status (a terminal state). `task` is what the send returned:
   * a task already terminal ends the stream at once.
   */
  async *events(task: Task): AsyncGenerator<TaskEvent> {
    try {
      if (isTerminal(task.status.state)) return;
      for (;;) {
        const event = await this.next(task.id);
        if (this.closed) return;
        if (event) {
          yield event;
          if (event.kind === "status-update" && (event.final || isTerminal(event.status.state))) return;
          continue;
        }
        // nothing for a while: the Task says whether we missed the end
        const now = await this.o.getTask(task.id);
        if (isTerminal(now.status.state)) {
          yield { kind: "status-update", taskId: now.id, contextId: now.contextId, status: now.status, final: true };
          return;
        }
      }
    } finally {
      this.close();
    }
  }

  /** The next buffered event of the task, or undefined after `pollMs` without one. */
  private async next(taskId: string): Promise<TaskEvent | undefined> {
    const deadline = Date.now() + this.o.pollMs;
    while (!this.closed) {
      const at = this.buffered.findIndex((e) => e.taskId === taskId);
      if (at >= 0) return this.buffered.splice(0, at + 1).pop();
      // events of the agent's other tasks are of no use here
      this.buffered.length = 0;
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
    return undefined;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sub.unsubscribe();
    this.wake?.();
  }
}
