import { createPublicKey, verify, type KeyObject } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Logger } from "pino";
import { z } from "zod";
import { FleetError, type ApprovalRequest, type Clock, type OutboxRecord } from "../protocol/index.js";
import { approvalText, isDecidable, NOT_ALLOWED_TEXT, PROPOSAL_ID, type ApprovalChannel, type ApprovalDecisions } from "./approval-bridge.js";

/**
 * Approvals in a Discord channel, without a Discord library: requests are posted through the REST API with two buttons,
 * and Discord delivers each press to our interactions endpoint, signed with the application's Ed25519 key. An unsigned
 * or stale request is refused before anything is parsed.
 */

export interface DiscordApprovalsOptions {
  botToken: string;
  /** the application's public key, 64 hex characters */
  publicKey: string;
  channelId: string;
  /** e.g. https://discord.com/api/v10 */
  apiBase: string;
  /** where the interactions endpoint listens (0: any free port) */
  port: number;
  host: string;
  decisions: ApprovalDecisions;
  clock: Clock;
  log: Logger;
  /** the approval channel name (default "discord") */
  channel?: string;
  maxBodyBytes?: number;
}

/** Discord's own advice: refuse signed requests older than this, so a captured one cannot be replayed later */
const MAX_CLOCK_SKEW_S = 300;
// the DER header of an Ed25519 SubjectPublicKeyInfo; the raw 32-byte key follows it
const ED25519_SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");
const EPHEMERAL = 64;

const DiscordUser = z.object({ id: z.string().regex(/^\d{1,20}$/) });
const Interaction = z.discriminatedUnion("type", [
  z.object({ type: z.literal(1) }),
  z.object({
    type: z.literal(3),
    data: z.object({ custom_id: z.string().max(100) }),
    /** in a server channel the presser is the member's user, in a DM the user */
    member: z.object({ user: DiscordUser }).optional(),
    user: DiscordUser.optional(),
    message: z.object({ content: z.string() }).optional(),
  }),
]);
type ComponentPress = Extract<z.infer<typeof Interaction>, { type: 3 }>;

const RateLimited = z.object({ retry_after: z.number().nonnegative() });

/** The button ids: `approve:<id>` / `reject:<id>` (Discord allows 100 characters; a proposal id has at most 64). */
export function discordButtonId(decision: "approve" | "reject", proposalId: string): string {
  if (!PROPOSAL_ID.test(proposalId)) throw new FleetError("MESSAGE_INVALID", `"${proposalId.slice(0, 80)}" is not a proposal id: no buttons can name it`);
  return `${decision}:${proposalId}`;
}

export function parseDiscordButtonId(customId: string): { decision: "approve" | "reject"; proposalId: string } | undefined {
  const match = /^(approve|reject):([A-Za-z0-9_-]{1,64})$/.exec(customId);
  return match ? { decision: match[1] === "approve" ? "approve" : "reject", proposalId: match[2]! } : undefined;
}

/** The application's hex public key as a key object, refused at start when it cannot be one. */
export function discordPublicKey(hex: string): KeyObject {
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new FleetError("CONFIG_INVALID", "the Discord public key must be 64 hex characters (the application's \"Public Key\")");
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, Buffer.from(hex, "hex")]), format: "der", type: "spki" });
}

export class DiscordApprovals implements ApprovalChannel {
  readonly channel: string;
  private readonly key: KeyObject;
  private readonly log: Logger;
  private server: Server | undefined;

  constructor(private readonly options: DiscordApprovalsOptions) {
    this.channel = options.channel ?? "discord";
    this.key = discordPublicKey(options.publicKey);
    this.log = options.log.child({ component: "discord" });
  }

  async post(request: ApprovalRequest, signal: AbortSignal): Promise<void> {
    const body = {
      content: approvalText(request),
      // the text carries an agent's words: no @everyone or role pings through it
      allowed_mentions: { parse: [] },
      ...(isDecidable(request)
        ? {
            components: [
              {
                type: 1,
                components: [
                  { type: 2, style: 3, label: "Approve", custom_id: discordButtonId("approve", request.proposalId) },
                  { type: 2, style: 4, label: "Reject", custom_id: discordButtonId("reject", request.proposalId) },
                ],
              },
            ],
          }
        : {}),
    };
    await this.postMessage(this.options.channelId, body, signal);
  }

  /**
   * Delivers an OUTBOX message (a cron job's report, a channel_post) as the chat's ChannelSender: to `to` when it is a
   * Discord channel id, else to the configured channel.
   */
  async send(record: OutboxRecord, signal: AbortSignal): Promise<void> {
    const channelId = /^\d{5,}$/.test(record.to) ? record.to : this.options.channelId;
    await this.postMessage(channelId, { content: record.text, allowed_mentions: { parse: [] } }, signal);
  }

