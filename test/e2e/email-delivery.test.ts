import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { appendFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { connectNats, encode, FleetNames, HEADERS, outboxMessageId, wireHeaders, type OutboxRecord } from "../../protocol/index.js";
import type { ProcessSupervisor } from "../../supervisor/index.js";
import { agentSpec, CLI, startProcesses, writeTestFleet } from "../helpers/fleet-processes.js";
import { NatsServer } from "../helpers/nats-server.js";
import { runFleet } from "../helpers/run-cli.js";
import { addressOf, TestSmtpServer, type SmtpVerdict } from "../helpers/smtp-server.js";
import { waitFor } from "../helpers/wait.js";

/**
 * The README's email example as an operator runs it, ending at a real SMTP server: `fleet send --tool email_send`,
 * `fleet approve`, and `fleet run bridge email` sending the approved message. Then the bridge process killed while the
 * server holds the message, and every message handed out again: nothing is sent twice.
 */

const PREFIX = "maile2e";

describe("email from proposal to SMTP server, with real processes", () => {
  let nats: NatsServer;
  let smtp: TestSmtpServer;
  let fleet: { file: string; cleanup: () => void };
  let processes: ProcessSupervisor;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let bridge: ChildProcess | undefined;
  const names = new FleetNames(PREFIX);
  const cli = (...args: string[]) => runFleet([...args, "--config", fleet.file, "--nats", nats.url, "--prefix", PREFIX], { timeoutMs: 30_000 });

  /** `fleet run bridge email` as its own process, outside any supervisor, so a test can kill it and keep it down. */
  const startBridge = (): ChildProcess => {
    const env = { ...process.env };
    delete env.NATS_URL;
    const child = spawn(process.execPath, [CLI, "run", "bridge", "email", "--config", fleet.file, "--nats", nats.url, "--prefix", PREFIX, "--supervised", "--log-level", "warn"], {
      env,
      stdio: ["pipe", "ignore", "inherit"],
    });
    bridge = child;
    return child;
  };
  const kill = async (child: ChildProcess): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    child.kill("SIGKILL");
    await exited;
  };
  const settled = () =>
    waitFor("every OUTBOX email acked", async () => {
      const info = await jsm.consumers.info(names.stream("OUTBOX"), "outbox-email").catch(() => undefined);
      return info && info.num_pending === 0 && info.num_ack_pending === 0 ? info : undefined;
    }, 30_000);
  /** What a lost ack amounts to (the server would hand the message out again after the 60 s ack wait): every message again. */
  const redeliverEverything = () => jsm.consumers.delete(names.stream("OUTBOX"), "outbox-email");

  before(async () => {
    nats = await NatsServer.start();
    smtp = await TestSmtpServer.start();
    fleet = writeTestFleet({ prefix: PREFIX });
    // a send silent for 4 × 1 s is taken for lost: the test need not wait the default 2 minutes
    appendFileSync(fleet.file, `bridges:\n  email: { host: 127.0.0.1, port: ${smtp.port}, security: none, from: "Atlas <atlas@dcode.localhost>", timeoutSeconds: 1 }\n`);
    const common = ["--config", fleet.file, "--nats", nats.url, "--supervised", "--log-level", "warn"];
    processes = startProcesses([
      { id: "tools", command: process.execPath, args: [CLI, "run", "tools", ...common], restart: "permanent" },
      { id: "governance", command: process.execPath, args: [CLI, "run", "governance", ...common], restart: "permanent" },
      agentSpec("atlas", fleet.file, nats.url),
    ]);
    await processes.start();
    nc = await connectNats({ servers: nats.url, name: "email-e2e", longLived: false });
    await waitFor("atlas up", async () => (await cli("status", "--json")).stdout.includes('"atlas"'), 30_000);
    jsm = await jetstreamManager(nc);
    startBridge();
  });

  after(async () => {
    if (bridge) await kill(bridge);
    await processes?.stop();
    await nc?.close();
    await smtp?.stop();
    await nats?.stop();
    fleet?.cleanup();
  });

  it("an approved email_send is accepted by the SMTP server: from, to, subject and body as proposed", async () => {
    const sent = await cli("send", "atlas", "--tool", "email_send", "--input", JSON.stringify({ to: "ops@mail.localhost", subject: "hi", body: "numbers" }), "--reason", "ops asked");
    assert.equal(sent.code, 0, sent.stderr + sent.stdout);
    const id = /proposal (\S+) submitted/.exec(sent.stdout)?.[1];
    assert.ok(id, sent.stdout);
    await waitFor("awaiting a human", async () => JSON.parse((await cli("proposals", id, "--json")).stdout).state === "awaiting_human", 15_000);
    assert.equal(smtp.offered, 0, "nothing is sent before a person approves");
    const approved = await cli("approve", id);
    assert.equal(approved.code, 0, approved.stderr + approved.stdout);
    const mail = await waitFor("the email at the SMTP server", () => smtp.received.find((m) => m.parsed.subject === "hi"), 30_000);
    assert.equal(addressOf(mail.parsed.from), "atlas@dcode.localhost");
    assert.equal(addressOf(mail.parsed.to), "ops@mail.localhost");
    assert.equal(mail.parsed.text?.trim(), "numbers");
    assert.equal(mail.parsed.headers.get("x-fleet-proposal"), id);
    assert.equal(JSON.parse((await cli("proposals", id, "--json")).stdout).state, "completed");
    await settled();
  });

  it("a bridge killed while the server takes the message does not send it again: the message goes to the DLQ as DELIVERY_OUTCOME_UNKNOWN", async () => {
    const first = bridge!;
    // the server has the whole message; the bridge dies before it hears "250" (before it can record or ack anything)
    smtp.respond = async (_n, raw): Promise<SmtpVerdict> => {
      if (raw.includes("Subject: Killed mid-send")) await kill(first);
      return "accept";
    };
    const offered = smtp.offered;
    const message = { channel: "email", to: "ops@mail.localhost", subject: "Killed mid-send", text: "Sent once, whatever happens." };
    const id = outboxMessageId(message);
    const record: OutboxRecord = { ...message, id, source: { agentId: "atlas" }, createdAt: Date.now() };
    await jetstream(nc).publish(names.outbox("email"), encode(record), { headers: wireHeaders("msgpack", id) });
    await waitFor("the server to take the message", () => smtp.received.find((m) => m.parsed.subject === "Killed mid-send"), 30_000);
    assert.ok(first.signalCode === "SIGKILL");
    smtp.respond = () => "accept";

    await redeliverEverything();
    startBridge();
    const dead = await waitFor("the dead letter", async () => {
      const m = await jsm.streams.getMessage(names.stream("DLQ"), { last_by_subj: names.dlq("outbox") }).catch(() => undefined);
      return m && m.header.get(HEADERS.dlqCode) === "DELIVERY_OUTCOME_UNKNOWN" ? m : undefined;
    }, 30_000);
    assert.match(dead.header.get(HEADERS.dlqReason), /a send of this message to SMTP server 127\.0\.0\.1:\d+ started and its bridge stopped .* it is not sent again/);
    await settled();
    assert.deepEqual(smtp.offeredSubjects.slice(offered), ["Killed mid-send"], "offered once, and the approved email of the first test not again");
  });

  it("a bridge killed after its sends were recorded sends none of them again when every message is handed out again", async () => {
    const offered = smtp.offered;
    await kill(bridge!);
    await redeliverEverything();
    startBridge();
    await waitFor("the new bridge to take the messages", async () => {
      const info = await jsm.consumers.info(names.stream("OUTBOX"), "outbox-email").catch(() => undefined);
      return info && info.delivered.consumer_seq >= 2 ? info : undefined;
    }, 30_000);
    await settled();
    assert.equal(smtp.offered, offered, "nothing offered to the SMTP server again");
    assert.equal(smtp.received.length, 2, "the approved email and the one killed mid-send, once each");
  });
});
