import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import { endpoint, FleetError, FleetService, OPERATIONS, type CodecName, type FleetNames, type Message, type Task } from "../protocol/index.js";
import type { TaskStore } from "./task-store.js";

export interface A2aServiceOptions {
  nc: NatsConnection;
  names: FleetNames;
  codec: CodecName;
  maxPayloadBytes: number;
  agentId: string;
  store: TaskStore;
  submit: (message: Message) => Promise<Task>;
  cancel: (taskId: string) => Promise<Task>;
  deadLetter: (subject: string, data: Uint8Array, error: FleetError) => Promise<void>;
  log: Logger;
}

/**
 * SendMessage, GetTask, ListTasks and CancelTask on `fleet.agent.<id>.a2a.<op>` in a queue group, so several copies of
 * an agent can share the load (all state is in KV). Built on the fleet's one service skeleton: every request is
 * validated once, a bad one gets a typed error reply and is dead-lettered. SendMessage and CancelTask may come one-way
 * (their effect is the point); a one-way question (GetTask, ListTasks) is dead-lettered.
 */
export function a2aService(o: A2aServiceOptions): FleetService {
  const { agentId, names, store } = o;
  return new FleetService({
    nc: o.nc,
    name: "fleet-agent-a2a",
    version: "1.0.0",
    description: `A2A operations of agent ${agentId}`,
    metadata: { agent: agentId },
    queue: `agent-${agentId}`,
    subscribe: [names.agentOperations(agentId)],
    endpoints: [
      endpoint({
        name: "SendMessage",
        subject: names.agentOperation(agentId, "SendMessage"),
        request: OPERATIONS.SendMessage.request,
        oneWay: "run",
        handle: ({ message }) => o.submit(message),
      }),
      endpoint({
        name: "GetTask",
        subject: names.agentOperation(agentId, "GetTask"),
        request: OPERATIONS.GetTask.request,
        handle: async ({ id, historyLength }) => {
          const task = await store.get(agentId, id);
          if (!task) throw new FleetError("TASK_NOT_FOUND", `task ${id} not found`);
          return historyLength === undefined ? task : { ...task, history: (task.history ?? []).slice(-historyLength || task.history?.length) };
        },
      }),
      endpoint({
        name: "ListTasks",
        subject: names.agentOperation(agentId, "ListTasks"),
        request: OPERATIONS.ListTasks.request,
        handle: async ({ contextId, status, pageSize }) => {
          const tasks = (await store.list(agentId))
            .filter((t) => (contextId ? t.contextId === contextId : true) && (status ? t.status.state === status : true))
            .slice(-(pageSize ?? 100));
          return { tasks };
        },
      }),
      endpoint({
        name: "CancelTask",
        subject: names.agentOperation(agentId, "CancelTask"),
        request: OPERATIONS.CancelTask.request,
        oneWay: "run",
        handle: ({ id }) => o.cancel(id),
      }),
    ],
    codec: o.codec,
    maxPayloadBytes: o.maxPayloadBytes,
    deadLetter: o.deadLetter,
    log: o.log,
  });
}
