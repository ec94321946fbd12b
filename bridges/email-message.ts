import { z } from "zod";
import { mailboxAddress } from "../config/index.js";
import { FleetError, outboxMessageId, type OutboxRecord } from "../protocol/index.js";

/**
 * An OUTBOX record as an email, and an SMTP failure as the bridge understands it. Pure: the same record always gives the
 * same message, Message-ID included, so a message sent twice by accident would carry one id a mail system can fold.
 */

export interface OutgoingMail {
  from: string;
  to: string;
  subject: string;
  text: string;
  /** `<…@domain>`, from the record: the same OUTBOX message always has the same id */
  messageId: string;
  headers: Record<string, string>;
}

/** What the server said when it took the message. */
export interface MailReceipt {
  messageId: string;
  /** the server's final reply, e.g. "250 OK: queued as 4F2A" */
  response: string;
  accepted: string[];
  rejected: string[];
}

/** A line of a legacy record's text that carried the subject (`Subject: …`, then a blank line, then the body). */
const LEGACY_SUBJECT = /^Subject: ([^\r\n]*)\r?\n\r?\n/;
const SUBJECT_MAX = 200;

/**
 * The one id of an OUTBOX message, stable across redeliveries: its content id (its Nats-Msg-Id) and when it was made.
 * The time tells apart two messages with the same content that the stream took more than its 4 h window apart.
 */
export function deliveryId(record: OutboxRecord): string {
  return `${record.id ?? outboxMessageId(record)}.${record.createdAt}`;
}

export function mailOf(record: OutboxRecord, from: string): OutgoingMail {
  const to = mailboxAddress(record.to);
  if (to === undefined || to !== record.to.trim()) {
    throw new FleetError("DELIVERY_REFUSED", `"${record.to.slice(0, 200)}" is not an email address`);
  }
  const legacy = record.subject === undefined ? LEGACY_SUBJECT.exec(record.text) : null;
  const text = legacy ? record.text.slice(legacy[0].length) : record.text;
  const subject = clip(record.subject ?? legacy?.[1] ?? firstLine(text) ?? `Message from ${record.source.agentId}`, SUBJECT_MAX);
  const domain = mailboxAddress(from)?.split("@")[1] ?? "natsfleet.invalid";
  const headers: Record<string, string> = {
    // RFC 3834: sent by a program, so auto-responders do not answer it into a loop
    "Auto-Submitted": "auto-generated",
    "X-Fleet-Agent": record.source.agentId,
  };
  if (record.source.proposalId) headers["X-Fleet-Proposal"] = record.source.proposalId;
  if (record.source.jobId) headers["X-Fleet-Cron-Job"] = record.source.jobId;
  return { from, to, subject, text, messageId: `<${deliveryId(record)}@${domain}>`, headers };
}

function firstLine(text: string): string | undefined {
  const line = text.split(/\r?\n/).find((l) => l.trim() !== "");
  return line?.trim();
}

function clip(text: string, max: number): string {
  const flat = text.replace(/[\r\n]+/g, " ");
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`;
}

/** The fields of a nodemailer error the bridge reads; checked, since they come from the SMTP conversation. */
const SmtpFailure = z.object({
  code: z.string().optional(),
  responseCode: z.number().int().optional(),
  response: z.string().optional(),
  command: z.string().optional(),
  message: z.string().optional(),
});

/**
 * A permanent refusal (a 5xx reply to the message or a recipient) is DELIVERY_REFUSED: sending it again would only be
 * refused again. Everything else — no connection, a timeout, a 4xx, a failed login or TLS handshake (the operator's to
 * fix, not the message's fault) — is DELIVERY_FAILED and retried.
 */
export function smtpError(err: unknown, server: string): FleetError {
  if (err instanceof FleetError) return err;
  const parsed = SmtpFailure.safeParse(err);
  const f = parsed.success ? parsed.data : {};
  const said = f.response ?? f.message ?? String(err);
  const permanent = f.responseCode !== undefined && f.responseCode >= 500 && f.code !== "EAUTH";
  if (permanent) return new FleetError("DELIVERY_REFUSED", `${server} refused the message for good${f.command ? ` at ${f.command}` : ""}: ${said}`, { cause: err });
  const why = f.responseCode !== undefined ? `answered ${said}` : `could not be reached or did not answer (${f.code ?? "error"}: ${said})`;
  return new FleetError("DELIVERY_FAILED", `${server} ${why}`, { cause: err });
}
