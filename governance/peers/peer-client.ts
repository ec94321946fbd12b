import { setTimeout as delay } from "node:timers/promises";
import { Role, TaskState, type AgentCard } from "@a2a-js/sdk";
import { ClientFactory, ClientFactoryOptions, createAuthenticatingFetchWithRetry, DefaultAgentCardResolver, JsonRpcTransportFactory, RestTransportFactory, type Client } from "@a2a-js/sdk/client";
import type { Logger } from "pino";
import { peerSkillTimeoutSeconds, type PeerConfig } from "../../config/index.js";
import { FleetError, type Artifact } from "../../protocol/index.js";
import { peerArtifacts, peerCostUsd, type SdkArtifact } from "./peer-parts.js";
import { followStream, isFinal, TERMINAL_FAILURES, type SdkMessage } from "./peer-stream.js";

/** What the fleet asks a peer's skill: a sentence, and structured input when the skill takes some. */
export interface PeerRequest {
  text: string;
  data?: unknown;
}

/** What came back: the peer's task (or direct message) as the fleet records it. */
export interface PeerAnswer {
  peer: string;
  skill: string;
  /** the peer's task id; none when the peer answered with a message and kept no task */
  taskId?: string | undefined;
  state: "TASK_STATE_COMPLETED";
  artifacts: Artifact[];
  /** the artifacts' text parts, joined: what a model or a person reads first */
  text: string;
  /** what the peer says the work cost, when its metadata says (`costUsd`, `cost_usd` or `cost.usd`) */
  costUsd?: number | undefined;
  latencyMs: number;
}

export interface PeerCallOptions {
  /** the A2A messageId: the same call asked again carries the same id, so a peer that deduplicates runs it once */
  messageId: string;
  signal?: AbortSignal | undefined;
  /** a task of the peer this call already started (a retry after the peer went away): polled, not sent again */
  resumeTaskId?: string | undefined;
  /** told the peer's task id as soon as it is known, so a retry (or a restarted process) resumes it */
  onTaskId?: ((taskId: string) => Promise<void> | void) | undefined;
}

export interface PeerClientOptions {
  name: string;
  config: PeerConfig;
  /** the bearer token (the value of `tokenEnv`, read where the process is wired); none: no Authorization header */
  token?: string | undefined;
  log: Logger;
  now?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  fetch?: typeof fetch;
}

type SdkTask = Awaited<ReturnType<Client["getTask"]>>;
type SendParams = Parameters<Client["sendMessage"]>[0];
type SdkPart = NonNullable<SendParams["message"]>["parts"][number];

/**
 * One peer, through the official A2A client (@a2a-js/sdk): its AgentCard fetched (and fetched again after a failure),
 * a skill asked with SendMessage, the task polled with GetTask until it ends. A peer whose card says
 * `capabilities.streaming` is asked with SendStreamingMessage and its task followed over the stream (a resumed task with
 * SubscribeToTask); a stream that breaks mid-task leaves the task to the polling, so the result is never lost and the
 * message never sent again for it. Each failure comes back as a typed FleetError: PEER_UNAVAILABLE and PEER_TIMEOUT
 * are retryable (peer-retry.ts retries them), PEER_REFUSED and PEER_TASK_FAILED are not. One call of `ask` is one attempt.
 */
export class PeerClient {
  private client: Promise<{ client: Client; card: AgentCard }> | undefined;
  private readonly now: () => number;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  private readonly fetchImpl: typeof fetch;

  constructor(private readonly o: PeerClientOptions) {
    this.now = o.now ?? (() => Date.now());
    this.sleep = o.sleep ?? ((ms, signal) => delay(ms, undefined, signal ? { signal } : {}));
    const base = o.fetch ?? fetch;
    const token = o.token;
    const authed = token === undefined ? base : createAuthenticatingFetchWithRetry(base, { headers: async () => ({ Authorization: `Bearer ${token}` }), shouldRetryWithHeaders: async () => undefined });
    this.fetchImpl = classifyingFetch(o.name, authed);
  }

