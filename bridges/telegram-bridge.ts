import { Bot, GrammyError, type Api, type Context } from "grammy";
import type { Logger } from "pino";
import { z } from "zod";
import { FleetError, type ApprovalRequest, type OutboxRecord } from "../protocol/index.js";
import { approvalText, isDecidable, NOT_ALLOWED_TEXT, PROPOSAL_ID, type ApprovalChannel, type ApprovalDecisions } from "./approval-bridge.js";

/**
 * Approvals in a Telegram chat: each request is a message with Approve / Reject buttons; a press by someone on the
 * approver list records the decision, answers the press and edits the buttons away, naming who decided. Presses come
 * in by long polling, so the bridge needs no public address.
 */

export interface TelegramApprovalsOptions {
  token: string;
  chatId: string | number;
  /** the Bot API's root (https://api.telegram.org, or a test's fake) */
  apiRoot: string;
  /** the Telegram approvers and where their decisions are recorded */
  decisions: ApprovalDecisions;
  log: Logger;
  /** the approval channel name (default "telegram") */
  channel?: string;
  /** how long one getUpdates call waits for a press, in seconds (default 30) */
  pollTimeoutSeconds?: number;
  /** polling ended for a reason of its own (a revoked token, a second bridge polling with the same token) */
  onFatal?: (err: FleetError) => void;
}


// ---------------------------------------------------------------------------------------------------------------------
// callback data: Telegram allows 1-64 bytes

const CALLBACK_DATA_MAX = 64;
const ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_";
const PACKED_PREFIX = "~";
// every printable ASCII character but space: 94 digits
const PACK_ALPHABET = Array.from({ length: 94 }, (_, i) => String.fromCharCode(0x21 + i)).join("");

type Decision = "approve" | "reject";

/**
 * `a:<id>` / `r:<id>`, readable in the Bot API's logs, for ids of up to 62 characters. The two longest ids would not fit,
 * so they are packed: the id's 6-bit characters and the decision as one number written in base 94 after a `~` (at most
 * 60 bytes). Deterministic, so a restarted bridge still understands the buttons of earlier messages.
 */
export function telegramButtonData(decision: Decision, proposalId: string): string {
  if (!PROPOSAL_ID.test(proposalId)) throw new FleetError("MESSAGE_INVALID", `"${proposalId.slice(0, 80)}" is not a proposal id: no buttons can name it`);
  const plain = `${decision === "approve" ? "a" : "r"}:${proposalId}`;
  if (plain.length <= CALLBACK_DATA_MAX) return plain;
  let n = 1n; // the leading 1 keeps the id's length (and leading "0"s)
  for (const ch of proposalId) n = n * 64n + BigInt(ID_ALPHABET.indexOf(ch));
  n = n * 2n + (decision === "approve" ? 1n : 0n);
  let out = "";
  for (; n > 0n; n /= 94n) out = PACK_ALPHABET[Number(n % 94n)] + out;
  return PACKED_PREFIX + out;
}

/** The decision and proposal a button names, or undefined for data this bridge did not make. */
export function parseTelegramButtonData(data: string): { decision: Decision; proposalId: string } | undefined {
  const plain = /^([ar]):([A-Za-z0-9_-]{1,64})$/.exec(data);
  if (plain) return { decision: plain[1] === "a" ? "approve" : "reject", proposalId: plain[2]! };
  if (!data.startsWith(PACKED_PREFIX) || data.length < 2 || data.length > CALLBACK_DATA_MAX) return undefined;
  let n = 0n;
  for (const ch of data.slice(1)) {
    const digit = PACK_ALPHABET.indexOf(ch);
    if (digit < 0) return undefined;
    n = n * 94n + BigInt(digit);
  }
  const decision: Decision = n % 2n === 1n ? "approve" : "reject";
  n /= 2n;
  let id = "";
  for (; n > 1n; n /= 64n) id = ID_ALPHABET[Number(n % 64n)] + id;
  return n === 1n && PROPOSAL_ID.test(id) ? { decision, proposalId: id } : undefined;
}

// ---------------------------------------------------------------------------------------------------------------------

/** The part of a callback query this bridge uses, checked: grammY types the update but does not validate it. */
const ButtonPress = z.object({
  id: z.string(),
  from: z.object({ id: z.number().int(), first_name: z.string(), username: z.string().optional() }),
  data: z.string(),
  message: z.object({ message_id: z.number().int(), chat: z.object({ id: z.number().int() }), text: z.string().optional() }).optional(),
});
type ButtonPress = z.infer<typeof ButtonPress>;

export class TelegramApprovals implements ApprovalChannel {
  readonly channel: string;
  private readonly bot: Bot;
  private readonly log: Logger;
  private polling: Promise<void> | undefined;
  private stopping = false;

  constructor(private readonly options: TelegramApprovalsOptions) {
    this.channel = options.channel ?? "telegram";
    this.log = options.log.child({ component: "telegram" });
    // grammY refuses a root with a trailing slash, which a URL in the config may well have
    this.bot = new Bot(options.token, { client: { apiRoot: options.apiRoot.replace(/\/+$/, "") } });
    this.bot.on("callback_query:data", (ctx) => this.onPress(ctx));
    // without a handler of our own, grammY stops polling at the first failing update
    this.bot.catch((err) => this.log.error({ err: err.error }, "button press not handled"));
  }

