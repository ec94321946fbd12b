import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jetstream, type JetStreamClient } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino } from "pino";
import { EmailBridge, OutboxDispatcher, type ChannelSender } from "../../bridges/index.js";
import { parseFleetConfig, type FleetConfig } from "../../config/index.js";
import { AgentTools, GovernanceService, policyOf, ProposalStore, referenceTools, ToolHost, type ToolDefinition } from "../../governance/index.js";
import { CALLERS, connectNats, encode, ensureFleetResources, FleetNames, ProposalRecord, requestTyped, type ApprovalDecision, type FleetResources, type OutboxRecord, type ProposalState } from "../../protocol/index.js";
import { NatsServer } from "../helpers/nats-server.js";
import { addressOf, TestSmtpServer } from "../helpers/smtp-server.js";
import { waitFor } from "../helpers/wait.js";

/*
 * Posts and emails from proposal to delivery, on a real nats-server with the real governance process, tool host and
 * reference tools: two proposals posting the same text are delivered once (channel dedup), a post breaking the
 * brand-safety policy never runs, and an approved email_send ends accepted by a real SMTP server.
 */

const PREFIX = "od";
const log = pino({ level: "silent" });

function fleetYaml(smtpPort: number): string {
  const tiers = ["nano", "workhorse", "capable", "power", "premium"].map((t) => `  ${t}: { model: offline-${t}, inputPerM: 1, outputPerM: 2 }`).join("\n");
  const agent = (id: string, layer: string, tools: string) =>
    `  - { id: ${id}, name: ${id}, role: r, layer: ${layer}, defaultTier: nano, cycleMinutes: 20, dailyCapUsd: 1, tools: ${tools}, skills: [{ id: s, name: S, description: s, tags: [s] }] }`;
  return `fleet: { name: od, prefix: ${PREFIX}, timeZone: UTC, dailyCapUsd: 10, quietHours: { start: "00:00", end: "00:00" } }
tiers:
${tiers}
agents:
${agent("atlas", "orchestration", '["*"]')}
${agent("plume", "execution", "[channel_post, email_send]")}
governance:
  approvals: { channels: [console] }
  sentinel:
    targetAllowList: ["*.localhost"]
    brandSafety:
      channels:
        "*": { blockedWords: [cheapest] }
        email: { requiredDisclaimer: "You get this because you asked for reports." }
bridges:
  email: { host: 127.0.0.1, port: ${smtpPort}, security: none, from: "Plume <plume@dcode.localhost>", timeoutSeconds: 5 }
`;
}

/** A fake of our own ChannelSender that records what it delivered. */
function recordingSender(channel: string): ChannelSender & { sent: OutboxRecord[] } {
  const sent: OutboxRecord[] = [];
  return { channel, sent, send: async (record) => void sent.push(record) };
}

