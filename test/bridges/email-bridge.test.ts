import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { jetstream, type JetStreamClient } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino } from "pino";
import { EmailBridge, mailOf, smtpError, smtpTransport } from "../../bridges/index.js";
import { EmailBridgeConfig } from "../../config/index.js";
import { ToolRunRecord } from "../../governance/index.js";
import { connectNats, decode, encode, ensureFleetResources, FleetError, FleetNames, HEADERS, outboxMessageId, wireHeaders, OutboxRecord, type FleetResources } from "../../protocol/index.js";
import { NatsServer } from "../helpers/nats-server.js";
import { addressOf, TestSmtpServer } from "../helpers/smtp-server.js";
import { waitFor } from "../helpers/wait.js";

/*
 * The email bridge against a real SMTP server (smtp-server on a free port, messages read back with mailparser) and a real
 * nats-server: what the server receives, a temporary refusal retried, a permanent one dead-lettered with the server's
 * answer, and a message already sent that is handed out again without a second send.
 */

const log = pino({ level: "silent" });
const names = new FleetNames("mail");

describe("email bridge", () => {
  let nats: NatsServer;
  let smtp: TestSmtpServer;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let resources: FleetResources;
  let bridge: EmailBridge | undefined;
  let seq = 0;

  const settings = () => EmailBridgeConfig.parse({ host: "127.0.0.1", port: smtp.port, security: "none", from: "Fleet Ops <fleet@ops.localhost>", timeoutSeconds: 5 });

  async function startBridge(): Promise<EmailBridge> {
    bridge = new EmailBridge({
      js, jsm: resources.jsm, names, codec: "msgpack", config: settings(), password: undefined, deliveries: resources.kv.deliveries,
      principals: [], timeZone: "UTC", clock: { now: () => Date.now() }, log, host: "test",
      // test-sized backoff: the second delivery 200 ms after a refusal
      retryDelayMs: () => 200,
    });
    await bridge.start();
    return bridge;
  }

  /** An email as email_send puts it on the OUTBOX: its content hash as the message id. */
  async function publishEmail(to: string, subject: string, text: string): Promise<OutboxRecord> {
    const id = outboxMessageId({ channel: "email", to, subject, text });
    const record: OutboxRecord = { channel: "email", to, subject, text, id, source: { agentId: "plume", proposalId: `p-${++seq}` }, createdAt: Date.parse("2026-11-23T10:00:00Z") + seq };
    await js.publish(names.outbox("email"), encode(record), { headers: wireHeaders("msgpack", id) });
    return record;
  }

  const consumerSettled = () =>
    waitFor("every OUTBOX email acked", async () => {
      const info = await resources.jsm.consumers.info(names.stream("OUTBOX"), "outbox-email");
      return info.num_pending === 0 && info.num_ack_pending === 0 ? info : undefined;
    });

  before(async () => {
    nats = await NatsServer.start();
    smtp = await TestSmtpServer.start();
    nc = await connectNats({ servers: nats.url, name: "email-test", longLived: false });
    resources = await ensureFleetResources(nc, names);
    js = jetstream(nc);
  });
  after(async () => {
    await bridge?.stop();
    await nc?.close();
    await smtp?.stop();
    await nats?.stop();
  });
  beforeEach(() => {
    smtp.respond = () => "accept";
  });

  it("sends an OUTBOX email through the SMTP server and acks it once the server accepted it", async () => {
    await startBridge();
    const record = await publishEmail("ops@mail.localhost", "Weekly numbers", "Signups are up 12 %.\nDetails in the dashboard.");
    const mail = await waitFor("the message at the SMTP server", () => smtp.received.find((m) => m.parsed.subject === "Weekly numbers"));
    assert.equal(addressOf(mail.parsed.from), "fleet@ops.localhost");
    assert.equal(mail.parsed.from?.value[0]?.name, "Fleet Ops");
    assert.equal(addressOf(mail.parsed.to), "ops@mail.localhost");
    assert.deepEqual(mail.envelope, { from: "fleet@ops.localhost", to: ["ops@mail.localhost"] });
    assert.equal(mail.parsed.text?.trim(), "Signups are up 12 %.\nDetails in the dashboard.");
    // the Message-ID follows from the OUTBOX message, so it is the same on any redelivery
    assert.equal(mail.parsed.messageId, `<${record.id}.${record.createdAt}@ops.localhost>`);
    assert.equal(mail.parsed.headers.get("auto-submitted"), "auto-generated");
    assert.equal(mail.parsed.headers.get("x-fleet-agent"), "plume");
    assert.equal(mail.parsed.headers.get("x-fleet-proposal"), record.source.proposalId);
    await consumerSettled();
    // the send is recorded, with the server's answer
    const keys: string[] = [];
    for await (const key of await resources.kv.deliveries.keys()) keys.push(key);
    assert.equal(keys.length, 1);
    assert.match(keys[0]!, /^email\.run\.[0-9a-f]{32}$/);
    const stored = decode(ToolRunRecord, (await resources.kv.deliveries.get(keys[0]!))!.value);
    assert.ok(stored.ok && stored.value.state === "done");
    assert.match(JSON.stringify(stored.value.output), /250/);
  });

  it("retries a temporary refusal (451) and delivers the message once", async () => {
    const before = smtp.offered;
    smtp.respond = (n) => (n === before + 1 ? { code: 451, message: "4.3.0 try again later" } : "accept");
    await publishEmail("ops@mail.localhost", "Flaky server", "Delivered on the second try.");
    await waitFor("the retried delivery", () => smtp.received.find((m) => m.parsed.subject === "Flaky server"));
    await consumerSettled();
    assert.equal(smtp.offered, before + 2, "refused once, accepted once");
    assert.equal(smtp.received.filter((m) => m.parsed.subject === "Flaky server").length, 1);
  });

  it("dead-letters a permanent refusal (550) with the server's answer, without retrying it", async () => {
    const before = smtp.offered;
    smtp.respond = () => ({ code: 550, message: "5.1.1 mailbox unavailable" });
    await publishEmail("nobody@mail.localhost", "Bounce", "Nobody reads this.");
    const dead = await waitFor("the dead letter", async () => {
      const m = await resources.jsm.streams.getMessage(names.stream("DLQ"), { last_by_subj: names.dlq("outbox") }).catch(() => undefined);
      return m ?? undefined;
    });
    assert.equal(dead.header.get(HEADERS.dlqCode), "DELIVERY_REFUSED");
    assert.match(dead.header.get(HEADERS.dlqReason), /email\/nobody@mail\.localhost: SMTP server 127\.0\.0\.1:\d+ refused the message for good .*550 5\.1\.1 mailbox unavailable/);
    assert.equal(dead.header.get(HEADERS.dlqSubject), names.outbox("email"));
    const original = decode(OutboxRecord, dead.data);
    assert.ok(original.ok && original.value.subject === "Bounce", "the original record is kept for a person to resend");
    await consumerSettled();
    assert.equal(smtp.offered, before + 1, "offered once: a 5xx is not retried");
  });

  it("a message handed out again after it was sent (its ack lost) is not sent twice", async () => {
    await publishEmail("ops@mail.localhost", "Once only", "Exactly one copy.");
    await waitFor("the first send", () => smtp.received.find((m) => m.parsed.subject === "Once only"));
    await consumerSettled();
    await bridge!.stop();
    const offered = smtp.offered;
    // what a lost ack amounts to: the server hands every message out again (a new durable starts from the first)
    await resources.jsm.consumers.delete(names.stream("OUTBOX"), "outbox-email");
    await startBridge();
    await consumerSettled();
    const again = smtp.offeredSubjects.slice(offered);
    // the one message never accepted (the 550 above) may be tried again; none that the server took is offered again
    assert.deepEqual(again.filter((subject) => subject !== "Bounce"), [], `offered again: ${again.join(", ")}`);
    assert.equal(smtp.received.filter((m) => m.parsed.subject === "Once only").length, 1);
    assert.equal(new Set(smtp.received.map((m) => m.parsed.messageId)).size, smtp.received.length, "every accepted message once");
  });

  it("reads the subject of a record written before OutboxRecord had one, and refuses a recipient that is no address", () => {
    const legacy = mailOf({ channel: "email", to: "ops@mail.localhost", text: "Subject: numbers\n\nthe quarter's numbers", source: { agentId: "atlas" }, createdAt: 1 }, "fleet@ops.localhost");
    assert.deepEqual([legacy.subject, legacy.text], ["numbers", "the quarter's numbers"]);
    const report = mailOf({ channel: "email", to: "ops@mail.localhost", text: "\nAll five sites up.\nNo incidents.", source: { agentId: "mira", jobId: "daily" }, createdAt: 1 }, "fleet@ops.localhost");
    assert.equal(report.subject, "All five sites up.", "a cron report's first line is its subject");
    assert.equal(report.headers["X-Fleet-Cron-Job"], "daily");
    assert.throws(
      () => mailOf({ channel: "email", to: "ops, evil@x.test", text: "x", source: { agentId: "atlas" }, createdAt: 1 }, "fleet@ops.localhost"),
      (err) => err instanceof FleetError && err.code === "DELIVERY_REFUSED",
    );
  });

  it("an unreachable server is a retryable failure, not a refusal", async () => {
    // a port that was just free: nothing listens there
    const probe = await TestSmtpServer.start();
    const port = probe.port;
    await probe.stop();
    const transport = smtpTransport(EmailBridgeConfig.parse({ host: "127.0.0.1", port, security: "none", from: "fleet@ops.localhost", timeoutSeconds: 2 }), undefined);
    try {
      const err = await transport.send({ from: "fleet@ops.localhost", to: "ops@mail.localhost", subject: "s", text: "t", messageId: "<x@ops.localhost>", headers: {} }).then(
        () => assert.fail("sent to a closed port"),
        (e: unknown) => smtpError(e, `SMTP server 127.0.0.1:${port}`),
      );
      assert.equal(err.code, "DELIVERY_FAILED");
      assert.equal(err.retryable, true);
      assert.match(err.message, /could not be reached .*ECONNECTION|ECONNREFUSED/);
    } finally {
      transport.close();
    }
  });
});

