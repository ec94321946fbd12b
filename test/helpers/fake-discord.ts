import { generateKeyPairSync, sign, type KeyObject } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";

/**
 * Discord's two sides for the approval bridge's tests: a REST server that records `POST /channels/<id>/messages` (and
 * can answer 500 or 429 when told to), and an application key pair that signs interactions the way Discord does, so a
 * test can press a button on the bridge's real endpoint.
 */

export interface PostedMessage {
  channelId: string;
  authorization: string | undefined;
  /** the JSON body as sent */
  body: unknown;
  at: number;
}

type Failure = { status: number; body: unknown };

export class FakeDiscord {
  readonly posted: PostedMessage[] = [];
  /** every POST, including the refused ones */
  attempts = 0;
  private server: Server | undefined;
  private failures: Failure[] = [];
  /** when set, every post fails with it (after the queued failures) */
  alwaysFail: Failure | undefined;

  constructor(readonly botToken: string) {}

  async start(): Promise<string> {
    const server = createServer((req, res) => void this.handle(req, res));
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    if (!address || typeof address !== "object") throw new Error("no address");
    return `http://127.0.0.1:${address.port}/api/v10`;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  /** The next post fails with this answer. */
  failNext(status: number, body: unknown = { message: "500: Internal Server Error", code: 0 }): void {
    this.failures.push({ status, body });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const match = /^\/api\/v10\/channels\/(\d+)\/messages$/.exec(req.url ?? "");
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
    if (req.method !== "POST" || !match) return send(res, 404, { message: "404: Not Found", code: 0 });
    this.attempts++;
    if (req.headers.authorization !== `Bot ${this.botToken}`) return send(res, 401, { message: "401: Unauthorized", code: 0 });
    const failure = this.failures.shift() ?? this.alwaysFail;
    if (failure) return send(res, failure.status, failure.body);
    const body: unknown = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    this.posted.push({ channelId: match[1]!, authorization: req.headers.authorization, body, at: Date.now() });
    return send(res, 200, { id: String(1_000_000 + this.posted.length), channel_id: match[1], body });
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}

/** The application's key pair: the bridge gets the raw public key as hex, as the Developer Portal shows it. */
export function discordKeys(): { publicKeyHex: string; privateKey: KeyObject } {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  // the raw key is the last 32 bytes of the DER SubjectPublicKeyInfo
  const der = publicKey.export({ format: "der", type: "spki" });
  return { publicKeyHex: der.subarray(der.length - 32).toString("hex"), privateKey };
}

/** POSTs an interaction to the bridge as Discord would: Ed25519 over timestamp + body, in the two headers. */
export async function sendInteraction(
  endpoint: string,
  interaction: unknown,
  privateKey: KeyObject,
  options: { timestamp?: number; tamper?: boolean; unsigned?: boolean } = {},
): Promise<{ status: number; body: unknown }> {
  const body = JSON.stringify(interaction);
  const timestamp = String(options.timestamp ?? Math.floor(Date.now() / 1000));
  const signature = sign(null, Buffer.from(timestamp + body), privateKey).toString("hex");
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (!options.unsigned) {
    headers["x-signature-ed25519"] = signature;
    headers["x-signature-timestamp"] = timestamp;
  }
  // a tampered request carries a valid signature of a different body
  const sent = options.tamper ? body.replace(/}$/, ',"x":1}') : body;
  const res = await fetch(endpoint, { method: "POST", headers, body: sent });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // keep the text
  }
  return { status: res.status, body: parsed };
}
