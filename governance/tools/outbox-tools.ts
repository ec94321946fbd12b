import type { JetStreamClient } from "@nats-io/jetstream";
import { z } from "zod";
import { EMAIL_CHANNEL, encode, outboxMessageId, wireHeaders, type CodecName, type FleetNames, type OutboxRecord } from "../../protocol/index.js";
import { defineTool, type ToolContext, type ToolDefinition } from "../tool.js";

/*
 * Tools whose effect is a message to people, put on the OUTBOX for a bridge to deliver. The message id is the hash of
 * channel, recipient and content (outboxMessageId), so within the OUTBOX's 4 h duplicate window the same text to the same
 * recipient is stored once, whichever proposal (or cron job) produced it: a second proposal still completes, and its
 * output says `duplicate: true`. A re-run of the same proposal is kept from a second effect by the tool host's records.
 */

export interface OutboxToolDeps {
  js: JetStreamClient;
  names: FleetNames;
  codec: CodecName;
}

const Channel = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "must be a channel name (letters, digits, '-' or '_')");

interface Outgoing {
  channel: string;
  to: string;
  text: string;
  subject?: string;
}

async function post(deps: OutboxToolDeps, ctx: ToolContext, message: Outgoing) {
  const id = outboxMessageId(message);
  const source = { agentId: ctx.agentId, ...(ctx.proposalId ? { proposalId: ctx.proposalId } : {}) };
  const record: OutboxRecord = { ...message, id, source, createdAt: ctx.now() };
  const ack = await deps.js.publish(deps.names.outbox(message.channel), encode(record, deps.codec), { headers: wireHeaders(deps.codec, id) });
  return {
    channel: message.channel,
    to: message.to,
    seq: ack.seq,
    messageId: id,
    duplicate: ack.duplicate,
    ...(ack.duplicate ? { note: "the same message to the same recipient was already accepted within the OUTBOX's 4 h window: it goes out once" } : {}),
  };
}

/** The part of a post's recorded output its rollback reads. */
const PostOutput = z.object({ duplicate: z.boolean() });

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
    message: { channel: { field: "channel" }, textFields: ["text"], bodyField: "text" },
    handler: (input, ctx) => post(deps, ctx, input),
    rollback: async (input, output, ctx) => {
      // a post the OUTBOX kept as a duplicate went out under another proposal: retracting it is not this one's to do
      if (PostOutput.safeParse(output).data?.duplicate === true) return { retracted: false, reason: "this proposal's post was a duplicate of one already accepted: it posted nothing to retract" };
      return post(deps, ctx, { channel: input.channel, to: input.to, text: `Retracted: ${input.text}` });
    },
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
    message: { channel: EMAIL_CHANNEL, textFields: ["subject", "body"], bodyField: "body" },
    handler: (input, ctx) => post(deps, ctx, { channel: EMAIL_CHANNEL, to: input.to, subject: input.subject, text: input.body }),
  });
}
