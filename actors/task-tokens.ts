import type { TokenUsage } from "../protocol/index.js";

/**
 * The tokens each task in hand has used so far, counted where its model calls are made (the process's router client
 * reports every reply here, see behaviours/role-behaviour.ts) and taken once when the task is settled: that sum is the
 * task's actual (`metadata.actual`). In memory and per process: a task redelivered to a new process counts its calls
 * there, and a replayed step (answered from the router's kept answer) reports the usage it had when it was paid for.
 */
export class TaskTokens {
  private readonly used = new Map<string, number>();

  /** input + output tokens of one reply (cached input is part of the input: it was sent, only cheaper) */
  add(agentId: string, taskId: string, usage: TokenUsage): void {
    const key = keyOf(agentId, taskId);
    this.used.set(key, (this.used.get(key) ?? 0) + usage.inputTokens + usage.outputTokens);
  }

  /** The task's tokens, forgotten here: a task is settled once. */
  take(agentId: string, taskId: string): number {
    const key = keyOf(agentId, taskId);
    const tokens = this.used.get(key) ?? 0;
    this.used.delete(key);
    return tokens;
  }

  /** What the task has used so far, left counting (a held or retried task goes on adding to it). */
  peek(agentId: string, taskId: string): number {
    return this.used.get(keyOf(agentId, taskId)) ?? 0;
  }
}

const keyOf = (agentId: string, taskId: string): string => `${agentId}\u0000${taskId}`;