describe("bridges.email config", () => {
  it("takes the defaults, and refuses a login sent in clear to another host", () => {
    const ok = EmailBridgeConfig.parse({ host: "smtp.example.com", from: "Fleet <ops@example.com>", user: "ops" });
    assert.deepEqual([ok.security, ok.passwordEnv, ok.port], ["starttls", "SMTP_PASSWORD", undefined]);
    const clear = EmailBridgeConfig.safeParse({ host: "smtp.example.com", security: "none", from: "ops@example.com", user: "ops" });
    assert.ok(!clear.success);
    assert.deepEqual(clear.error.issues.map((i) => [i.path.join("."), /unencrypted/.test(i.message)]), [["security", true]]);
    assert.ok(EmailBridgeConfig.safeParse({ host: "127.0.0.1", security: "none", from: "ops@example.com", user: "ops" }).success, "a local relay may");
    const badFrom = EmailBridgeConfig.safeParse({ host: "h", from: "not an address" });
    assert.ok(!badFrom.success && badFrom.error.issues[0]?.path[0] === "from");
    const typo = EmailBridgeConfig.safeParse({ host: "h", from: "a@b.test", passwrdEnv: "X" });
    assert.ok(!typo.success && /did you mean "passwordEnv"/.test(typo.error.issues[0]!.message), JSON.stringify(typo.error?.issues));
  });
});
