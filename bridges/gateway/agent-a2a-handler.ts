import type { AgentCard, CancelTaskRequest, GetTaskRequest, ListTasksRequest, ListTasksResponse, Message as SdkMessage, SendMessageRequest, StreamResponse, SubscribeToTaskRequest, Task as SdkTask } from "@a2a-js/sdk";
import { taskStateToJSON } from "@a2a-js/sdk";
import { ExtendedAgentCardNotConfiguredError, PushNotificationNotSupportedError, RequestMalformedError, TaskNotFoundError, UnsupportedOperationError } from "@a2a-js/sdk/errors";
import { ServerCallContext, type A2ARequestHandler, type ServerCallContextOptions } from "@a2a-js/sdk/server";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import { matchSkill, type HostedAgent } from "../../actors/index.js";
import { FleetError, isTerminal, requestOperation, TaskState, textOf, type FleetNames, type Message, type OperationName, type Task } from "../../protocol/index.js";
import { a2aError, fleetMessage, sdkTask, streamEvent } from "./a2a-convert.js";
import type { Peer } from "./gateway-peers.js";
import { TaskFollower } from "./task-follower.js";

/*
 * The SDK's request-handler interface served by one fleet agent over NATS: each A2A operation becomes the same request
 * on `fleet.agent.<id>.a2a.<op>` that any fleet process makes, and streams follow the agent's events. The SDK's
 * transport handlers do the JSON-RPC and HTTP+JSON framing around it.
 *
 * Peers see only their own tasks: the gateway stamps each message it forwards with the peer's id (metadata) and prefixes
 * its messageId with it (the agent derives the task id from agent and messageId, so two peers' equal ids stay two
 * tasks); a task without the peer's stamp is "not found" to that peer.
 */

export const PEER_METADATA_KEY = "natsfleet.gateway.peer";

/** The call context of an authenticated peer's request; aborted when the caller goes away (a stream stops following). */
export class PeerCallContext extends ServerCallContext {
  readonly abort = new AbortController();
  constructor(
    readonly peer: Peer,
    options: ServerCallContextOptions,
  ) {
    super(options);
  }
}

export interface AgentHandlerOptions {
  nc: NatsConnection;
  names: FleetNames;
  agentId: string;
  card: AgentCard;
  /** the skills a message to this agent may be for: its own, or (the fleet's front door) every agent's */
  skills: HostedAgent["skills"];
  requestTimeoutMs: number;
  blockingTimeoutMs: number;
  /** how long a stream waits for an event before reading the task itself */
  pollMs: number;
  log: Logger;
}

export class AgentA2aHandler implements A2ARequestHandler {
  constructor(private readonly o: AgentHandlerOptions) {}

  async getAgentCard(): Promise<AgentCard> {
    return this.o.card;
  }

  async getAuthenticatedExtendedAgentCard(): Promise<AgentCard> {
    throw new ExtendedAgentCardNotConfiguredError("this agent has no extended card: its public card is all there is");
  }

  async sendMessage(params: SendMessageRequest, context: ServerCallContext): Promise<SdkMessage | SdkTask> {
    const peer = peerOf(context);
    const message = await this.admit(params, peer);
    if (params.configuration?.returnImmediately) return sdkTask(trimHistory(await this.request("SendMessage", { message }), params.configuration.historyLength));
    // blocking (the A2A default): wait for a terminal state, up to the configured time, then answer with the task as it is
    const follower = this.follow(context);
    const timeout = AbortSignal.timeout(this.o.blockingTimeoutMs);
    timeout.addEventListener("abort", () => follower.close(), { once: true });
    try {
      await follower.ready();
      const sent = await this.request("SendMessage", { message });
      for await (const event of follower.events(sent)) void event;
      return sdkTask(trimHistory(await this.request("GetTask", { id: sent.id }), params.configuration?.historyLength));
    } finally {
      follower.close();
    }
  }

  async *sendMessageStream(params: SendMessageRequest, context: ServerCallContext): AsyncGenerator<StreamResponse, void, undefined> {
    const peer = peerOf(context);
    const message = await this.admit(params, peer);
    const follower = this.follow(context);
    try {
      await follower.ready();
      const sent = await this.request("SendMessage", { message });
      yield { payload: { $case: "task", value: sdkTask(sent) } };
      for await (const event of follower.events(sent)) yield streamEvent(event);
    } finally {
      follower.close();
    }
  }

  async *resubscribe(params: SubscribeToTaskRequest, context: ServerCallContext): AsyncGenerator<StreamResponse, void, undefined> {
    const follower = this.follow(context);
    try {
      await follower.ready();
      const task = await this.ownTask(params.id, peerOf(context));
      if (isTerminal(task.status.state)) throw new UnsupportedOperationError(`task ${task.id} is ${task.status.state}: there is nothing left to follow`);
      yield { payload: { $case: "task", value: sdkTask(task) } };
      for await (const event of follower.events(task)) yield streamEvent(event);
    } finally {
      follower.close();
    }
  }

