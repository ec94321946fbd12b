import { z } from "zod";
import { Message, Task, TaskState } from "./a2a.js";
import { ErrorPayload } from "./errors.js";
import { JsonObject, plainObject, TaskId } from "./wire-types.js";

/** The A2A operations served on `fleet.agent.<id>.a2a.<operation>`, with their request and result schemas. */

export const SendMessageRequest = z.object({
  message: Message,
  configuration: plainObject(
    z.object({
      /** false (default): reply as soon as the Task is persisted; true: reply when it reaches a terminal state */
      blocking: z.boolean().optional(),
      historyLength: z.number().int().min(0).optional(),
    }),
  ).optional(),
  metadata: JsonObject.optional(),
});
export type SendMessageRequest = z.infer<typeof SendMessageRequest>;

export const GetTaskRequest = z.object({ id: TaskId, historyLength: z.number().int().min(0).optional() });
export type GetTaskRequest = z.infer<typeof GetTaskRequest>;

export const ListTasksRequest = plainObject(
  z.object({
    contextId: TaskId.optional(),
    status: TaskState.optional(),
    pageSize: z.number().int().min(1).max(500).optional(),
  }),
);
export type ListTasksRequest = z.infer<typeof ListTasksRequest>;

export const ListTasksResult = z.object({ tasks: z.array(Task) });
export type ListTasksResult = z.infer<typeof ListTasksResult>;

export const CancelTaskRequest = z.object({ id: TaskId });
export type CancelTaskRequest = z.infer<typeof CancelTaskRequest>;

export const OPERATIONS = {
  SendMessage: { request: SendMessageRequest, result: Task },
  GetTask: { request: GetTaskRequest, result: Task },
  ListTasks: { request: ListTasksRequest, result: ListTasksResult },
  CancelTask: { request: CancelTaskRequest, result: Task },
} as const;
export type OperationName = keyof typeof OPERATIONS;
export const OPERATION_NAMES = Object.keys(OPERATIONS) as OperationName[];

const ErrorReply = z.object({ error: ErrorPayload });
const replySchemas = new WeakMap<z.ZodType, z.ZodType>();

function buildReplySchema<T extends z.ZodType>(result: T) {
  return z.union([z.object({ result }), ErrorReply]);
}

/**
 * Every reply is either `{result}` or `{error}`, so a client never has to guess from the shape. Built once per result
 * schema: zod compiles a schema on its first parse, and a new one per request cost more than the request's own decode.
 */
export function replySchema<T extends z.ZodType>(result: T): ReturnType<typeof buildReplySchema<T>> {
  let schema = replySchemas.get(result);
  if (!schema) {
    schema = buildReplySchema(result);
    replySchemas.set(result, schema);
  }
  return schema as ReturnType<typeof buildReplySchema<T>>;
}
