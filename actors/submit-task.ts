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
  const assignment: TaskAssignment = { taskId, contextId, agentId, message: stamped, assignedBy, assignedAt: deps.now() };
  // Both writes go out together (one round trip, not two). The assignment carries everything its Task holds, so a
  // consumer that finds no Task yet makes it from the assignment (taskFromAssignment) instead of waiting for ours;
  // whichever create lands second finds the first. Nats-Msg-Id makes a repeated assignment within the duplicate window
  // a no-op on the server.
  const [stored] = await Promise.all([
    deps.store.create(agentId, taskFromAssignment(assignment)),
    deps.js.publish(deps.names.task(agentId), encode(assignment, deps.codec), { headers: wireHeaders(deps.codec, taskId) }),
  ]);
  return stored;
}

/** The SUBMITTED Task an assignment stands for: what its submitter stores, and what a consumer stores if it got there first. */
export function taskFromAssignment(assignment: TaskAssignment): Task {
  return {
    id: assignment.taskId,
    contextId: assignment.contextId,
    status: { state: "TASK_STATE_SUBMITTED", timestamp: new Date(assignment.assignedAt).toISOString() },
    history: [assignment.message],
    metadata: { agentId: assignment.agentId, assignedBy: assignment.assignedBy },
  };
}
