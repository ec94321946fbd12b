import { TaskState, type Message, type StreamResponse } from "@a2a-js/sdk";

/** A message as the A2A SDK hands it over (a peer's direct answer, with no task). */
export type SdkMessage = Message;

/** The states after which a peer's task does nothing more for us: failed, or waiting for what we cannot give. */
export const TERMINAL_FAILURES: ReadonlySet<TaskState> = new Set([
  TaskState.TASK_STATE_FAILED,
  TaskState.TASK_STATE_CANCELED,
  TaskState.TASK_STATE_REJECTED,
  TaskState.TASK_STATE_INPUT_REQUIRED,
  TaskState.TASK_STATE_AUTH_REQUIRED,
]);

export function isFinal(state: TaskState | undefined): boolean {
  return state === TaskState.TASK_STATE_COMPLETED || (state !== undefined && TERMINAL_FAILURES.has(state));
}

/**
 * How following a peer's task over its stream ended: the peer answered with a message and kept no task; the task reached
 * a final state; or the stream stopped first (the connection cut, the peer restarting, the stream closed early), with
 * the task's id when the peer had named it. A broken stream is not a failed call: the task goes on at the peer and is
 * followed by GetTask from there, never sent again.
 */
export type StreamOutcome =
  | { kind: "message"; message: SdkMessage }
  | { kind: "final"; taskId: string }
  | { kind: "broken"; taskId: string; error: unknown };

/**
 * Reads a SendStreamingMessage or SubscribeToTask stream until the task is final. Only the task's id and state are taken
 * from the events: they are deltas (an artifact event, a status event), so the task as the peer keeps it is read once
 * with GetTask afterwards. A stream that fails before the peer named its task is thrown (the caller cannot know whether
 * a task exists: the send is retried under the same messageId, as a lost SendMessage answer is); so is any failure once
 * `signal` fired (the caller stopping, the call's deadline).
 */
export async function followStream(
  events: AsyncIterable<StreamResponse>,
  o: { taskId?: string | undefined; signal: AbortSignal; onTaskId?: ((taskId: string) => Promise<void> | void) | undefined },
): Promise<StreamOutcome> {
  let taskId = o.taskId;
  const named = async (id: string) => {
    if (!id || id === taskId) return;
    taskId = id;
    await o.onTaskId?.(id);
  };
  try {
    for await (const event of events) {
      const payload = event?.payload;
      let state: TaskState | undefined;
      switch (payload?.$case) {
        case "message":
          if (taskId === undefined) return { kind: "message", message: payload.value };
          continue;
        case "task":
          await named(payload.value.id);
          state = payload.value.status?.state;
          break;
        case "statusUpdate":
          await named(payload.value.taskId);
          state = payload.value.status?.state;
          break;
        default:
          continue;
      }
      if (taskId !== undefined && isFinal(state)) return { kind: "final", taskId };
    }
  } catch (error) {
    if (taskId === undefined || o.signal.aborted) throw error;
    return { kind: "broken", taskId, error };
  }
  if (taskId === undefined) throw new Error("the peer's stream ended before it named a task");
  return { kind: "broken", taskId, error: new Error("the peer's stream ended before its task did") };
}
