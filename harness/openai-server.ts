import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { z } from "zod";
import { ChatMessage, estimateInputTokens, estimateTextTokens, type ChatMessage as ChatMessageType } from "../protocol/index.js";
import { localEmbedding } from "../router/index.js";

/**
 * A real HTTP server speaking the part of the OpenAI API the router uses (`POST /v1/chat/completions`,
 * `POST /v1/embeddings`, `GET /v1/models`), with scripted answers and failures per model. Tests point a provider at
 * `baseUrl` and go through the real SDK, the real fetch and real sockets, so what they see is what production sees.
 */

export interface ScriptedAnswer {
  /** HTTP status; 200 when omitted. At 400 and above the body is an OpenAI-style error whose message is `content`. */
  status?: number;
  /** the assistant's text; `ok from <model>` when omitted, and null (no text) when the answer has `toolCalls` */
  content?: string;
  /**
   * tool calls the assistant makes (finish_reason "tool_calls"); `id` defaults to `call_<n>`, and `arguments` given as a
   * value is sent as its JSON text (a string goes as it is, so a test can send arguments that are not JSON)
   */
  toolCalls?: { id?: string; name: string; arguments: unknown }[];
  /** the usage to report; computed from the request and the content when omitted */
  usage?: { prompt_tokens: number; completion_tokens: number; cached_tokens?: number };
  /** wait this long before answering */
  delayMs?: number;
  /** never answer (until the server closes) */
  hang?: boolean;
  /** sent as-is instead of a generated body, e.g. invalid JSON; labelled application/json unless `headers` say otherwise */
  rawBody?: string;
  headers?: Record<string, string>;
  /** a failure's message ends with the request's Authorization header, as careless providers echo the key they refused */
  echoAuthorization?: boolean;
}

export interface RecordedRequest {
  path: string;
  model: string | undefined;
  /** the parsed JSON body (undefined for a GET or a body that was not JSON) */
  body: unknown;
  authorization: string | undefined;
  at: number;
}

const WithModel = z.object({ model: z.string() });
// The request in OpenAI's wire shape (content is null beside tool calls), read just far enough to estimate its tokens.
const ChatBody = z.object({ messages: z.array(z.object({ role: ChatMessage.shape.role, content: z.string().nullish() })) });
const EmbeddingsBody = z.object({ input: z.union([z.string(), z.array(z.string())]) });

const ERROR_TYPES: Record<number, { type: string; code: string }> = {
  400: { type: "invalid_request_error", code: "invalid_request" },
  401: { type: "invalid_request_error", code: "invalid_api_key" },
  403: { type: "invalid_request_error", code: "permission_denied" },
  404: { type: "invalid_request_error", code: "model_not_found" },
  429: { type: "requests", code: "rate_limit_exceeded" },
};

export class OpenAIServer {
  readonly requests: RecordedRequest[] = [];
  private readonly scripts = new Map<string, ScriptedAnswer[]>();
  private readonly models = new Set<string>();
  private readonly pending = new Set<ServerResponse>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private completions = 0;
  private responder: ((request: RecordedRequest) => ScriptedAnswer | undefined) | undefined;

  private constructor(
    private readonly server: Server,
    private readonly host: string,
  ) {}

