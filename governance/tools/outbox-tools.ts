import type { JetStreamClient } from "@nats-io/jetstream";
import { z } from "zod";
import { encode, wireHeaders, type CodecName, type FleetNames, type OutboxRecord } from "../../protocol/index.js";
import { defineTool, type ToolContext, type ToolDefinition } from "../tool.js";

/*
 * Tools whose effect is a message to people, put on the OUTBOX for a bridge to deliver. The call's idempotency key is the
 * message id, so a repeated call inside the OUTBOX duplicate window is stored once, whatever the tool host's own records say.
 */

export interface OutboxToolDeps {
  js: JetStreamClient;
  names: FleetNames;
  codec: CodecName;
}

const Channel = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "must be a channel name (letters, digits, '-' or '_')");

async function post(deps: OutboxToolDeps, ctx: ToolContext, message: { channel: string; to: string; text: string }, msgId: string | undefined) {
  const record: OutboxRecord = { ...message, source: { agentId: ctx.agentId }, createdAt: ctx.now() };
  const ack = await deps.js.publish(deps.names.outbox(message.channel), encode(record, deps.codec), { headers: wireHeaders(deps.codec, msgId) });
  return { channel: message.channel, to: message.to, seq: ack.seq, duplicate: ack.duplicate };
}

/** PROPOSE: a post to a channel, undone by a retraction posted to the same channel (a chat message cannot be unsent). */
export function channelPost(deps: OutboxToolDeps): ToolDefinition {
  return defineTool({
    name: "channel_post",
    description: "Post a message to a channel (console, telegram, discord, ...) through the OUTBOX; undone by posting a retraction.",
    risk: "PROPOSE",
    input: z.strictObject({
      channel: Channel,
      text: z.string().min(1).max(4000),
      /** the recipient on the channel; "*" is the channel's own audience */
      to: z.string().min(1).max(200).default("*"),
    }),
    handler: (input, ctx) => post(deps, ctx, input, ctx.idempotencyKey),
    rollback: (input, _output, ctx) =>
      post(deps, ctx, { channel: input.channel, to: input.to, text: `Retracted: ${input.text}` }, ctx.idempotencyKey ? `${ctx.idempotencyKey}.retraction` : undefined),
  });
}

/** CONFIRM: an email cannot be taken back, so a person approves each one. */
export function emailSend(deps: OutboxToolDeps): ToolDefinition {
  return defineTool({
    name: "email_send",
    description: "Send an email (to, subject, body) through the OUTBOX's email channel. Irreversible: a person approves it first.",
    risk: "CONFIRM",
    input: z.strictObject({
      to: z.email(),
      subject: z.string().min(1).max(200),
      body: z.string().min(1).max(20_000),
    }),
    personalDataFields: ["to"],
    targetFields: ["to"],
    // OutboxRecord has one text: the subject travels as its first line, as a mail bridge expects it
    handler: (input, ctx) => post(deps, ctx, { channel: "email", to: input.to, text: `Subject: ${input.subject}\n\n${input.body}` }, ctx.idempotencyKey),
  });
}