  get name(): string {
    return this.o.name;
  }

  /** The peer's AgentCard (cached until a call fails). */
  async card(): Promise<AgentCard> {
    return (await this.connect()).card;
  }

  /** One attempt: send the message (or resume the task), then follow it (stream, else polls) until it ends or times out. */
  async ask(skill: string, request: PeerRequest, options: PeerCallOptions): Promise<PeerAnswer> {
    const startedAt = this.now();
    const granted = this.o.config.skills[skill];
    if (granted === undefined) throw new FleetError("PEER_SKILL_NOT_GRANTED", `peer ${this.o.name} grants no skill "${skill}" in this fleet's config`);
    const timeoutSeconds = peerSkillTimeoutSeconds(this.o.config, skill);
    const deadline = startedAt + timeoutSeconds * 1000;
    const skillId = granted.id ?? skill;
    try {
      const { client, card } = await this.connect();
      if (card.skills.length > 0 && !card.skills.some((s) => s.id === skillId)) {
        throw new FleetError("PEER_REFUSED", `peer ${this.o.name}'s AgentCard lists no skill "${skillId}" (it lists: ${card.skills.map((s) => s.id).join(", ")})`);
      }
      const signal = () => AbortSignal.any([...(options.signal ? [options.signal] : []), AbortSignal.timeout(Math.max(1, deadline - this.now()))]);
      // a peer whose card says it streams is followed over its stream; one that does not (or a stream that broke) by GetTask
      const streams = card.capabilities?.streaming === true;
      let task: SdkTask | undefined;
      if (options.resumeTaskId) task = await this.resume(client, options.resumeTaskId, signal());
      if (!task) {
        const message = this.message(skillId, request, options.messageId);
        if (streams) {
          const outcome = await this.follow(client.sendMessageStream(message, { signal: signal() }), undefined, signal, options.onTaskId);
          if (outcome.kind === "message") return this.messageAnswer(skill, outcome.message, startedAt);
          task = await client.getTask({ tenant: "", id: outcome.taskId }, { signal: signal() });
        } else {
          const result = await client.sendMessage(message, { signal: signal() });
          if (!("status" in result)) return this.messageAnswer(skill, result, startedAt);
          task = result;
          await options.onTaskId?.(task.id);
        }
      } else if (streams && !isFinal(task.status?.state)) {
        // a task this call already started (a retry, a restarted process): followed again over a new stream
        await this.follow(client.resubscribeTask({ tenant: "", id: task.id }, { signal: signal() }), task.id, signal, undefined);
        task = await client.getTask({ tenant: "", id: task.id }, { signal: signal() });
      }
      for (let polls = 0; ; polls++) {
        const state = task.status?.state ?? TaskState.TASK_STATE_UNSPECIFIED;
        if (state === TaskState.TASK_STATE_COMPLETED) return this.answer(skill, task.id, peerArtifacts(this.o.name, task.artifacts as SdkArtifact[]), task.metadata, startedAt);
        if (TERMINAL_FAILURES.has(state)) {
          const why = task.status?.message?.parts.map((p) => (p.content?.$case === "text" ? p.content.value : "")).join(" ").trim();
          throw new FleetError("PEER_TASK_FAILED", `peer ${this.o.name} ended task ${task.id} (${skillId}) as ${TaskState[state]}${why ? `: ${why.slice(0, 500)}` : ""}`);
        }
        if (this.now() >= deadline) throw new FleetError("PEER_TIMEOUT", `peer ${this.o.name}'s task ${task.id} (${skillId}) did not finish within ${timeoutSeconds} s`, { retryAfterMs: 0 });
        // a quick skill is read back quickly: 50 ms, then doubling up to pollSeconds
        await this.sleep(Math.min(50 * 2 ** polls, this.o.config.pollSeconds * 1000, Math.max(1, deadline - this.now())), options.signal);
        task = await client.getTask({ tenant: "", id: task.id }, { signal: signal() });
      }
    } catch (err) {
      const error = this.failure(err, deadline, options.signal, timeoutSeconds);
      // a card fetched from a server that went away may be stale (new interfaces, new skills): fetched again next time
      if (error.retryable || error.code === "PEER_REFUSED") this.client = undefined;
      throw error;
    }
  }

