import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino } from "pino";
import { z } from "zod";
import { ApprovalBridge, ApprovalDecisions, approvalText, NOT_ALLOWED_TEXT } from "../../bridges/approval-bridge.js";
import { DiscordApprovals } from "../../bridges/discord-bridge.js";
import { ApprovalDecision, ApprovalRequest, connectNats, decode, encode, ensureFleetResources, FleetNames, HEADERS, wireHeaders } from "../../protocol/index.js";
import { discordKeys, FakeDiscord, sendInteraction } from "../helpers/fake-discord.js";
import { NatsServer } from "../helpers/nats-server.js";
import { waitFor } from "../helpers/wait.js";

const log = pino({ level: "silent" });
const BOT_TOKEN = "discord-bot-token";
const CHANNEL_ID = "1100223344";
const ADA = "80351110224678912";
const MALLORY = "80351110224678999";
const HOUR = 3600_000;

function requestOf(proposalId: string, overrides: Partial<ApprovalRequest> = {}): ApprovalRequest {
  const at = Date.now();
  return {
    proposalId,
    kind: "request",
    agentId: "mira",
    tool: "deploy_release",
    risk: "CONFIRM",
    summary: "release v2.4.0 to production @everyone",
    reason: "the release passed staging",
    expiresAt: at + 24 * HOUR,
    at,
    ...overrides,
  };
}

/** A button press as Discord sends it: from a server member, or (dm) from a user in a direct message. */
function pressOf(customId: string, userId: string, content: string, options: { dm?: boolean } = {}) {
  return {
    type: 3,
    id: "1200000000000000001",
    application_id: "1300000000000000001",
    token: "interaction-token",
    version: 1,
    data: { custom_id: customId, component_type: 2 },
    ...(options.dm ? { user: { id: userId, username: "ada" } } : { guild_id: "1400", member: { user: { id: userId, username: "ada" }, roles: [] } }),
    message: { id: "1500", channel_id: CHANNEL_ID, content, components: [] },
  };
}