  /** `host`: the address to listen on (a cluster test's hosts reach the test at its bridge address, not loopback). */
  static async start(host = "127.0.0.1"): Promise<OpenAIServer> {
    let instance: OpenAIServer | undefined;
    const server = createServer((req, res) => {
      instance?.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) instance?.send(res, 500, { error: { message: String(err), type: "server_error", code: "helper_failed" } });
      });
    });
    instance = new OpenAIServer(server, host);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, host, () => resolve());
    });
    return instance;
  }

  get port(): number {
    const address = this.server.address();
    if (address === null || typeof address === "string") throw new Error("OpenAIServer is not listening");
    return address.port;
  }

  get baseUrl(): string {
    return `http://${this.host}:${this.port}/v1`;
  }

  /** Queues answers for a model, consumed one per request in order (chat and embeddings share the queue). */
  script(model: string, ...answers: ScriptedAnswer[]): void {
    this.models.add(model);
    this.scripts.set(model, [...(this.scripts.get(model) ?? []), ...answers]);
  }

  /**
   * Answers a request no script is queued for (a long run cannot script every call in advance): the function sees the
   * recorded request and returns the answer, or undefined for the default one.
   */
  answerWith(responder: (request: RecordedRequest) => ScriptedAnswer | undefined): void {
    this.responder = responder;
  }

  /** Forgets scripts and recorded requests; hanging requests stay hanging until `close()`. */
  clear(): void {
    this.scripts.clear();
    this.requests.length = 0;
  }

  async close(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    for (const res of this.pending) res.destroy();
    this.pending.clear();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    const text = await readBody(req);
    const body = parseJson(text);
    const model = WithModel.safeParse(body);
    const recorded: RecordedRequest = {
      path,
      model: model.success ? model.data.model : undefined,
      body,
      authorization: req.headers.authorization,
      at: Date.now(),
    };
    this.requests.push(recorded);

    if (req.method === "GET" && path === "/v1/models") {
      const data = [...this.models].sort().map((id) => ({ id, object: "model", created: 0, owned_by: "openai-server" }));
      return this.send(res, 200, { object: "list", data });
    }
    const known = req.method === "POST" && (path === "/v1/chat/completions" || path === "/v1/embeddings");
    if (!known) return this.send(res, 404, errorBody(404, `no route ${req.method} ${path}`));
    if (!model.success) return this.send(res, 400, errorBody(400, "the body must be JSON with a model"));

    const name = model.data.model;
    this.models.add(name);
    const answer = this.scripts.get(name)?.shift() ?? this.responder?.(recorded) ?? {};
    if (answer.hang) {
      this.pending.add(res);
      res.once("close", () => this.pending.delete(res));
      return;
    }
    if (answer.delayMs) {
      this.pending.add(res);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          resolve();
        }, answer.delayMs);
        this.timers.add(timer);
      });
      this.pending.delete(res);
      // the client gave up (or the server closed) while we waited
      if (res.destroyed || res.writableEnded) return;
    }
    this.answer(res, path, name, body, answer, req.headers.authorization);
  }

  private answer(res: ServerResponse, path: string, model: string, body: unknown, answer: ScriptedAnswer, authorization?: string): void {
    const status = answer.status ?? 200;
    if (answer.rawBody !== undefined) {
      res.writeHead(status, { "content-type": "application/json", ...answer.headers });
      res.end(answer.rawBody);
      return;
    }
    if (status >= 400) {
      const message = answer.content ?? `scripted failure ${status}`;
      const echoed = answer.echoAuthorization ? `${message}: ${authorization ?? "(no Authorization header)"}` : message;
      return this.send(res, status, errorBody(status, echoed), answer.headers);
    }
    if (path === "/v1/embeddings") return this.send(res, status, embeddings(model, body), answer.headers);

    this.completions += 1;
    const toolCalls = answer.toolCalls?.map((call, i) => ({
      id: call.id ?? `call_${this.completions}_${i}`,
      type: "function",
      function: { name: call.name, arguments: typeof call.arguments === "string" ? call.arguments : JSON.stringify(call.arguments) },
    }));
    const content = answer.content ?? (toolCalls ? null : `ok from ${model}`);
    const chat = ChatBody.safeParse(body);
    const messages: ChatMessageType[] = chat.success ? chat.data.messages.map((m) => ({ role: m.role, content: m.content ?? "" })) : [];
    const promptTokens = answer.usage?.prompt_tokens ?? estimateInputTokens(messages);
    const completionTokens = answer.usage?.completion_tokens ?? estimateTextTokens(content ?? JSON.stringify(toolCalls));
    this.send(
      res,
      status,
      {
        id: `chatcmpl-${this.completions}`,
        object: "chat.completion",
        created: Math.floor(Date.now() / 1000),
        model,
        choices: [
          toolCalls
            ? { index: 0, message: { role: "assistant", content, tool_calls: toolCalls }, finish_reason: "tool_calls" }
            : { index: 0, message: { role: "assistant", content }, finish_reason: "stop" },
        ],
        usage: {
          prompt_tokens: promptTokens,
          completion_tokens: completionTokens,
          total_tokens: promptTokens + completionTokens,
          prompt_tokens_details: { cached_tokens: answer.usage?.cached_tokens ?? 0 },
        },
      },
      answer.headers,
    );
  }

  private send(res: ServerResponse, status: number, payload: unknown, headers: Record<string, string> = {}): void {
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(JSON.stringify(payload));
  }
}

function embeddings(model: string, body: unknown): unknown {
  const parsed = EmbeddingsBody.safeParse(body);
  const input = parsed.success ? parsed.data.input : [];
  const texts = typeof input === "string" ? [input] : input;
  const tokens = texts.reduce((sum, text) => sum + estimateTextTokens(text), 0);
  return {
    object: "list",
    model,
    data: texts.map((text, index) => ({ object: "embedding", index, embedding: localEmbedding(text) })),
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  };
}

function errorBody(status: number, message: string): unknown {
  const known = ERROR_TYPES[status] ?? { type: status >= 500 ? "server_error" : "invalid_request_error", code: `http_${status}` };
  return { error: { message, type: known.type, code: known.code, param: null } };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  return Buffer.concat(chunks).toString("utf8");
}

function parseJson(text: string): unknown {
  if (text === "") return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return value;
  } catch {
    return undefined;
  }
}
