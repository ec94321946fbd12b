import { createHash } from "node:crypto";
import type { JetStreamClient } from "@nats-io/jetstream";
import type { Logger } from "pino";
import { encode, titleOf, wireHeaders, type CodecName, type FleetNames, type Message, type Task, type TaskAssignment } from "../protocol/index.js";
import type { DedupKind, TaskDedup } from "./task-dedup.js";
import type { TaskStore } from "./task-store.js";

export interface SubmitDeps {
  js: JetStreamClient;
  store: TaskStore;
  /** the task and discovery dedup layers; without it nothing is deduplicated */
  dedup?: TaskDedup | undefined;
  /** every dedup decision that refuses work is logged with its reason */
  log?: Logger | undefined;
  names: FleetNames;
  codec: CodecName;
  now: () => number;
}

/**
 * The task id follows from the receiving agent and the message id, so a client that retries a SendMessage (or Atlas
 * re-assigning after a crash) gets the same task back instead of a second one.
 */
export function taskIdFor(agentId: string, messageId: string): string {
  return "t-" + createHash("sha256").update(`${agentId}\u0000${messageId}`).digest("hex").slice(0, 24);
}

/**
 * Persists a new Task (SUBMITTED) and assigns it to the agent through TASKS. Safe to call twice with the same message.
 * Work that agents create for each other (`dedupKind`) passes the dedup layers first: a near-copy of recent work is
 * stored as REJECTED, naming the task it duplicates, and never assigned. Operators' and cron requests are not deduplicated.
 */
export async function submitTask(deps: SubmitDeps, agentId: string, message: Message, assignedBy: string, dedupKind?: DedupKind): Promise<Task> {
  const taskId = message.taskId ?? taskIdFor(agentId, message.messageId);
  const contextId = message.contextId ?? taskId;
  const stamped: Message = { ...message, taskId, contextId };
  // a message that continues an existing task (taskId set) is not new work
  if (dedupKind && deps.dedup && !message.taskId) {
    const verdict = await deps.dedup.admit(agentId, taskId, titleOf(stamped), dedupKind);
    if (!verdict.admitted) {
      deps.log?.info({ agentId, taskId, duplicateOf: verdict.duplicateOf, layer: verdict.layer, similarity: verdict.similarity, reason: verdict.reason }, "dedup: work not created");
      const rejected: Task = {
        id: taskId,
        contextId,
        status: {
          state: "TASK_STATE_REJECTED",
          timestamp: new Date(deps.now()).toISOString(),
          message: { messageId: `${taskId}-dedup`, role: "ROLE_AGENT", parts: [{ text: verdict.reason }] },
        },
        history: [stamped],
        metadata: { agentId, assignedBy, duplicateOf: verdict.duplicateOf, dedupLayer: verdict.layer },
      };
      return deps.store.create(agentId, rejected);
    }
  }
  const task: Task = {
    id: taskId,
    contextId,
    status: { state: "TASK_STATE_SUBMITTED", timestamp: new Date(deps.now()).toISOString() },
    history: [stamped],
    metadata: { agentId, assignedBy },
  };
  const assignment: TaskAssignment = { taskId, contextId, agentId, message: stamped, assignedBy, assignedAt: deps.now() };
  // The Task first, then its assignment: the consumer never sees an assignment whose Task is not there yet, so a
  // missing Task is a dead letter at once, not something to wait for. Nats-Msg-Id makes a repeated assignment within
  // the duplicate window a no-op on the server.
  const stored = await deps.store.create(agentId, task);
  await deps.js.publish(deps.names.task(agentId), encode(assignment, deps.codec), { headers: wireHeaders(deps.codec, taskId) });
  return stored;
}
