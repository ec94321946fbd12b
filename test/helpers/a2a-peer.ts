import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { A2A_PROTOCOL_VERSION, formatSSEEvent, Role, TaskState, type AgentCard } from "@a2a-js/sdk";
import {
  AgentEvent,
  DefaultRequestHandler,
  defaultServerCallContextBuilder,
  InMemoryTaskStore,
  JsonRpcTransportHandler,
  UnauthenticatedUser,
  validateVersion,
  type AgentExecutor,
  type ExecutionEventBus,
  type RequestContext,
} from "@a2a-js/sdk/server";

/*
 * "Another company's fleet" for tests: a real A2A v1.0 server built from @a2a-js/sdk's server parts (DefaultRequestHandler,
 * JsonRpcTransportHandler, InMemoryTaskStore) behind a small node:http adapter: the AgentCard at
 * /.well-known/agent-card.json, JSON-RPC 2.0 (with SSE for the streaming methods) at /a2a/jsonrpc, a bearer token checked
 * on every request. Its skills answer with a script; it can go away (its listener closed, connections cut) and come back
 * on the same port with its tasks intact, as a gateway restarted in front of a durable store would.
 */

export interface PeerSkillScript {
  id: string;
  /** the answer: an artifact's text and data, and the cost the peer reports in its task's metadata */
  answer: (request: { text: string; data: unknown }) => Promise<{ text: string; data?: unknown; costUsd?: number } | { fail: string }>;
}

export interface A2APeerOptions {
  name: string;
  skills: PeerSkillScript[];
  /** the bearer token the peer accepts; none: open */
  token?: string;
  port?: number;
  /** whether its card says (and its server does) streaming: SendStreamingMessage, SubscribeToTask over SSE (default true) */
  streaming?: boolean;
}

export class A2APeer {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly transport: JsonRpcTransportHandler;
  readonly card: AgentCard;
  port = 0;
  /** every SendMessage the peer received: its messageId and text */
  readonly received: { messageId: string; skill: string; text: string }[] = [];
  /** the JSON-RPC method of every request, in order: how a client followed its task (GetTask polls, streams) */
  readonly methods: string[] = [];
  /** the responses streaming right now (SSE), so a test can cut them while the server stays up */
  private readonly streams = new Set<ServerResponse>();

  constructor(private readonly o: A2APeerOptions) {
    this.port = o.port ?? 0;
    this.card = {
      name: o.name,
      description: `${o.name}: another company's agents (test peer)`,
      version: "1.0.0",
      supportedInterfaces: [{ url: "", protocolBinding: "JSONRPC", tenant: "", protocolVersion: A2A_PROTOCOL_VERSION }],
      provider: undefined,
      capabilities: { streaming: o.streaming ?? true, pushNotifications: false, extensions: [] },
      securitySchemes: {},
      securityRequirements: [],
      defaultInputModes: ["text/plain", "application/json"],
      defaultOutputModes: ["text/plain", "application/json"],
      skills: o.skills.map((s) => ({ id: s.id, name: s.id, description: `skill ${s.id}`, tags: [s.id], examples: [], inputModes: [], outputModes: [], securityRequirements: [] })),
      signatures: [],
    };
    const handler = new DefaultRequestHandler(this.card, new InMemoryTaskStore(), new ScriptedExecutor(o.skills, this.received));
    this.transport = new JsonRpcTransportHandler(handler);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get cardUrl(): string {
    return `${this.url}/.well-known/agent-card.json`;
  }

  /** Listens (again, on the same port once it had one). */
  async start(): Promise<void> {
    const server = createServer((req, res) => void this.handle(req, res).catch((err: unknown) => fail(res, 500, String(err))));
    server.on("connection", (socket) => {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, "127.0.0.1", () => resolve());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    const iface = this.card.supportedInterfaces[0];
    if (iface) iface.url = `${this.url}/a2a/jsonrpc`;
  }

  /** Cuts every open stream mid-task (their connections destroyed); the server and its tasks stay. Returns how many. */
  cutStreams(): number {
    const open = [...this.streams];
    for (const res of open) res.socket?.destroy();
    this.streams.clear();
    return open.length;
  }

  /** Goes away: no new connections, open ones cut. The tasks stay (the handler and its store live on). */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.o.token !== undefined && req.headers.authorization !== `Bearer ${this.o.token}`) return fail(res, 401, "unauthorized");
    if (req.method === "GET" && req.url === "/.well-known/agent-card.json") return json(res, 200, this.card);
    if (req.method !== "POST" || req.url !== "/a2a/jsonrpc") return fail(res, 404, "not found");
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      return json(res, 200, { jsonrpc: "2.0", id: null, error: { code: -32700, message: "parse error" } });
    }
    if (isRecord(body) && typeof body["method"] === "string") this.methods.push(body["method"]);
    const version = req.headers["a2a-version"];
    const context = defaultServerCallContextBuilder({ extensions: undefined, user: new UnauthenticatedUser(), headers: req.headers, ...(typeof version === "string" ? { requestedVersion: version } : {}) });
    try {
      validateVersion(context.requestedVersion, this.card, "JSONRPC");
    } catch (err) {
      return json(res, 200, { jsonrpc: "2.0", id: null, error: JsonRpcTransportHandler.mapToJSONRPCError(err) });
    }
    const result = await this.transport.handle(body as Record<string, unknown>, context);
    if (result !== null && typeof result === "object" && Symbol.asyncIterator in result) {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
      this.streams.add(res);
      try {
        // read to the end even when the client is gone: in the SDK the stream's reader is what records the task's events
        for await (const event of result as AsyncIterable<unknown>) if (!res.destroyed) res.write(formatSSEEvent(event));
      } finally {
        this.streams.delete(res);
      }
      res.end();
      return;
    }
    return json(res, 200, result);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

function fail(res: ServerResponse, status: number, message: string): void {
  if (res.headersSent) return void res.end();
  json(res, status, { error: message });
}

/** Runs each message through the skill its metadata names (the first skill when none): submitted, working, the answer. */
class ScriptedExecutor implements AgentExecutor {
  constructor(
    private readonly skills: PeerSkillScript[],
    private readonly received: { messageId: string; skill: string; text: string }[],
  ) {}

