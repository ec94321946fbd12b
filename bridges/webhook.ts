import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { randomUUID, timingSafeEqual } from "node:crypto";
import type { JetStreamClient } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import { deadLetter, decodeUnknown, encode, eventOf, wireHeaders, type Clock, type CodecName, type FleetError, type FleetNames } from "../protocol/index.js";

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
  /** `POST /event/<source>`: events are stored in EVENTS through JetStream, refused bodies in the DLQ */
  js: JetStreamClient;
  codec: CodecName;
  clock: Clock;
}

/**
 * The fleet's HTTP door for other systems.
 * - `POST /wake/<agent>` publishes the body on `fleet.wake.<agent>`, and the agent runs a cycle now, so work is picked up
 *   when it appears instead of by polling. The body is passed on as a hint and never interpreted here.
 * - `POST /event/<source>` with a JSON object stores a validated FleetEvent on `fleet.event.<source>` (stream EVENTS),
 *   where Atlas plans from it or the event router hands it to the agent the config maps the source to. A body that is
 *   no event is refused with 400 and the typed error, and dead-lettered (`fleet.dlq.webhook`) like every bad input.
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
    const event = /^\/event\/([A-Za-z0-9_-]{1,64})\/?$/.exec(req.url ?? "");
    const match = /^\/wake\/([A-Za-z0-9_-]+)\/?$/.exec(req.url ?? "");
    if (req.method !== "POST" || (!match && !event)) return reply(res, 404, { error: "POST /wake/<agent> or POST /event/<source>" });
    if (this.options.token && !bearerMatches(req.headers.authorization, this.options.token)) return reply(res, 401, { error: "unauthorized" });
    if (event) return this.event(event[1]!, req, res);
    if (!match) return;
    const agentId = match[1]!;
    if (!this.options.agents.includes(agentId)) return reply(res, 404, { error: `no agent ${agentId}` });
    const body = await readBody(req, this.options.maxBodyBytes ?? 64 * 1024);
    if (!body) return reply(res, 413, { error: "body too large" });
    this.options.nc.publish(this.options.names.wake(agentId), body);
    this.options.log.info({ agentId, bytes: body.length }, "wake-up from webhook");
    return reply(res, 202, { woke: agentId });
  }

  private async event(source: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { names, codec, clock, log } = this.options;
    const body = await readBody(req, this.options.maxBodyBytes ?? 64 * 1024);
    if (!body) return reply(res, 413, { error: "body too large" });
    const subject = names.event(source);
    const json = decodeUnknown(body, "json");
    const parsed = json.ok ? eventOf(source, json.value, { id: randomUUID(), at: clock.now() }) : json;
    if (!parsed.ok) return this.refuse(subject, body, parsed.error, res);
    const ack = await this.options.js.publish(subject, encode(parsed.event, codec), { headers: wireHeaders(codec, `${source}-${parsed.event.id}`) });
    log.info({ source, eventId: parsed.event.id, seq: ack.seq, duplicate: ack.duplicate }, "event from webhook");
    return reply(res, 202, { event: parsed.event.id, source, seq: ack.seq, duplicate: ack.duplicate });
  }

  /** 400 with the typed error; the body goes to the DLQ with its reason, so a sender's mistake can be read and replayed. */
  private async refuse(subject: string, body: Uint8Array, error: FleetError, res: ServerResponse): Promise<void> {
    this.options.log.warn({ subject, code: error.code }, "event refused");
    await deadLetter(this.options.js, this.options.names, "webhook", { subject, data: body }, error).catch((err: unknown) => this.options.log.warn({ err }, "dead letter not stored"));
    return reply(res, 400, { error: error.toPayload() });
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