  async post(request: ApprovalRequest, signal: AbortSignal): Promise<void> {
    const reply_markup = isDecidable(request)
      ? {
          inline_keyboard: [
            [
              { text: "Approve", callback_data: telegramButtonData("approve", request.proposalId) },
              { text: "Reject", callback_data: telegramButtonData("reject", request.proposalId) },
            ],
          ],
        }
      : undefined;
    try {
      // plain text, no parse_mode: an agent's summary cannot smuggle in markup
      await this.bot.api.sendMessage(this.options.chatId, approvalText(request), reply_markup ? { reply_markup } : {}, grammySignal(signal));
    } catch (err) {
      throw deliveryError(err);
    }
  }

  /**
   * Delivers an OUTBOX message (a cron job's report, a channel_post) as the chat's ChannelSender: to `to` when it is a
   * chat id, else to the configured chat.
   */
  async send(record: OutboxRecord, signal: AbortSignal): Promise<void> {
    const chat = /^-?\d+$/.test(record.to) ? record.to : this.options.chatId;
    try {
      await this.bot.api.sendMessage(chat, record.text, {}, grammySignal(signal));
    } catch (err) {
      throw deliveryError(err);
    }
  }

  /** Checks the token (getMe) and starts long polling for button presses. */
  async start(): Promise<void> {
    // grammY retries network and server errors itself; what comes back is the API refusing the token
    await this.bot.init().catch((err: unknown) => {
      throw new FleetError("CONFIG_INVALID", `the Telegram Bot API refused the bot token: ${describe(err)}`, { cause: err });
    });
    this.polling = this.bot
      .start({ timeout: this.options.pollTimeoutSeconds ?? 30, allowed_updates: ["callback_query"] })
      .catch((err: unknown) => {
        if (this.stopping) return;
        this.log.error({ err }, "polling for button presses stopped");
        this.options.onFatal?.(FleetError.from(err));
      });
    this.log.info({ bot: this.bot.botInfo.username }, "polling for button presses");
  }

  /** Stops polling after confirming the updates already handled, so a restart does not see those presses again. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.bot.stop().catch((err: unknown) => this.log.warn({ err }, "polling did not stop cleanly"));
    await this.polling;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  private async onPress(ctx: Context): Promise<void> {
    const parsed = ButtonPress.safeParse(ctx.callbackQuery);
    const button = parsed.success ? parseTelegramButtonData(parsed.data.data) : undefined;
    if (!parsed.success || !button) return this.answer(ctx, "This button is not one of the approval bridge's.");
    const press = parsed.data;
    const by = String(press.from.id);
    try {
      const outcome = await this.options.decisions.decide({ proposalId: button.proposalId, decision: button.decision, by });
      const verb = button.decision === "approve" ? "Approved" : "Rejected";
      await this.answer(ctx, outcome.duplicate ? `Already ${verb.toLowerCase()}` : verb);
      // the first press already edited the message
      if (!outcome.duplicate) await this.markDecided(ctx, press, button.decision);
    } catch (err) {
      if (err instanceof FleetError && err.code === "APPROVER_NOT_ALLOWED") return this.answer(ctx, NOT_ALLOWED_TEXT, true);
      this.log.error({ err, proposalId: button.proposalId, by }, "decision not recorded");
      await this.answer(ctx, "The decision could not be recorded; please try again.", true);
    }
  }

  /** Ends the button's spinner; a press Telegram no longer wants an answer to (too old) must not stop the edit. */
  private async answer(ctx: Context, text: string, alert = false): Promise<void> {
    await ctx.answerCallbackQuery({ text, ...(alert ? { show_alert: true } : {}) }).catch((err: unknown) => this.log.warn({ err }, "button press not answered"));
  }

  /** Takes the buttons away and says who decided, in one edit. */
  private async markDecided(ctx: Context, press: ButtonPress, decision: Decision): Promise<void> {
    if (!press.message) return;
    const name = press.from.username ? `${press.from.first_name} (@${press.from.username})` : press.from.first_name;
    const line = decision === "approve" ? `✅ approved by ${name}` : `❌ rejected by ${name}`;
    const text = `${press.message.text ?? ""}\n${line}`.trim();
    await ctx.api
      .editMessageText(press.message.chat.id, press.message.message_id, text, { reply_markup: { inline_keyboard: [] } })
      .catch((err: unknown) => this.log.warn({ err }, "approval message not edited; the decision stands"));
  }
}

type GrammySignal = Parameters<Api["sendMessage"]>[3];

/**
 * grammY's Node typings name the abort-controller polyfill's AbortSignal; at run time grammY only reads `aborted` and
 * adds and removes an "abort" listener, which Node's own AbortSignal has. Our own value, not external data.
 */
function grammySignal(signal: AbortSignal): GrammySignal {
  return signal as unknown as GrammySignal;
}

/** A refused send as the bridge understands it: with the API's retry-after when it was rate limited. */
function deliveryError(err: unknown): FleetError {
  if (err instanceof FleetError) return err;
  if (err instanceof GrammyError && err.error_code === 429 && err.parameters.retry_after !== undefined) {
    return new FleetError("INTERNAL", `Telegram rate limit: ${err.description}`, { cause: err, retryAfterMs: err.parameters.retry_after * 1000 });
  }
  return new FleetError("INTERNAL", `Telegram refused the message: ${describe(err)}`, { cause: err });
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
