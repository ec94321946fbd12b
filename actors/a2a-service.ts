import type { Msg, NatsConnection, Subscription } from "@nats-io/nats-core";
import type { Logger } from "pino";
import {
  FleetError,
  OPERATIONS,
  isBadInput,
  decode,
  negotiate,
  replyError,
  replyResult,
  type CodecName,
  type FleetNames,
  type Message,
  type OperationName,
  type Task,
} from "../protocol/index.js";
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
 * Serves SendMessage, GetTask, ListTasks and CancelTask on `fleet.agent.<id>.a2a.<op>` in a queue group, so several
 * copies of an agent can share the load (all state is in KV). Every request is validated once, here; a bad one gets a
 * typed error reply and is dead-lettered, and a message with no reply subject is dead-lettered so nothing is lost.
 */
export class A2aService {
  private sub: Subscription | undefined;

  constructor(private readonly o: A2aServiceOptions) {}

  start(): void {
    this.sub = this.o.nc.subscribe(this.o.names.agentOperations(this.o.agentId), {
      queue: `agent-${this.o.agentId}`,
      callback: (err, msg) => {
        if (!err) void this.handle(msg);
      },
    });
  }

  stop(): void {
    this.sub?.unsubscribe();
  }

  private async handle(msg: Msg): Promise<void> {
    const op = msg.subject.slice(msg.subject.lastIndexOf(".") + 1);
    const negotiated = negotiate(msg, this.o.codec);
    const codec = negotiated.ok ? negotiated.codec : this.o.codec;
    try {
      if (!negotiated.ok) throw negotiated.error;
      if (!isOperation(op)) throw new FleetError("UNSUPPORTED_OPERATION", `operation ${op} is not supported`);
      const result = await this.run(op, msg.data, codec);
      if (msg.reply) replyResult(msg, result, codec);
    } catch (err) {
      const error = FleetError.from(err);
      // bad input is worth a warning; an unknown task id or a finished task is an ordinary answer
      if (isBadInput(error)) this.o.log.warn({ op, code: error.code, subject: msg.subject }, "a2a request refused");
      else this.o.log.debug({ op, code: error.code }, "a2a request answered with an error");
      if (msg.reply) replyError(msg, error, codec);
      if (isBadInput(error) || !msg.reply) await this.o.deadLetter(msg.subject, msg.data, error);
    }
  }

  private async run(op: OperationName, data: Uint8Array, codec: CodecName): Promise<unknown> {
    const schema = OPERATIONS[op].request;
    const decoded = decode(schema, data, { codec, maxBytes: this.o.maxPayloadBytes });
    if (!decoded.ok) throw decoded.error;
    const request = decoded.value;
    switch (op) {
      case "SendMessage": {
        const { message } = OPERATIONS.SendMessage.request.parse(request);
        return this.o.submit(message);
      }
      case "GetTask": {
        const { id, historyLength } = OPERATIONS.GetTask.request.parse(request);
        const task = await this.o.store.get(this.o.agentId, id);
        if (!task) throw new FleetError("TASK_NOT_FOUND", `task ${id} not found`);
        return historyLength === undefined ? task : { ...task, history: (task.history ?? []).slice(-historyLength || task.history?.length) };
      }
      case "ListTasks": {
        const { contextId, status, pageSize } = OPERATIONS.ListTasks.request.parse(request);
        const tasks = (await this.o.store.list(this.o.agentId))
          .filter((t) => (contextId ? t.contextId === contextId : true) && (status ? t.status.state === status : true))
          .slice(-(pageSize ?? 100));
        return { tasks };
      }
      case "CancelTask": {
        const { id } = OPERATIONS.CancelTask.request.parse(request);
        return this.o.cancel(id);
      }
    }
  }
}

function isOperation(op: string): op is OperationName {
  return Object.hasOwn(OPERATIONS, op);
}