describe("Discord approvals", () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let prefixes = 0;
  before(async () => {
    server = await NatsServer.start();
    nc = await connectNats({ servers: server.url, name: "discord-bridge-test" });
  });
  after(async () => {
    await nc.close();
    await server.stop();
  });

  /** A fleet of its own (JSON codec), a fake Discord API, the interactions endpoint and the bridge. */
  async function fixture(options: { maxAttempts?: number; retryDelayMs?: (n: number) => number } = {}) {
    const names = new FleetNames(`dc${++prefixes}`);
    const { jsm } = await ensureFleetResources(nc, names);
    const js = jetstream(nc);
    const fake = new FakeDiscord(BOT_TOKEN);
    const apiBase = await fake.start();
    const keys = discordKeys();
    const clock = { now: () => Date.now() };
    const decisions = new ApprovalDecisions({ js, names, codec: "json", approvers: [ADA], via: "discord", clock, log });
    const discord = new DiscordApprovals({ botToken: BOT_TOKEN, publicKey: keys.publicKeyHex, channelId: CHANNEL_ID, apiBase, port: 0, host: "127.0.0.1", decisions, clock, log });
    const endpoint = `http://127.0.0.1:${await discord.start()}/interactions`;
    const bridge = new ApprovalBridge({ js, jsm, names, channel: discord, codec: "json", clock, log, ...options });
    await bridge.start();
    return {
      names,
      jsm,
      fake,
      keys,
      endpoint,
      publish: async (request: ApprovalRequest) =>
        void (await js.publish(names.approvalRequest("discord"), encode(request, "json"), { headers: wireHeaders("json") })),
      posted: (proposalId: string) => waitFor(`the post for ${proposalId}`, () => fake.posted.find((p) => JSON.stringify(p.body).includes(`Proposal: ${proposalId}`)), 10_000),
      interact: (interaction: unknown, opts?: Parameters<typeof sendInteraction>[3]) => sendInteraction(endpoint, interaction, keys.privateKey, opts),
      decisionsOf: async (proposalId: string) => {
        const subject = names.approvalDecision("discord", proposalId);
        const info = await jsm.streams.info(names.stream("APPROVALS"), { subjects_filter: subject });
        return info.state.subjects?.[subject] ?? 0;
      },
      lastDecision: async (proposalId: string) => {
        const stored = await jsm.streams.getMessage(names.stream("APPROVALS"), { last_by_subj: names.approvalDecision("discord", proposalId) });
        assert.ok(stored, `a decision for ${proposalId}`);
        assert.equal(stored.header.get(HEADERS.contentType), "application/json");
        const decoded = decode(ApprovalDecision, stored.data, { codec: "json" });
        assert.ok(decoded.ok);
        return decoded.value;
      },
      close: async () => {
        await discord.stop();
        await bridge.stop();
        await fake.stop();
      },
    };
  }

  it("posts a request to the channel with Approve and Reject buttons, and an expiry notice without", async () => {
    const t = await fixture();
    try {
      const request = requestOf("d-post-1");
      await t.publish(request);
      const post = await t.posted("d-post-1");
      assert.equal(post.channelId, CHANNEL_ID);
      assert.equal(post.authorization, `Bot ${BOT_TOKEN}`);
      assert.deepEqual(post.body, {
        content: approvalText(request),
        allowed_mentions: { parse: [] },
        components: [
          {
            type: 1,
            components: [
              { type: 2, style: 3, label: "Approve", custom_id: "approve:d-post-1" },
              { type: 2, style: 4, label: "Reject", custom_id: "reject:d-post-1" },
            ],
          },
        ],
      });
      await t.publish(requestOf("d-post-2", { kind: "expired", expiresAt: Date.now() }));
      const notice = await t.posted("d-post-2");
      assert.equal(JSON.stringify(notice.body).includes("components"), false);
      assert.match(approvalText(requestOf("x", { kind: "escalation", expiresAt: Date.now() + 4 * HOUR })), /^ESCALATION: .*expires in 4 h/);
    } finally {
      await t.close();
    }
  });

  it("refuses a missing, wrong, tampered or stale signature with 401 and publishes nothing", async () => {
    const t = await fixture();
    try {
      const press = pressOf("approve:d-sig-1", ADA, "Approval needed");
      assert.equal((await t.interact(press, { unsigned: true })).status, 401);
      assert.equal((await t.interact(press, { tamper: true })).status, 401);
      assert.equal((await t.interact(press, { timestamp: Math.floor(Date.now() / 1000) - 301 })).status, 401);
      assert.equal((await sendInteraction(t.endpoint, press, discordKeys().privateKey)).status, 401, "signed by another application");
      assert.equal(await t.decisionsOf("d-sig-1"), 0);
      assert.equal((await t.interact(press, { timestamp: Math.floor(Date.now() / 1000) - 60 })).status, 200, "a minute old is fine");
    } finally {
      await t.close();
    }
  });

  it("answers Discord's PING with a PONG", async () => {
    const t = await fixture();
    try {
      assert.deepEqual(await t.interact({ type: 1, id: "1", application_id: "2", token: "t", version: 1 }), { status: 200, body: { type: 1 } });
      const malformed = await t.interact({ type: 3, data: { custom_id: 7 } });
      assert.equal(malformed.status, 400);
    } finally {
      await t.close();
    }
  });

  it("records an approver's signed press once and updates the message to say who decided", async () => {
    const t = await fixture();
    try {
      await t.publish(requestOf("d-press-1"));
      const original = z.object({ content: z.string() }).parse((await t.posted("d-press-1")).body).content;
      const answer = await t.interact(pressOf("approve:d-press-1", ADA, original));
      assert.equal(answer.status, 200);
      assert.deepEqual(answer.body, { type: 7, data: { content: `${original}\n✅ approved by <@${ADA}>`, components: [], allowed_mentions: { parse: [] } } });
      const decision = await t.lastDecision("d-press-1");
      assert.deepEqual({ ...decision, at: 0 }, { proposalId: "d-press-1", decision: "approve", by: ADA, via: "discord", at: 0 });

      // a double click: answered again, recorded once
      assert.equal((await t.interact(pressOf("approve:d-press-1", ADA, original))).status, 200);
      assert.equal(await t.decisionsOf("d-press-1"), 1);

      // in a direct message the presser is `user`, not `member.user`
      const dmReject = await t.interact(pressOf("reject:d-press-3", ADA, "Approval needed", { dm: true }));
      assert.deepEqual(dmReject.body, { type: 7, data: { content: `Approval needed\n❌ rejected by <@${ADA}>`, components: [], allowed_mentions: { parse: [] } } });
      assert.equal((await t.lastDecision("d-press-3")).decision, "reject");
    } finally {
      await t.close();
    }
  });

  it("tells a non-approver, privately, that they may not decide, and publishes nothing", async () => {
    const t = await fixture();
    try {
      const answer = await t.interact(pressOf("approve:d-stranger-1", MALLORY, "Approval needed"));
      assert.deepEqual(answer, { status: 200, body: { type: 4, data: { content: NOT_ALLOWED_TEXT, flags: 64 } } });
      assert.equal(await t.decisionsOf("d-stranger-1"), 0);
    } finally {
      await t.close();
    }
  });

  it("dead-letters a request Discord keeps refusing, with its reason, after the configured attempts", async () => {
    const t = await fixture({ maxAttempts: 3, retryDelayMs: () => 100 });
    try {
      t.fake.alwaysFail = { status: 500, body: { message: "500: Internal Server Error", code: 0 } };
      await t.publish(requestOf("d-dlq-1"));
      const stored = await waitFor(
        "the dead letter",
        async () => (await t.jsm.streams.getMessage(t.names.stream("DLQ"), { last_by_subj: t.names.dlq("approval-discord") }).catch(() => null)) ?? undefined,
      );
      assert.equal(t.fake.attempts, 3);
      assert.match(stored.header.get(HEADERS.dlqReason), /d-dlq-1 \(request\) could not be shown on discord after 3 attempts: Discord answered 500/);
      const original = decode(ApprovalRequest, stored.data, { codec: "json" });
      assert.ok(original.ok && original.value.proposalId === "d-dlq-1");
      await waitFor("every request acked", async () => {
        const info = await t.jsm.consumers.info(t.names.stream("APPROVALS"), "approvals-discord");
        return info.num_ack_pending === 0 && info.num_pending === 0;
      });
    } finally {
      await t.close();
    }
  });

  it("waits for a 429's retry_after before posting again", async () => {
    const t = await fixture({ retryDelayMs: () => 60_000 });
    try {
      t.fake.failNext(429, { message: "You are being rate limited.", retry_after: 0.6, global: false });
      const start = Date.now();
      await t.publish(requestOf("d-429-1"));
      const post = await t.posted("d-429-1");
      assert.equal(t.fake.attempts, 2);
      const waited = post.at - start;
      assert.ok(waited >= 550 && waited < 10_000, `waited ${waited} ms`);
    } finally {
      await t.close();
    }
  });
});
