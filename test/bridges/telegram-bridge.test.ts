import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino } from "pino";
import { ApprovalBridge, ApprovalDecisions, NOT_ALLOWED_TEXT } from "../../bridges/approval-bridge.js";
import { parseTelegramButtonData, TelegramApprovals, telegramButtonData } from "../../bridges/telegram-bridge.js";
import { OutboxDispatcher } from "../../bridges/index.js";
import {
  ApprovalDecision,
  ApprovalRequest,
  connectNats,
  decode,
  encode,
  ensureFleetResources,
  FleetNames,
  HEADERS,
  wireHeaders,
  type OutboxRecord,
} from "../../protocol/index.js";
import { FakeTelegram, type SentMessage } from "../helpers/fake-telegram.js";
import { NatsServer } from "../helpers/nats-server.js";
import { waitFor } from "../helpers/wait.js";

const log = pino({ level: "silent" });
const TOKEN = "123456:TEST-token";
const CHAT = -1001234;
const ADA = { id: 111, first_name: "Ada", username: "ada" };
const MALLORY = { id: 999, first_name: "Mallory" };
const HOUR = 3600_000;

function requestOf(proposalId: string, overrides: Partial<ApprovalRequest> = {}): ApprovalRequest {
  const at = Date.now();
  return {
    proposalId,
    kind: "request",
    agentId: "mira",
    tool: "send_email",
    risk: "CONFIRM",
    summary: "to: ops@example.com, subject: quarterly numbers",
    reason: "the quarter closed and ops asked for the numbers",
    expiresAt: at + 24 * HOUR,
    at,
    ...overrides,
  };
}