  async execute(ctx: RequestContext, bus: ExecutionEventBus): Promise<void> {
    const message = ctx.userMessage;
    const skillId = typeof message.metadata?.["skill"] === "string" ? message.metadata["skill"] : this.skills[0]?.id;
    const text = message.parts.map((p) => (p.content?.$case === "text" ? p.content.value : "")).join("\n");
    const data = message.parts.find((p) => p.content?.$case === "data")?.content?.value;
    this.received.push({ messageId: message.messageId, skill: skillId ?? "", text });
    const now = () => new Date().toISOString();
    const base = { id: ctx.taskId, contextId: ctx.contextId, artifacts: [], history: [message] };
    bus.publish(AgentEvent.task({ ...base, status: { state: TaskState.TASK_STATE_SUBMITTED, message: undefined, timestamp: now() }, metadata: undefined }));
    bus.publish(AgentEvent.statusUpdate({ taskId: ctx.taskId, contextId: ctx.contextId, status: { state: TaskState.TASK_STATE_WORKING, message: undefined, timestamp: now() }, metadata: undefined }));
    const skill = this.skills.find((s) => s.id === skillId);
    const answer = skill ? await skill.answer({ text, data }) : { fail: `no skill ${skillId}` };
    if ("fail" in answer) {
      const why = { messageId: `${ctx.taskId}-failed`, contextId: ctx.contextId, taskId: ctx.taskId, role: Role.ROLE_AGENT, parts: [{ content: { $case: "text" as const, value: answer.fail }, metadata: undefined, filename: "", mediaType: "" }], metadata: undefined, extensions: [], referenceTaskIds: [] };
      bus.publish(AgentEvent.statusUpdate({ taskId: ctx.taskId, contextId: ctx.contextId, status: { state: TaskState.TASK_STATE_FAILED, message: why, timestamp: now() }, metadata: undefined }));
      bus.finished();
      return;
    }
    const parts = [
      { content: { $case: "text" as const, value: answer.text }, metadata: undefined, filename: "", mediaType: "text/plain" },
      ...(answer.data !== undefined ? [{ content: { $case: "data" as const, value: answer.data }, metadata: undefined, filename: "", mediaType: "application/json" }] : []),
    ];
    bus.publish(AgentEvent.artifactUpdate({ taskId: ctx.taskId, contextId: ctx.contextId, artifact: { artifactId: `${ctx.taskId}-answer`, name: "answer", description: "", parts, metadata: undefined, extensions: [] }, append: false, lastChunk: true, metadata: undefined }));
    // the end is a status event (a second task event breaks a streaming request's order); its metadata joins the task's
    bus.publish(AgentEvent.statusUpdate({ taskId: ctx.taskId, contextId: ctx.contextId, status: { state: TaskState.TASK_STATE_COMPLETED, message: undefined, timestamp: now() }, metadata: answer.costUsd !== undefined ? { costUsd: answer.costUsd } : undefined }));
    bus.finished();
  }

  async cancelTask(taskId: string, bus: ExecutionEventBus): Promise<void> {
    bus.publish(AgentEvent.statusUpdate({ taskId, contextId: taskId, status: { state: TaskState.TASK_STATE_CANCELED, message: undefined, timestamp: new Date().toISOString() }, metadata: undefined }));
    bus.finished();
  }
}