  /** Follows a stream of the peer's task; a stream that broke mid-task is said in the log and left to GetTask. */
  private async follow(events: ReturnType<Client["sendMessageStream"]>, taskId: string | undefined, signal: () => AbortSignal, onTaskId: PeerCallOptions["onTaskId"]): Promise<{ kind: "message"; message: SdkMessage } | { kind: "task"; taskId: string }> {
    const outcome = await followStream(events, { taskId, signal: signal(), onTaskId });
    if (outcome.kind === "message") return outcome;
    if (outcome.kind === "final") return { kind: "task", taskId: outcome.taskId };
    const reason = outcome.error instanceof Error ? outcome.error.message : String(outcome.error);
    this.o.log.info({ peer: this.o.name, taskId: outcome.taskId, reason: reason.slice(0, 300) }, "the peer's stream broke before its task ended; following the task by GetTask");
    return { kind: "task", taskId: outcome.taskId };
  }

  /** Asks the peer to cancel a task (a rollback of a PROPOSE call): best effort, the peer may have finished it. */
  async cancel(taskId: string): Promise<void> {
    try {
      const { client } = await this.connect();
      await client.cancelTask({ tenant: "", id: taskId, metadata: undefined } as Parameters<Client["cancelTask"]>[0], { signal: AbortSignal.timeout(this.o.config.timeoutSeconds * 1000) });
    } catch (err) {
      throw this.failure(err, Number.POSITIVE_INFINITY, undefined, this.o.config.timeoutSeconds);
    }
  }

  /** The task as the peer has it now, or undefined when the peer no longer knows it (it lost it in a restart). */
  private async resume(client: Client, taskId: string, signal: AbortSignal): Promise<SdkTask | undefined> {
    try {
      return await client.getTask({ tenant: "", id: taskId }, { signal });
    } catch (err) {
      if (isNamed(err, "TaskNotFoundError") || /-32001|task not found/i.test(err instanceof Error ? err.message : "")) {
        this.o.log.warn({ peer: this.o.name, taskId }, "the peer no longer knows the task it started; the message is sent again under its id");
        return undefined;
      }
      throw err;
    }
  }

  private message(skillId: string, request: PeerRequest, messageId: string): SendParams {
    const parts: SdkPart[] = [{ content: { $case: "text", value: request.text }, metadata: undefined, filename: "", mediaType: "text/plain" }];
    if (request.data !== undefined) parts.push({ content: { $case: "data", value: request.data }, metadata: undefined, filename: "", mediaType: "application/json" });
    return {
      tenant: "",
      message: { messageId, contextId: "", taskId: "", role: Role.ROLE_USER, parts, metadata: { skill: skillId }, extensions: [], referenceTaskIds: [] },
      configuration: { acceptedOutputModes: [], taskPushNotificationConfig: undefined, returnImmediately: true },
      metadata: { skill: skillId },
    };
  }

  /** A peer may answer a quick skill with a message and keep no task. */
  private messageAnswer(skill: string, message: SdkMessage, startedAt: number): PeerAnswer {
    const artifacts = peerArtifacts(this.o.name, [{ artifactId: message.messageId, name: "answer", description: "", parts: message.parts, metadata: message.metadata, extensions: [] }]);
    return this.answer(skill, undefined, artifacts, message.metadata, startedAt);
  }

  private answer(skill: string, taskId: string | undefined, artifacts: Artifact[], metadata: Record<string, unknown> | undefined, startedAt: number): PeerAnswer {
    const text = artifacts.flatMap((a) => a.parts.flatMap((p) => ("text" in p ? [p.text] : []))).join("\n");
    const costUsd = peerCostUsd(metadata);
    return { peer: this.o.name, skill, ...(taskId ? { taskId } : {}), state: "TASK_STATE_COMPLETED", artifacts, text, ...(costUsd !== undefined ? { costUsd } : {}), latencyMs: Math.max(0, this.now() - startedAt) };
  }

