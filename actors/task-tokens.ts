import type { TokenUsage } from "../protocol/index.js";

/**
 * The tokens each task in hand has used so far, counted where its model calls are made (the process's router client
 * reports every reply here, see behaviours/role-behaviour.ts) and taken once when the task is settled: that sum is the
 * task's actual (`metadata.actual`). In memory and per process: a task redelivered to a new process counts its calls
 * there, and a replayed step (answered from the router's kept answer) reports the usage it had when it was paid for.
 */
export class TaskTokens {
  private readonly used = new Map<string, { input: number; output: number }>();

  /** input + output tokens of one reply (cached input is part of the input: it was sent, only cheaper) */
  add(agentId: string, taskId: string, usage: TokenUsage): void {
    const key = keyOf(agentId, taskId);
    const so = this.used.get(key) ?? { input: 0, output: 0 };
    this.used.set(key, { input: so.input + usage.inputTokens, output: so.output + usage.outputTokens });
  }

  /** The task's tokens, forgotten here: a task is settled once. */
  take(agentId: string, taskId: string): number {
    const tokens = this.peek(agentId, taskId);
    this.used.delete(keyOf(agentId, taskId));
    return tokens;
  }

  /** What the task has used so far, left counting (a held or retried task goes on adding to it). */
  peek(agentId: string, taskId: string): number {
    const so = this.split(agentId, taskId);
    return so.input + so.output;
  }

  /** The same, input and output apart (the agent's `invoke_agent` span reports them so). */
  split(agentId: string, taskId: string): { input: number; output: number } {
    return this.used.get(keyOf(agentId, taskId)) ?? { input: 0, output: 0 };
  }
}

const keyOf = (agentId: string, taskId: string): string => `${agentId}\u0000${taskId}`;