  private async postMessage(channelId: string, body: unknown, signal: AbortSignal): Promise<void> {
    let res: Response;
    try {
      res = await fetch(`${this.options.apiBase.replace(/\/+$/, "")}/channels/${encodeURIComponent(channelId)}/messages`, {
        method: "POST",
        headers: { authorization: `Bot ${this.options.botToken}`, "content-type": "application/json", "user-agent": "DiscordBot (natsfleet, 0.1)" },
        body: JSON.stringify(body),
        signal,
      });
    } catch (err) {
      throw new FleetError("INTERNAL", `Discord did not answer: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    const text = await res.text().catch(() => "");
    if (res.ok) return;
    if (res.status === 429) {
      const retryAfterS = retryAfterOf(text, res.headers.get("retry-after"));
      throw new FleetError("INTERNAL", `Discord rate limit: retry after ${retryAfterS ?? "?"} s`, retryAfterS === undefined ? {} : { retryAfterMs: Math.ceil(retryAfterS * 1000) });
    }
    throw new FleetError("INTERNAL", `Discord answered ${res.status}: ${text.slice(0, 300)}`);
  }

  /** Starts the interactions endpoint; resolves with the port it listens on. */
  async start(): Promise<number> {
    const server = createServer((req, res) => void this.handle(req, res));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.options.port, this.options.host, resolve);
    });
    const address = server.address();
    const port = typeof address === "object" && address ? address.port : this.options.port;
    this.log.info({ host: this.options.host, port }, "interactions endpoint listening");
    return port;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
    });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== "POST" || (req.url ?? "").split("?")[0] !== "/interactions") return reply(res, 404, { error: "POST /interactions" });
    const body = await readBody(req, this.options.maxBodyBytes ?? 64 * 1024);
    if (!body) return reply(res, 413, { error: "body too large" });
    const refused = this.checkSignature(req, body);
    if (refused) {
      this.log.warn({ reason: refused }, "interaction refused");
      return reply(res, 401, { error: "invalid request signature" });
    }
    let json: unknown;
    try {
      json = JSON.parse(body.toString("utf8"));
    } catch {
      return reply(res, 400, { error: "body is not JSON" });
    }
    const parsed = Interaction.safeParse(json);
    if (!parsed.success) return reply(res, 400, { error: "not an interaction this endpoint handles" });
    const interaction = parsed.data;
    if (interaction.type === 1) return reply(res, 200, { type: 1 });
    return reply(res, 200, await this.onPress(interaction));
  }

  /** Why the request is not Discord's, or undefined when its signature verifies over timestamp + body. */
  private checkSignature(req: IncomingMessage, body: Buffer): string | undefined {
    const signature = req.headers["x-signature-ed25519"];
    const timestamp = req.headers["x-signature-timestamp"];
    if (typeof signature !== "string" || !/^[0-9a-fA-F]{128}$/.test(signature)) return "missing or malformed X-Signature-Ed25519";
    if (typeof timestamp !== "string" || !/^\d{1,12}$/.test(timestamp)) return "missing or malformed X-Signature-Timestamp";
    if (Math.abs(this.options.clock.now() / 1000 - Number(timestamp)) > MAX_CLOCK_SKEW_S) return "timestamp more than 5 minutes away";
    try {
      return verify(null, Buffer.concat([Buffer.from(timestamp, "utf8"), body]), this.key, Buffer.from(signature, "hex")) ? undefined : "signature does not verify";
    } catch {
      return "signature does not verify";
    }
  }

  private async onPress(press: ComponentPress): Promise<unknown> {
    const button = parseDiscordButtonId(press.data.custom_id);
    const by = press.member?.user.id ?? press.user?.id;
    if (!button || !by) return ephemeral("This button is not one of the approval bridge's.");
    try {
      await this.options.decisions.decide({ proposalId: button.proposalId, decision: button.decision, by });
    } catch (err) {
      if (err instanceof FleetError && err.code === "APPROVER_NOT_ALLOWED") return ephemeral(NOT_ALLOWED_TEXT);
      this.log.error({ err, proposalId: button.proposalId, by }, "decision not recorded");
      return ephemeral("The decision could not be recorded; please try again.");
    }
    // a double click lands here twice and answers the same update twice: the decision itself was recorded once
    const line = button.decision === "approve" ? `✅ approved by <@${by}>` : `❌ rejected by <@${by}>`;
    const content = press.message ? `${press.message.content}\n${line}` : line;
    return { type: 7, data: { content: content.slice(0, 2000), components: [], allowed_mentions: { parse: [] } } };
  }
}

function ephemeral(content: string): unknown {
  return { type: 4, data: { content, flags: EPHEMERAL } };
}

/** Discord puts retry_after (seconds, fractional) in the JSON body; the Retry-After header is the fallback. */
function retryAfterOf(body: string, header: string | null): number | undefined {
  try {
    const parsed = RateLimited.safeParse(JSON.parse(body));
    if (parsed.success) return parsed.data.retry_after;
  } catch {
    // not JSON: use the header
  }
  const seconds = Number(header);
  return header !== null && Number.isFinite(seconds) && seconds >= 0 ? seconds : undefined;
}

async function readBody(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buf.length;
    if (size > max) return undefined;
    chunks.push(buf);
  }
  return Buffer.concat(chunks);
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}