  private connect(): Promise<{ client: Client; card: AgentCard }> {
    this.client ??= (async () => {
      const resolver = new DefaultAgentCardResolver({ fetchImpl: this.fetchImpl });
      const card = await resolver.resolve(this.o.config.card, "");
      const factory = new ClientFactory(
        ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
          transports: [new JsonRpcTransportFactory({ fetchImpl: this.fetchImpl }), new RestTransportFactory({ fetchImpl: this.fetchImpl })],
          cardResolver: resolver,
        }),
      );
      return { client: await factory.createFromAgentCard(card), card };
    })();
    const pending = this.client;
    pending.catch(() => {
      if (this.client === pending) this.client = undefined;
    });
    return pending;
  }

  /** Anything the SDK or the network threw, as the fleet names it. */
  private failure(err: unknown, deadline: number, signal: AbortSignal | undefined, timeoutSeconds: number): FleetError {
    const own = fleetErrorIn(err);
    if (own) return own;
    const message = err instanceof Error ? err.message : String(err);
    if (signal?.aborted) return new FleetError("PEER_UNAVAILABLE", `the call to peer ${this.o.name} was given up (the caller stopped)`, { cause: err });
    if (this.now() >= deadline || isNamed(err, "TimeoutError")) return new FleetError("PEER_TIMEOUT", `peer ${this.o.name} did not answer within ${timeoutSeconds} s`, { cause: err });
    if (/Status: 5\d\d|: 5\d\d\b|Status: 429/.test(message)) return new FleetError("PEER_UNAVAILABLE", `peer ${this.o.name} answered: ${message.slice(0, 300)}`, { cause: err });
    if (/Status: 40[13]|: 40[13]\b/.test(message)) return new FleetError("PEER_REFUSED", `peer ${this.o.name} refused our token: ${message.slice(0, 300)}`, { cause: err });
    if (isNamed(err, "TypeError") || /fetch failed|ECONNREFUSED|ECONNRESET|socket|terminated/i.test(message)) {
      return new FleetError("PEER_UNAVAILABLE", `peer ${this.o.name} cannot be reached (${message.slice(0, 200)})`, { cause: err });
    }
    return new FleetError("PEER_REFUSED", `peer ${this.o.name} answered with an error: ${message.slice(0, 500)}`, { cause: err });
  }
}

/** The fetch the SDK uses: a peer's HTTP status becomes our typed error before the SDK words it. */
function classifyingFetch(peer: string, base: typeof fetch): typeof fetch {
  return async (input, init) => {
    let response: Response;
    try {
      response = await base(input, init);
    } catch (err) {
      if (isNamed(err, "TimeoutError") || isNamed(err, "AbortError")) throw err;
      throw new FleetError("PEER_UNAVAILABLE", `peer ${peer} cannot be reached (${err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err)})`, { cause: err });
    }
    if (response.status === 401 || response.status === 403) throw new FleetError("PEER_REFUSED", `peer ${peer} answered ${response.status}: the token in its tokenEnv is missing, wrong or not allowed this`);
    if (response.status >= 500 || response.status === 429) {
      const after = Number(response.headers.get("retry-after"));
      throw new FleetError("PEER_UNAVAILABLE", `peer ${peer} answered ${response.status}`, Number.isFinite(after) && after > 0 ? { retryAfterMs: after * 1000 } : {});
    }
    return response;
  };
}

function fleetErrorIn(err: unknown): FleetError | undefined {
  let e: unknown = err;
  for (let depth = 0; e instanceof Error && depth < 6; depth++) {
    if (e instanceof FleetError) return e;
    e = e.cause;
  }
  return undefined;
}

/** Whether the error is (by name or class) the named kind: DOMException's TimeoutError, the SDK's TaskNotFoundError. */
function isNamed(err: unknown, name: string): boolean {
  return err instanceof Error && (err.name === name || err.constructor?.name === name);
}
