import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import nodemailer from "nodemailer";
import type { Logger } from "pino";
import type { EmailBridgeConfig, PrincipalConfig } from "../config/index.js";
import { toolRunKey, ToolRuns } from "../governance/index.js";
import { EMAIL_CHANNEL, FleetError, type Clock, type CodecName, type FleetNames, type OutboxRecord } from "../protocol/index.js";
import { deliveryId, mailOf, smtpError, type MailReceipt, type OutgoingMail } from "./email-message.js";
import { OutboxDispatcher, type ChannelSender } from "./outbox-dispatcher.js";

/**
 * The email bridge: OUTBOX messages on `fleet.outbox.email` sent through an SMTP server, each acked only after the server
 * accepted it. Every send is claimed in KV `deliveries` first (the tool host's at-most-once records, keyed by the OUTBOX
 * message), so a redelivered message that was sent is acked without a second send, one whose send is still running
 * elsewhere waits, and one whose send started and never reported back is not sent again (DELIVERY_OUTCOME_UNKNOWN, to
 * the DLQ for a person to check): an email cannot be taken back, so "maybe twice" is worse than "ask".
 */

/** How the bridge talks to a mail server: nodemailer over SMTP in production; the interface is ours. */
export interface MailTransport {
  send(mail: OutgoingMail): Promise<MailReceipt>;
  close(): void;
}

/** Port by security when the config names none: the ports each kind of submission listens on. */
function portOf(config: EmailBridgeConfig): number {
  return config.port ?? (config.security === "tls" ? 465 : config.security === "starttls" ? 587 : 25);
}

export function smtpServerName(config: EmailBridgeConfig): string {
  return `SMTP server ${config.host}:${portOf(config)}`;
}

/** nodemailer's SMTP transport, one connection per message (nothing is held open between OUTBOX messages). */
export function smtpTransport(config: EmailBridgeConfig, password: string | undefined): MailTransport {
  const timeout = config.timeoutSeconds * 1000;
  const transporter = nodemailer.createTransport({
    host: config.host,
    port: portOf(config),
    secure: config.security === "tls",
    requireTLS: config.security === "starttls",
    ignoreTLS: config.security === "none",
    ...(config.user !== undefined ? { auth: { user: config.user, pass: password ?? "" } } : {}),
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: timeout,
  });
  return {
    async send(mail) {
      const info: unknown = await transporter.sendMail({ ...mail });
      return receiptOf(info, mail.messageId);
    },
    close: () => transporter.close(),
  };
}

function receiptOf(info: unknown, messageId: string): MailReceipt {
  const field = (name: string): unknown => (typeof info === "object" && info !== null ? Reflect.get(info, name) : undefined);
  const strings = (value: unknown): string[] => (Array.isArray(value) ? value.map(String) : []);
  const response = field("response");
  return { messageId, response: typeof response === "string" ? response : "", accepted: strings(field("accepted")), rejected: strings(field("rejected")) };
}

export interface EmailSenderOptions {
  transport: MailTransport;
  /** the From of every message */
  from: string;
  /** KV `deliveries`: what was sent, by OUTBOX message */
  deliveries: KV;
  codec: CodecName;
  /** names the bridge in its records ("which bridge was sending when it stopped") */
  host: string;
  clock: Clock;
  log: Logger;
  /** for messages and reasons: "SMTP server smtp.example.com:587" */
  server: string;
  /**
   * How long one send may take before a redelivery treats it as lost (default 2 min). Too short costs a dead letter for
   * a message that was sent after all, never a second send.
   */
  sendMs?: number;
}

/** The email channel's ChannelSender: one claimed, recorded SMTP send per OUTBOX message. */
export class EmailSender implements ChannelSender {
  readonly channel = EMAIL_CHANNEL;
  private readonly runs: ToolRuns;
  private readonly log: Logger;

  constructor(private readonly options: EmailSenderOptions) {
    this.runs = new ToolRuns(options.deliveries, options.codec, options.host, () => options.clock.now());
    this.log = options.log.child({ component: "email" });
  }