  async getTask(params: GetTaskRequest, context: ServerCallContext): Promise<SdkTask> {
    return sdkTask(trimHistory(await this.ownTask(params.id, peerOf(context)), params.historyLength));
  }

  async listTasks(params: ListTasksRequest, context: ServerCallContext): Promise<ListTasksResponse> {
    const peer = peerOf(context);
    const status = params.status ? TaskState.safeParse(taskStateToJSON(params.status)) : undefined;
    if (status && !status.success) throw new RequestMalformedError(`status: not a task state`);
    const { tasks } = await this.request("ListTasks", {
      ...(params.contextId ? { contextId: params.contextId } : {}),
      ...(status?.data ? { status: status.data } : {}),
      pageSize: 500,
    });
    const own = tasks.filter((t) => ownerOf(t) === peer.id);
    const page = own.slice(-(params.pageSize ?? 50)).map((t) => sdkTask(trimHistory(t, params.historyLength)));
    return { tasks: page, nextPageToken: "", pageSize: page.length, totalSize: own.length };
  }

  async cancelTask(params: CancelTaskRequest, context: ServerCallContext): Promise<SdkTask> {
    await this.ownTask(params.id, peerOf(context));
    return sdkTask(await this.request("CancelTask", { id: params.id }));
  }

  async createTaskPushNotificationConfig(): Promise<never> {
    throw new PushNotificationNotSupportedError();
  }
  async getTaskPushNotificationConfig(): Promise<never> {
    throw new PushNotificationNotSupportedError();
  }
  async listTaskPushNotificationConfigs(): Promise<never> {
    throw new PushNotificationNotSupportedError();
  }
  async deleteTaskPushNotificationConfig(): Promise<never> {
    throw new PushNotificationNotSupportedError();
  }

  /**
   * The message as it goes to the agent, once the peer may send it: parsed by our schema, for a skill the peer was
   * granted (named in `metadata.skill`, else the one the agent would pick from its text), continuing only its own task.
   */
  private async admit(params: SendMessageRequest, peer: Peer): Promise<Message> {
    const message = fleetMessage(params.message);
    if (peer.skills) {
      const named = message.metadata?.skill;
      const skill = typeof named === "string" ? named : matchSkill({ skills: this.o.skills }, textOf(message))?.id;
      if (skill === undefined || !peer.skills.has(skill) || !this.o.skills.some((s) => s.id === skill)) {
        throw a2aError(new FleetError("PERMISSION_DENIED", `peer ${peer.id} may not ask ${this.o.agentId} for ${skill === undefined ? "work that matches none of its skills" : `skill "${skill}"`} (granted: ${[...peer.skills].join(", ")})`));
      }
    }
    if (message.taskId !== undefined) await this.ownTask(message.taskId, peer);
    return { ...message, messageId: `${peer.id}:${message.messageId}`, metadata: { ...message.metadata, [PEER_METADATA_KEY]: peer.id } };
  }

  private async ownTask(id: string, peer: Peer): Promise<Task> {
    if (!id.trim()) throw new RequestMalformedError("a task id is required");
    const task = await this.request("GetTask", { id });
    if (ownerOf(task) !== peer.id) throw new TaskNotFoundError(`task ${id} not found`);
    return task;
  }

  private follow(context: ServerCallContext): TaskFollower {
    const signal = context instanceof PeerCallContext ? context.abort.signal : undefined;
    return new TaskFollower({ nc: this.o.nc, names: this.o.names, agentId: this.o.agentId, pollMs: this.o.pollMs, getTask: (id) => this.request("GetTask", { id }), signal });
  }

  private async request<Op extends OperationName>(op: Op, body: Parameters<typeof requestOperation<Op>>[4]) {
    try {
      return await requestOperation(this.o.nc, this.o.names, this.o.agentId, op, body, { timeoutMs: this.o.requestTimeoutMs });
    } catch (err) {
      throw a2aError(err);
    }
  }
}

function peerOf(context: ServerCallContext): Peer {
  // the gateway builds every context; anything else reaching the handler is a wiring bug, refused rather than served
  if (!(context instanceof PeerCallContext)) throw new TaskNotFoundError("no peer");
  return context.peer;
}

/** The peer a task was created for through the gateway (its first message's stamp). */
export function ownerOf(task: Task): string | undefined {
  const owner = task.history?.[0]?.metadata?.[PEER_METADATA_KEY];
  return typeof owner === "string" ? owner : undefined;
}

/** The spec's historyLength: undefined all, 0 none, n the last n. */
function trimHistory(task: Task, historyLength: number | undefined): Task {
  if (historyLength === undefined || !task.history) return task;
  return { ...task, history: historyLength === 0 ? [] : task.history.slice(-historyLength) };
}
