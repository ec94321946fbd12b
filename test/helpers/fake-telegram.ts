import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";

/**
 * A Bot API server for one bot, enough for the approval bridge: getMe, deleteWebhook, getUpdates (a long poll that
 * answers as soon as an update is queued), sendMessage, answerCallbackQuery, editMessageText and editMessageReplyMarkup.
 * It records every call; `press` queues a callback_query as if a person had pressed a button of a sent message.
 */

export interface TelegramCall {
  method: string;
  body: Record<string, unknown>;
  at: number;
}

export interface SentMessage {
  message_id: number;
  chat: { id: number; type: "supergroup"; title: string };
  date: number;
  text: string;
  /** as the bridge sent it; tests compare it whole */
  reply_markup?: unknown;
}

export interface TelegramUser {
  id: number;
  first_name: string;
  username?: string;
}

type Failure = { status: number; description: string; retryAfter?: number };

export class FakeTelegram {
  readonly calls: TelegramCall[] = [];
  readonly messages: SentMessage[] = [];
  private server: Server | undefined;
  private updates: Array<{ update_id: number } & Record<string, unknown>> = [];
  private nextUpdateId = 1;
  private nextMessageId = 100;
  private nextQueryId = 1;
  private waiters = new Set<() => void>();
  /** sendMessage fails this many more times (Infinity: always) with `sendFailure` */
  failSends = 0;
  sendFailure: Failure = { status: 500, description: "Internal Server Error" };

  constructor(readonly token: string) {}

  async start(): Promise<string> {
    const server = createServer((req, res) => void this.handle(req, res));
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    if (!address || typeof address !== "object") throw new Error("no address");
    return `http://127.0.0.1:${address.port}`;
  }

  async stop(): Promise<void> {
    for (const wake of this.waiters) wake();
    const server = this.server;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  callsOf(method: string): TelegramCall[] {
    return this.calls.filter((c) => c.method === method);
  }

  /** Queues the press of a button on a message this server sent; returns the callback query id. */
  press(from: TelegramUser, message: SentMessage, callbackData: string): string {
    const id = `q${this.nextQueryId++}`;
    this.updates.push({
      update_id: this.nextUpdateId++,
      callback_query: { id, from: { is_bot: false, ...from }, message, chat_instance: "42", data: callbackData },
    });
    for (const wake of this.waiters) wake();
    return id;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const match = /^\/bot([^/]+)\/(\w+)$/.exec(req.url ?? "");
    if (!match || match[1] !== this.token) return send(res, 404, { ok: false, error_code: 404, description: "Not Found" });
    const method = match[2]!;
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
    const raw = Buffer.concat(chunks).toString("utf8");
    const parsed: unknown = raw ? JSON.parse(raw) : {};
    const body: Record<string, unknown> = parsed && typeof parsed === "object" ? { ...parsed } : {};
    this.calls.push({ method, body, at: Date.now() });
    const ok = (result: unknown) => send(res, 200, { ok: true, result });
    switch (method) {
      case "getMe":
        return ok({ id: 4242, is_bot: true, first_name: "Fleet approvals", username: "fleet_approvals_bot", can_join_groups: true, can_read_all_group_messages: false, supports_inline_queries: false });
      case "deleteWebhook":
        return ok(true);
      case "getUpdates":
        return ok(await this.getUpdates(body));
      case "sendMessage": {
        if (this.failSends > 0) {
          this.failSends--;
          const f = this.sendFailure;
          return send(res, f.status, { ok: false, error_code: f.status, description: f.description, ...(f.retryAfter !== undefined ? { parameters: { retry_after: f.retryAfter } } : {}) });
        }
        const message: SentMessage = {
          message_id: this.nextMessageId++,
          chat: { id: Number(body.chat_id), type: "supergroup", title: "approvals" },
          date: Math.floor(Date.now() / 1000),
          text: String(body.text),
        };
        if (body.reply_markup !== undefined) message.reply_markup = body.reply_markup;
        this.messages.push(message);
        return ok(message);
      }
      case "answerCallbackQuery":
        return ok(true);
      case "editMessageText":
      case "editMessageReplyMarkup": {
        const message = this.messages.find((m) => m.message_id === body.message_id);
        if (!message) return send(res, 400, { ok: false, error_code: 400, description: "Bad Request: message to edit not found" });
        if (typeof body.text === "string") message.text = body.text;
        // Telegram drops the keyboard when an edit comes without one
        if (body.reply_markup !== undefined) message.reply_markup = body.reply_markup;
        else delete message.reply_markup;
        return ok(message);
      }
      default:
        return send(res, 404, { ok: false, error_code: 404, description: `Not Found: method ${method}` });
    }
  }

  /** Confirms updates below `offset`, then answers with what is queued, waiting up to `timeout` (capped at 2 s). */
  private async getUpdates(body: Record<string, unknown>): Promise<unknown[]> {
    const offset = typeof body.offset === "number" ? body.offset : 0;
    this.updates = this.updates.filter((u) => u.update_id >= offset);
    const timeoutS = typeof body.timeout === "number" ? body.timeout : 0;
    if (this.updates.length === 0 && timeoutS > 0) {
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, Math.min(timeoutS, 2) * 1000);
        this.waiters.add(wake);
      });
    }
    const limit = typeof body.limit === "number" ? body.limit : 100;
    return this.updates.slice(0, limit);
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.writableEnded || res.destroyed) return;
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}