describe("Telegram approvals", () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let prefixes = 0;
  before(async () => {
    server = await NatsServer.start();
    nc = await connectNats({ servers: server.url, name: "telegram-bridge-test" });
  });
  after(async () => {
    await nc.close();
    await server.stop();
  });

  /** A fleet of its own (prefix), a fake Bot API, the Telegram channel and the bridge reading its requests. */
  async function fixture(options: { maxAttempts?: number; retryDelayMs?: (n: number) => number } = {}) {
    const names = new FleetNames(`tg${++prefixes}`);
    const { jsm } = await ensureFleetResources(nc, names);
    const js = jetstream(nc);
    const fake = new FakeTelegram(TOKEN);
    const apiRoot = await fake.start();
    const clock = { now: () => Date.now() };
    const decisions = new ApprovalDecisions({ js, names, codec: "msgpack", approvers: ["111", "222"], via: "telegram", clock, log });
    const telegram = new TelegramApprovals({ token: TOKEN, chatId: CHAT, apiRoot: `${apiRoot}/`, decisions, log, pollTimeoutSeconds: 1 });
    await telegram.start();
    const bridge = new ApprovalBridge({ js, jsm, names, channel: telegram, codec: "msgpack", clock, log, ...options });
    await bridge.start();
    const decisionsOf = async (proposalId: string) => {
      const subject = names.approvalDecision("telegram", proposalId);
      const info = await jsm.streams.info(names.stream("APPROVALS"), { subjects_filter: subject });
      return info.state.subjects?.[subject] ?? 0;
    };
    return {
      names,
      jsm,
      js,
      telegram,
      fake,
      publish: async (request: ApprovalRequest) => void (await js.publish(names.approvalRequest("telegram"), encode(request), { headers: wireHeaders("msgpack") })),
      shown: (proposalId: string) => waitFor(`the message for ${proposalId}`, () => fake.messages.find((m) => m.text.includes(`Proposal: ${proposalId}\n`) || m.text.endsWith(`Proposal: ${proposalId}`)), 10_000),
      answerTo: (queryId: string) => waitFor(`the answer to ${queryId}`, () => fake.callsOf("answerCallbackQuery").find((c) => c.body.callback_query_id === queryId)),
      decisionsOf,
      lastDecision: async (proposalId: string) => {
        const stored = await jsm.streams.getMessage(names.stream("APPROVALS"), { last_by_subj: names.approvalDecision("telegram", proposalId) });
        assert.ok(stored, `a decision for ${proposalId}`);
        const decoded = decode(ApprovalDecision, stored.data);
        assert.ok(decoded.ok);
        return decoded.value;
      },
      deadLetter: () =>
        waitFor("the dead letter", async () => (await jsm.streams.getMessage(names.stream("DLQ"), { last_by_subj: names.dlq("approval-telegram") }).catch(() => null)) ?? undefined),
      consumerIdle: () =>
        waitFor("every request acked", async () => {
          const info = await jsm.consumers.info(names.stream("APPROVALS"), "approvals-telegram");
          return info.num_ack_pending === 0 && info.num_pending === 0;
        }),
      close: async () => {
        await telegram.stop();
        await bridge.stop();
        await fake.stop();
      },
    };
  }

  it("delivers the chat's OUTBOX messages too (a cron report): to the chat id given, else to the configured chat", async () => {
    const t = await fixture();
    const outbox = new OutboxDispatcher({ js: t.js, jsm: t.jsm, names: t.names, sender: t.telegram, principals: [], timeZone: "UTC", clock: { now: () => Date.now() }, log });
    try {
      await outbox.start();
      const record = (to: string, text: string): OutboxRecord => ({ channel: "telegram", to, text, source: { agentId: "atlas", jobId: "morning-status" }, createdAt: Date.now() });
      await t.js.publish(t.names.outbox("telegram"), encode(record("operator", "Morning status: all five sites up")));
      await t.js.publish(t.names.outbox("telegram"), encode(record("-100777", "Direct to another chat")));
      const first = await waitFor("the report", () => t.fake.messages.find((m) => m.text === "Morning status: all five sites up"), 10_000);
      const second = await waitFor("the direct one", () => t.fake.messages.find((m) => m.text === "Direct to another chat"), 10_000);
      assert.equal(String(first.chat.id), String(CHAT));
      assert.equal(String(second.chat.id), "-100777");
    } finally {
      await outbox.stop();
      await t.close();
    }
  });

  it("shows a request as a message with Approve and Reject buttons, acked once Telegram took it", async () => {
    const t = await fixture();
    try {
      const request = requestOf("p-show-1");
      await t.publish(request);
      const msg = await t.shown("p-show-1");
      assert.equal(msg.chat.id, CHAT);
      assert.equal(
        msg.text,
        [
          "Approval needed: mira proposes send_email (CONFIRM)",
          "to: ops@example.com, subject: quarterly numbers",
          "Reason: the quarter closed and ops asked for the numbers",
          "Proposal: p-show-1",
          `Expires: ${new Date(request.expiresAt).toISOString()}`,
        ].join("\n"),
      );
      assert.deepEqual(msg.reply_markup, {
        inline_keyboard: [[{ text: "Approve", callback_data: "a:p-show-1" }, { text: "Reject", callback_data: "r:p-show-1" }]],
      });
      assert.equal(t.fake.callsOf("sendMessage")[0]?.body.parse_mode, undefined, "plain text: no markup from an agent's summary");
      await t.consumerIdle();
    } finally {
      await t.close();
    }
  });

  it("records an approver's press once, answers it, and edits the buttons away naming who decided", async () => {
    const t = await fixture();
    try {
      await t.publish(requestOf("p-press-1"));
      const msg = await t.shown("p-press-1");
      const query = t.fake.press(ADA, msg, "a:p-press-1");
      const answer = await t.answerTo(query);
      assert.equal(answer.body.text, "Approved");
      assert.equal(await t.decisionsOf("p-press-1"), 1);
      const decision = await t.lastDecision("p-press-1");
      assert.equal(decision.proposalId, "p-press-1");
      assert.equal(decision.decision, "approve");
      assert.equal(decision.by, "111");
      assert.equal(decision.via, "telegram");
      const edited = await waitFor("the edited message", () => t.fake.messages.find((m): m is SentMessage => m.message_id === msg.message_id && m.text.includes("approved by")));
      assert.ok(edited.text.endsWith("\n✅ approved by Ada (@ada)"), edited.text);
      assert.deepEqual(edited.reply_markup, { inline_keyboard: [] });

      // Reject from another message works the same way
      await t.publish(requestOf("p-press-2"));
      const second = await t.shown("p-press-2");
      await t.answerTo(t.fake.press(ADA, second, "r:p-press-2"));
      assert.equal((await t.lastDecision("p-press-2")).decision, "reject");
    } finally {
      await t.close();
    }
  });

  it("refuses a press by someone not on the approver list and publishes nothing", async () => {
    const t = await fixture();
    try {
      await t.publish(requestOf("p-stranger-1"));
      const msg = await t.shown("p-stranger-1");
      const answer = await t.answerTo(t.fake.press(MALLORY, msg, "a:p-stranger-1"));
      assert.equal(answer.body.text, NOT_ALLOWED_TEXT);
      assert.equal(answer.body.show_alert, true);
      assert.equal(await t.decisionsOf("p-stranger-1"), 0);
      assert.ok(msg.reply_markup, "the buttons stay for a real approver");
      assert.equal(t.fake.callsOf("editMessageText").length, 0);
    } finally {
      await t.close();
    }
  });

  it("records a double press once", async () => {
    const t = await fixture();
    try {
      await t.publish(requestOf("p-double-1"));
      const msg = await t.shown("p-double-1");
      const first = t.fake.press(ADA, msg, "a:p-double-1");
      const second = t.fake.press(ADA, msg, "a:p-double-1");
      assert.equal((await t.answerTo(first)).body.text, "Approved");
      assert.equal((await t.answerTo(second)).body.text, "Already approved");
      assert.equal(await t.decisionsOf("p-double-1"), 1);
      assert.equal(t.fake.callsOf("editMessageText").length, 1);
    } finally {
      await t.close();
    }
  });

  it("words reminders and escalations as such, and sends the expiry notice without buttons", async () => {
    const t = await fixture();
    try {
      const at = Date.now();
      await t.publish(requestOf("p-kinds-1", { kind: "reminder", at, expiresAt: at + 12 * HOUR }));
      await t.publish(requestOf("p-kinds-2", { kind: "escalation", at, expiresAt: at + 4 * HOUR }));
      await t.publish(requestOf("p-kinds-3", { kind: "expired", at, expiresAt: at }));
      const reminder = await t.shown("p-kinds-1");
      assert.match(reminder.text, /^Reminder: mira proposes send_email \(CONFIRM\)/);
      assert.ok(reminder.reply_markup);
      const escalation = await t.shown("p-kinds-2");
      assert.match(escalation.text, /^ESCALATION: mira proposes send_email \(CONFIRM\), expires in 4 h\n/);
      assert.ok(escalation.reply_markup);
      const expired = await t.shown("p-kinds-3");
      assert.match(expired.text, /^Expired: mira's proposal send_email \(CONFIRM\) was not decided in time/);
      assert.equal(expired.reply_markup, undefined);
      await t.consumerIdle();
    } finally {
      await t.close();
    }
  });

  it("does not show a request already past its expiry (a new bridge reading old history)", async () => {
    const t = await fixture();
    try {
      await t.publish(requestOf("p-stale-1", { at: Date.now() - 30 * HOUR, expiresAt: Date.now() - 6 * HOUR }));
      await t.publish(requestOf("p-fresh-1"));
      await t.shown("p-fresh-1");
      await t.consumerIdle();
      assert.ok(!t.fake.messages.some((m) => m.text.includes("p-stale-1")));
    } finally {
      await t.close();
    }
  });

  it("dead-letters a request Telegram keeps refusing, with its reason, after the configured attempts", async () => {
    const t = await fixture({ maxAttempts: 3, retryDelayMs: () => 100 });
    try {
      t.fake.failSends = Infinity;
      await t.publish(requestOf("p-dlq-1"));
      const stored = await t.deadLetter();
      assert.equal(t.fake.callsOf("sendMessage").length, 3);
      const reason = stored.header.get(HEADERS.dlqReason);
      assert.match(reason, /p-dlq-1 \(request\) could not be shown on telegram after 3 attempts/);
      assert.match(reason, /500/);
      assert.equal(stored.header.get(HEADERS.dlqSubject), t.names.approvalRequest("telegram"));
      const original = decode(ApprovalRequest, stored.data);
      assert.ok(original.ok && original.value.proposalId === "p-dlq-1", "the original request's bytes");
      await t.consumerIdle();
    } finally {
      await t.close();
    }
  });

  it("waits as long as a 429 says before trying again", async () => {
    const t = await fixture({ retryDelayMs: () => 60_000 });
    try {
      t.fake.failSends = 1;
      t.fake.sendFailure = { status: 429, description: "Too Many Requests: retry after 1", retryAfter: 1 };
      await t.publish(requestOf("p-429-1"));
      await t.shown("p-429-1");
      const [refused, accepted] = t.fake.callsOf("sendMessage");
      const waited = accepted!.at - refused!.at;
      assert.ok(waited >= 900 && waited < 10_000, `waited ${waited} ms`);
    } finally {
      await t.close();
    }
  });

  it("dead-letters bytes that are not an approval request at once", async () => {
    const t = await fixture();
    try {
      await jetstream(nc).publish(t.names.approvalRequest("telegram"), new Uint8Array([0xc1, 0x00]));
      const stored = await t.deadLetter();
      assert.equal(stored.header.get(HEADERS.dlqCode), "MESSAGE_MALFORMED");
      assert.equal(t.fake.callsOf("sendMessage").length, 0);
    } finally {
      await t.close();
    }
  });

  it("fits the buttons of the longest proposal ids into Telegram's 64 bytes", async () => {
    const longest = "Z".repeat(10) + "-_0".repeat(10) + "abcdefghijklmnopqrstuvwx";
    assert.equal(longest.length, 64);
    for (const id of ["0", "000", "a", "p-1", "x".repeat(62), "x".repeat(63), longest, "0".repeat(64), "_".repeat(64)]) {
      for (const decision of ["approve", "reject"] as const) {
        const data = telegramButtonData(decision, id);
        assert.ok(Buffer.byteLength(data) <= 64, `${id}: ${data.length} bytes`);
        assert.deepEqual(parseTelegramButtonData(data), { decision, proposalId: id });
      }
    }
    assert.equal(parseTelegramButtonData("a:has.dot"), undefined);
    assert.equal(parseTelegramButtonData("~"), undefined);

    const t = await fixture();
    try {
      await t.publish(requestOf(longest));
      const msg = await t.shown(longest);
      const query = t.fake.press(ADA, msg, telegramButtonData("approve", longest));
      assert.equal((await t.answerTo(query)).body.text, "Approved");
      assert.equal((await t.lastDecision(longest)).proposalId, longest);
    } finally {
      await t.close();
    }
  });
});
