import { z } from "zod";
import { JsonObject, JsonValue, TaskId } from "./wire-types.js";

/**
 * The A2A v1.0 data model (a2aproject/A2A specification/a2a.proto, ProtoJSON field names). These schemas are the only
 * definition of these types: everything else uses `z.infer`.
 */

export const A2A_VERSION = "1.0";
/** Our NATS protocol binding, named in every AgentCard's supportedInterfaces. */
export const NATS_BINDING_URI = "https://natsfleet.dev/a2a/bindings/nats/v1";

const Metadata = JsonObject;

/** A Part carries exactly one of text, raw bytes, a URL or JSON data. */
const PartCommon = {
  metadata: Metadata.optional(),
  filename: z.string().optional(),
  mediaType: z.string().optional(),
};
export const TextPart = z.object({ text: z.string(), ...PartCommon }).strict();
export const RawPart = z.object({ raw: z.instanceof(Uint8Array), ...PartCommon }).strict();
export const UrlPart = z.object({ url: z.url(), ...PartCommon }).strict();
export const DataPart = z.object({ data: JsonValue, ...PartCommon }).strict();
export const Part = z.union([TextPart, RawPart, UrlPart, DataPart]);
export type Part = z.infer<typeof Part>;

export const Role = z.enum(["ROLE_USER", "ROLE_AGENT"]);
export type Role = z.infer<typeof Role>;

export const Message = z.object({
  messageId: z.string().min(1),
  contextId: TaskId.optional(),
  taskId: TaskId.optional(),
  role: Role,
  parts: z.array(Part).min(1),
  metadata: Metadata.optional(),
  referenceTaskIds: z.array(z.string()).optional(),
});
export type Message = z.infer<typeof Message>;

export const TaskState = z.enum([
  "TASK_STATE_SUBMITTED",
  "TASK_STATE_WORKING",
  "TASK_STATE_INPUT_REQUIRED",
  "TASK_STATE_AUTH_REQUIRED",
  "TASK_STATE_COMPLETED",
  "TASK_STATE_FAILED",
  "TASK_STATE_CANCELED",
  "TASK_STATE_REJECTED",
]);
export type TaskState = z.infer<typeof TaskState>;

const TERMINAL: ReadonlySet<TaskState> = new Set([
  "TASK_STATE_COMPLETED",
  "TASK_STATE_FAILED",
  "TASK_STATE_CANCELED",
  "TASK_STATE_REJECTED",
]);
export function isTerminal(state: TaskState): boolean {
  return TERMINAL.has(state);
}

export const TaskStatus = z.object({
  state: TaskState,
  message: Message.optional(),
  /** ISO 8601 */
  timestamp: z.string(),
});
export type TaskStatus = z.infer<typeof TaskStatus>;

export const Artifact = z.object({
  artifactId: z.string().min(1),
  name: z.string().optional(),
  description: z.string().optional(),
  parts: z.array(Part).min(1),
  metadata: Metadata.optional(),
});
export type Artifact = z.infer<typeof Artifact>;

export const Task = z.object({
  id: z.string().min(1),
  contextId: z.string(),
  status: TaskStatus,
  artifacts: z.array(Artifact).optional(),
  history: z.array(Message).optional(),
  metadata: Metadata.optional(),
});
export type Task = z.infer<typeof Task>;

export const AgentSkill = z.object({
  id: z.string(),
  name: z.string(),
  description: z.string(),
  tags: z.array(z.string()),
  examples: z.array(z.string()).optional(),
});
export type AgentSkill = z.infer<typeof AgentSkill>;

export const AgentInterface = z.object({ url: z.string(), protocolBinding: z.string() });

export const AgentCard = z.object({
  name: z.string(),
  description: z.string(),
  version: z.string(),
  supportedInterfaces: z.array(AgentInterface).min(1),
  capabilities: z.object({ streaming: z.boolean().optional(), pushNotifications: z.boolean().optional() }),
  defaultInputModes: z.array(z.string()),
  defaultOutputModes: z.array(z.string()),
  skills: z.array(AgentSkill),
});
export type AgentCard = z.infer<typeof AgentCard>;

/** Events on `fleet.agent.<id>.events` (A2A TaskStatusUpdateEvent / TaskArtifactUpdateEvent). */
export const TaskStatusUpdateEvent = z.object({
  kind: z.literal("status-update"),
  taskId: z.string(),
  contextId: z.string(),
  status: TaskStatus,
  final: z.boolean(),
});
export const TaskArtifactUpdateEvent = z.object({
  kind: z.literal("artifact-update"),
  taskId: z.string(),
  contextId: z.string(),
  artifact: Artifact,
  lastChunk: z.boolean().optional(),
});
export const TaskEvent = z.discriminatedUnion("kind", [TaskStatusUpdateEvent, TaskArtifactUpdateEvent]);
export type TaskEvent = z.infer<typeof TaskEvent>;