describe("posts and emails from proposal to delivery", () => {
  const names = new FleetNames(PREFIX);
  let nats: NatsServer;
  let smtp: TestSmtpServer;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let resources: FleetResources;
  let config: FleetConfig;
  let host: ToolHost;
  let governance: GovernanceService;
  let store: ProposalStore;
  let agents: Record<"atlas" | "plume", AgentTools>;
  let chat: ReturnType<typeof recordingSender>;
  let dispatcher: OutboxDispatcher;
  let email: EmailBridge;

  const until = async (id: string, states: ProposalState[]): Promise<ProposalRecord> =>
    waitFor(`proposal ${id} to reach ${states.join(" or ")}`, async () => {
      const record = (await store.get(id))?.record;
      return record && states.includes(record.state) ? record : undefined;
    }, 15_000);

  before(async () => {
    nats = await NatsServer.start();
    smtp = await TestSmtpServer.start();
    nc = await connectNats({ servers: nats.url, name: "outbox-delivery-test", longLived: false });
    resources = await ensureFleetResources(nc, names);
    js = jetstream(nc);
    config = parseFleetConfig(fleetYaml(smtp.port), "outbox-delivery.yaml");
    const tools: ToolDefinition[] = referenceTools({ js, names, codec: "msgpack", config });
    host = new ToolHost({ nc, js, names, codec: "msgpack", config, tools, kv: { proposals: resources.kv.proposals, toolruns: resources.kv.toolruns }, host: "test", log });
    await host.start();
    governance = new GovernanceService({
      nc, js, jsm: resources.jsm, names, codec: "msgpack", config, proposalsKv: resources.kv.proposals, tools, policy: policyOf(config),
      budgetOf: async () => ({ spentUsd: 0, capUsd: 1 }), log, tickMs: 0, toolTimeoutMs: 5_000,
    });
    await governance.start();
    store = new ProposalStore(resources.kv.proposals, js, names, "msgpack");
    const risks = new Map(tools.map((t) => [t.name, t.risk]));
    const agentTools = (agentId: string) => new AgentTools({ nc, js, names, codec: "msgpack", agentId, allowed: config.agents.find((a) => a.id === agentId)!.tools, risks, clock: { now: () => Date.now() } });
    agents = { atlas: agentTools("atlas"), plume: agentTools("plume") };
    chat = recordingSender("telegram");
    const clock = { now: () => Date.now() };
    dispatcher = new OutboxDispatcher({ js, jsm: resources.jsm, names, sender: chat, principals: [], timeZone: "UTC", clock, log });
    await dispatcher.start();
    email = new EmailBridge({
      js, jsm: resources.jsm, names, codec: "msgpack", config: config.bridges.email!, password: undefined, deliveries: resources.kv.deliveries,
      principals: [], timeZone: "UTC", clock, log, host: "test",
    });
    await email.start();
  });

  after(async () => {
    await email?.stop();
    await dispatcher?.stop();
    await governance?.stop();
    await host?.stop();
    await nc?.close();
    await smtp?.stop();
    await nats?.stop();
  });

  it("the same text to the same channel and recipient from two proposals is delivered once; the second proposal completes, saying so", async () => {
    const post = { channel: "telegram", to: "-100200", text: "Our spring release is out: faster builds for every site." };
    const first = await agents.plume.propose({ tool: "channel_post", input: post, reason: "announce the release" });
    const firstDone = await until(first, ["completed"]);
    // another agent, another proposal, the same words to the same chat
    const second = await agents.atlas.propose({ tool: "channel_post", input: post, reason: "make sure it is announced" });
    const secondDone = await until(second, ["completed"]);
    assert.notEqual(first, second);
    assert.deepEqual([firstDone.output, secondDone.output].map((o) => (o as { duplicate: boolean }).duplicate), [false, true]);
    assert.match(JSON.stringify(secondDone.output), /already accepted within the OUTBOX's 4 h window/);
    await waitFor("the post delivered", () => chat.sent.length > 0);
    // the same text to someone else is another message
    const other = await agents.plume.propose({ tool: "channel_post", input: { ...post, to: "-100300" }, reason: "the other chat too" });
    await until(other, ["completed"]);
    await waitFor("the post to the other chat", () => chat.sent.some((r) => r.to === "-100300"));
    await waitFor("the dispatcher to settle", async () => (await resources.jsm.consumers.info(names.stream("OUTBOX"), "outbox-telegram")).num_ack_pending === 0);
    assert.deepEqual(chat.sent.map((r) => r.to).sort(), ["-100200", "-100300"], "one delivery per recipient");
    assert.equal(chat.sent.find((r) => r.to === "-100200")?.source.proposalId, first, "the first proposal's post is the one delivered");

    // rolling back the duplicate retracts nothing: the post that went out is the first proposal's
    const rolled = await requestTyped(nc, names.governance("rollback"), { proposalId: second, by: "op" }, ProposalRecord, { codec: "msgpack", timeoutMs: 10_000 });
    assert.equal(rolled.state, "rolled_back");
    const posts = await resources.jsm.streams.info(names.stream("OUTBOX"), { subjects_filter: names.outbox("telegram") });
    assert.equal(posts.state.subjects?.[names.outbox("telegram")], 2, "no retraction posted");
  });

  it("a post that breaks the brand-safety policy is rejected by Sentinel, naming the rule and the word, and never posted", async () => {
    const before = chat.sent.length;
    const id = await agents.plume.propose({ tool: "channel_post", input: { channel: "telegram", text: "We are the CHEAPEST hosting in town" }, reason: "promo" });
    const rejected = await until(id, ["rejected"]);
    assert.equal(rejected.verdict?.rejectedBy?.rule, "brand_safety");
    assert.match(rejected.verdict!.rejectedBy!.reason, /blocked word "cheapest" in text \(brand-safety policy of channel telegram\)/);
    assert.equal(chat.sent.length, before);
  });

  it("an approved email_send ends with the message accepted by the SMTP server: from, to, subject and body read back", async () => {
    const body = "Signups are up 12 % this week.\n\nYou get this because you asked for reports.";
    const id = await agents.plume.propose({ tool: "email_send", input: { to: "ops@mail.localhost", subject: "Weekly numbers", body }, reason: "the weekly report" });
    await until(id, ["awaiting_human"]);
    assert.equal(smtp.received.length, 0, "nothing goes out before a person approves");
    const decision: ApprovalDecision = { proposalId: id, decision: "approve", by: "operator", via: CALLERS.operator, at: Date.now() };
    await js.publish(names.approvalDecision(CALLERS.operator, id), encode(decision));
    await until(id, ["completed"]);
    const mail = await waitFor("the email at the SMTP server", () => smtp.received.find((m) => m.parsed.subject === "Weekly numbers"));
    assert.equal(addressOf(mail.parsed.from), "plume@dcode.localhost");
    assert.equal(addressOf(mail.parsed.to), "ops@mail.localhost");
    assert.equal(mail.parsed.text?.trim(), body);
    assert.equal(mail.parsed.headers.get("x-fleet-proposal"), id);
    assert.equal(smtp.received.length, 1);
  });

  it("an email without the email channel's required disclaimer is rejected before a person is asked", async () => {
    const id = await agents.plume.propose({ tool: "email_send", input: { to: "ops@mail.localhost", subject: "Quick note", body: "Numbers attached." }, reason: "a note" });
    const rejected = await until(id, ["rejected", "awaiting_human"]);
    assert.equal(rejected.state, "rejected");
    assert.equal(rejected.verdict?.rejectedBy?.rule, "brand_safety");
    assert.match(rejected.verdict!.rejectedBy!.reason, /the required disclaimer "You get this because you asked for reports\." is missing from body \(brand-safety policy of channel email\)/);
  });
});
