import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { timingSafeEqual } from "node:crypto";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import type { FleetNames } from "../protocol/index.js";

export interface WakeWebhookOptions {
  nc: NatsConnection;
  names: FleetNames;
  /** agents that may be woken this way; anything else is 404 */
  agents: readonly string[];
  /** when set, callers must send `Authorization: Bearer <token>` */
  token?: string | undefined;
  port: number;
  host?: string;
  log: Logger;
  /** the most of a request body that is passed on (the rest is refused with 413) */
  maxBodyBytes?: number;
}

/**
 * Turns an inbound HTTP event into a wake-up: `POST /wake/<agent>` publishes the body on `fleet.wake.<agent>`, and the
 * agent runs a cycle now, so work is picked up when it appears instead of by polling. The body is passed on as a hint
 * and never interpreted here.
 */
export class WakeWebhook {
  private server: Server | undefined;

  constructor(private readonly options: WakeWebhookOptions) {}

  async start(): Promise<number> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(this.options.port, this.options.host ?? "127.0.0.1", resolve));
    const address = this.server.address();
    const port = typeof address === "object" && address ? address.port : this.options.port;
    this.options.log.info({ port }, "wake webhook listening");
    return port;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const match = /^\/wake\/([A-Za-z0-9_-]+)\/?$/.exec(req.url ?? "");
    if (req.method !== "POST" || !match) return reply(res, 404, { error: "POST /wake/<agent>" });
    if (this.options.token && !bearerMatches(req.headers.authorization, this.options.token)) return reply(res, 401, { error: "unauthorized" });
    const agentId = match[1]!;
    if (!this.options.agents.includes(agentId)) return reply(res, 404, { error: `no agent ${agentId}` });
    const body = await readBody(req, this.options.maxBodyBytes ?? 64 * 1024);
    if (!body) return reply(res, 413, { error: "body too large" });
    this.options.nc.publish(this.options.names.wake(agentId), body);
    this.options.log.info({ agentId, bytes: body.length }, "wake-up from webhook");
    return reply(res, 202, { woke: agentId });
  }
}

function bearerMatches(header: string | undefined, token: string): boolean {
  const given = Buffer.from(header?.startsWith("Bearer ") ? header.slice(7) : "");
  const expected = Buffer.from(token);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

async function readBody(req: IncomingMessage, max: number): Promise<Uint8Array | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > max) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}
