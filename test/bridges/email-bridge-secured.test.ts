import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { pino } from "pino";
import { EmailBridge } from "../../bridges/index.js";
import { encode, FleetNames, isPermissionViolation, openFleetResources, outboxMessageId, wireHeaders, type OutboxRecord } from "../../protocol/index.js";
import { refusals, startSecuredServer, type SecuredServer } from "../helpers/governed-fleet.js";
import { TestSmtpServer } from "../helpers/smtp-server.js";
import { waitFor } from "../helpers/wait.js";

/*
 * The email bridge under the identity `fleet up` gives it, on a nats-server enforcing the generated permissions: it
 * delivers without a single refusal, and the broker refuses it what it was not given.
 */

describe("the email bridge on a secured fleet", () => {
  const names = new FleetNames("fleet");
  let secured: SecuredServer;
  let smtp: TestSmtpServer;
  let bridge: EmailBridge | undefined;

  before(async () => {
    smtp = await TestSmtpServer.start();
    secured = await startSecuredServer(names, {
      extraYaml: `bridges:\n  email: { host: 127.0.0.1, port: ${smtp.port}, security: none, from: "fleet@ops.localhost", timeoutSeconds: 5 }\n`,
    });
  });
  after(async () => {
    await bridge?.stop();
    await secured?.stop();
    await smtp?.stop();
  });

  it("delivers an OUTBOX email as bridge:email without a refusal; other keys and decisions are refused", async () => {
    const nc = await secured.as("bridge:email");
    const seen = refusals(nc);
    const resources = await openFleetResources(nc, names, { create: false });
    const config = secured.fleet.config;
    bridge = new EmailBridge({
      js: jetstream(nc), jsm: await jetstreamManager(nc), names, codec: config.fleet.codec, config: config.bridges.email!, password: undefined,
      deliveries: resources.kv.deliveries, principals: config.principals, timeZone: config.fleet.timeZone, clock: { now: () => Date.now() },
      log: pino({ level: "silent" }), host: "test",
    });
    await bridge.start();
    const message = { channel: "email", to: "ops@mail.localhost", subject: "Secured", text: "Through the broker's permissions." };
    const id = outboxMessageId(message);
    const record: OutboxRecord = { ...message, id, source: { agentId: "atlas" }, createdAt: Date.now() };
    // the tool host puts it there in production; the operator stands in for it
    await jetstream(secured.operator).publish(names.outbox("email"), encode(record), { headers: wireHeaders("msgpack", id) });
    await waitFor("the email at the SMTP server", () => smtp.received.find((m) => m.parsed.subject === "Secured"));
    await waitFor("the message acked", async () => (await (await jetstreamManager(secured.operator)).consumers.info(names.stream("OUTBOX"), "outbox-email")).num_ack_pending === 0);
    assert.deepEqual(seen, [], "no refusal while delivering");

    await assert.rejects(resources.kv.deliveries.put("telegram.run.x", new Uint8Array([1])), (err) => isPermissionViolation(err), "another channel's keys");
    await assert.rejects(jetstream(nc).publish(names.approvalDecision("email", "p-1"), new Uint8Array([1])), (err) => isPermissionViolation(err), "no decisions");
  });
});