  async send(record: OutboxRecord): Promise<void> {
    const mail = mailOf(record, this.options.from);
    const id = deliveryId(record);
    const claim = await this.claim(id);
    if (claim.kind === "done") {
      this.log.info({ messageId: mail.messageId, to: mail.to }, "already sent: not sent again");
      return;
    }
    let receipt: MailReceipt;
    try {
      receipt = await this.options.transport.send(mail);
    } catch (err) {
      const error = smtpError(err, this.options.server);
      // the server said no (or was not there): nothing went out, so a later delivery may try again
      await this.runs.finish(claim, { ok: false, error }).catch((recordErr: unknown) => this.log.warn({ err: recordErr }, "failed send not recorded"));
      throw error;
    }
    try {
      await this.runs.finish(claim, { ok: true, output: receipt, durationMs: this.options.clock.now() - claim.startedAt });
    } catch (err) {
      // sent all the same: the message is acked, and only a redelivery of it would meet the unfinished claim
      this.log.error({ err, messageId: mail.messageId }, "sent, but the record of it could not be written");
    }
    this.log.info({ messageId: mail.messageId, to: mail.to, response: receipt.response }, "accepted by the SMTP server");
  }

  private async claim(id: string) {
    try {
      return await this.runs.claim(EMAIL_CHANNEL, "run", id, "governance", this.options.sendMs ?? 120_000);
    } catch (err) {
      if (!(err instanceof FleetError)) throw err;
      if (err.code === "TOOL_IN_PROGRESS") {
        throw new FleetError("DELIVERY_FAILED", `this message is being sent by another email bridge right now`, { cause: err, ...(err.retryAfterMs !== undefined ? { retryAfterMs: err.retryAfterMs } : {}) });
      }
      if (err.code === "TOOL_OUTCOME_UNKNOWN") {
        throw new FleetError(
          "DELIVERY_OUTCOME_UNKNOWN",
          `a send of this message to ${this.options.server} started and its bridge stopped before the server's answer was recorded; it may have been accepted, so it is not sent again (to send it anyway: delete key ${toolRunKey(EMAIL_CHANNEL, "run", id, "governance")} of KV deliveries and republish it)`,
          { cause: err },
        );
      }
      throw err;
    }
  }
}

export interface EmailBridgeOptions {
  js: JetStreamClient;
  jsm: JetStreamManager;
  names: FleetNames;
  codec: CodecName;
  config: EmailBridgeConfig;
  /** the SMTP password, read from `config.passwordEnv` by the caller (undefined without a login) */
  password: string | undefined;
  deliveries: KV;
  principals: readonly PrincipalConfig[];
  timeZone: string;
  clock: Clock;
  log: Logger;
  host: string;
  /** a transport of one's own instead of SMTP with the config's settings */
  transport?: MailTransport;
  maxAttempts?: number;
  retryDelayMs?: (failures: number) => number;
}

/** The email channel's OUTBOX dispatcher, with its own durable (`outbox-email`) and its SMTP transport. */
export class EmailBridge {
  private readonly transport: MailTransport;
  private readonly dispatcher: OutboxDispatcher;

  constructor(options: EmailBridgeOptions) {
    const server = smtpServerName(options.config);
    this.transport = options.transport ?? smtpTransport(options.config, options.password);
    const sender = new EmailSender({
      transport: this.transport,
      from: options.config.from,
      deliveries: options.deliveries,
      codec: options.codec,
      host: options.host,
      clock: options.clock,
      log: options.log,
      server,
      // connecting, the greeting, the envelope and the data each have the timeout: a send still silent after four is lost
      sendMs: 4 * options.config.timeoutSeconds * 1000,
    });
    this.dispatcher = new OutboxDispatcher({
      js: options.js,
      jsm: options.jsm,
      names: options.names,
      sender,
      principals: options.principals,
      timeZone: options.timeZone,
      clock: options.clock,
      log: options.log,
      ...(options.maxAttempts !== undefined ? { maxAttempts: options.maxAttempts } : {}),
      ...(options.retryDelayMs ? { retryDelayMs: options.retryDelayMs } : {}),
    });
  }

  async start(): Promise<void> {
    await this.dispatcher.start();
  }

  async stop(): Promise<void> {
    await this.dispatcher.stop();
    this.transport.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
