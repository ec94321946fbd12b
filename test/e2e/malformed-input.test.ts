import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import type { StoredMsg } from "@nats-io/jetstream";
import { type MsgHdrs } from "@nats-io/nats-core";
import {
  CONTENT_TYPES,
  ERROR_CATALOGUE,
  HEADERS,
  OPERATION_NAMES,
  Task,
  codecForContentType,
  decode,
  encode,
  replySchema,
  wireHeaders,
  type ErrorPayload,
  type FleetErrorCode,
  type TaskAssignment,
} from "../../protocol/index.js";
import type { ProcessSupervisor } from "../../supervisor/index.js";
import { FleetClient } from "../helpers/fleet-client.js";
import { agentSpec, routerSpec, startProcesses, writeTestFleet } from "../helpers/fleet-processes.js";
import { NatsServer } from "../helpers/nats-server.js";
import { waitFor } from "../helpers/wait.js";
import { headersWith } from "../helpers/wire-headers.js";

/**
 * Bad input on every subject an agent process listens on: the A2A operations, its TASKS consumer and its inbox. Each
 * bad message gets a typed refusal (where there is someone to reply to), is kept on the DLQ with its original bytes,
 * and costs the process nothing: it is the same process, still serving, at the end.
 */

const AGENT = "scout";
const MAX_PAYLOAD = 65536; // writeTestFleet's default

/** Never valid msgpack (an array header promising 65535 items, then 16 bytes) nor JSON (not UTF-8); unique per call. */
function garbage(): Uint8Array {
  return Buffer.concat([Buffer.from([0xdc, 0xff, 0xff]), randomBytes(16)]);
}

function sendMessageBytes(text: string): Uint8Array {
  return encode({ message: { messageId: randomUUID(), role: "ROLE_USER", parts: [{ text }] } });
}

function assertError(error: ErrorPayload, code: FleetErrorCode): void {
  assert.equal(error.code, code, `expected ${code}: ${error.message}`);
  assert.equal(error.a2aCode, ERROR_CATALOGUE[code].a2aCode);
  assert.equal(error.retryable, ERROR_CATALOGUE[code].retryable);
  assert.ok(error.message.length > 0, "the refusal says why");
}

describe("malformed input to an agent process", () => {
  let server: NatsServer;
  let fleet: ReturnType<typeof writeTestFleet>;
  let client: FleetClient;
  let procs: ProcessSupervisor;
  let pid: number;
  /** DLQ messages by stream sequence, read once each */
  const dlq = new Map<number, StoredMsg>();

  before(async () => {
    server = await NatsServer.start();
    fleet = writeTestFleet();
    // the client first: the agent then creates the streams last, with the fleet's own limits
    client = await FleetClient.connect(server.url);
    procs = startProcesses([routerSpec(fleet.file, server.url), agentSpec(AGENT, fleet.file, server.url)]);
    await procs.start();
    await client.waitAlive([AGENT]);
    pid = (await client.record(AGENT))!.pid;
  });

  after(async () => {
    await procs?.stop();
    await client?.close();
    await server?.stop();
    fleet?.cleanup();
  });

  /** Sends a request and returns the error it was refused with (a valid A2A reply, never a result). */
  async function refusal(subject: string, data: Uint8Array, headers: MsgHdrs = wireHeaders("msgpack")): Promise<ErrorPayload> {
    const reply = await client.nc.request(subject, data, { timeout: 5_000, headers });
    const codec = codecForContentType(reply.headers?.get(HEADERS.contentType) || undefined, "msgpack");
    assert.ok(codec, `the reply's Content-Type is one we speak: ${reply.headers?.get(HEADERS.contentType)}`);
    const decoded = decode(replySchema(Task), reply.data, { codec });
    assert.ok(decoded.ok, `the reply decodes as an A2A reply: ${decoded.ok ? "" : decoded.error.message}`);
    assert.ok("error" in decoded.value, "the request was refused");
    return decoded.value.error;
  }

  async function readDlq(): Promise<StoredMsg[]> {
    const stream = client.names.stream("DLQ");
    const { state } = await client.resources.jsm.streams.info(stream);
    for (let seq = Math.max(state.first_seq, 1); seq <= state.last_seq; seq++) {
      if (dlq.has(seq)) continue;
      const msg = await client.resources.jsm.streams.getMessage(stream, { seq });
      if (msg) dlq.set(seq, msg);
    }
    return [...dlq.values()];
  }

  /** Waits for the dead letter on fleet.dlq.<source> carrying exactly `data`, and checks why it says it is there. */
  async function deadLetter(source: string, data: Uint8Array, code: FleetErrorCode, subject: string, timeoutMs?: number): Promise<StoredMsg> {
    const original = Buffer.from(data);
    const msg = await waitFor(
      `a dead letter on ${client.names.dlq(source)} carrying the original ${data.length} bytes`,
      async () => (await readDlq()).find((m) => m.subject === client.names.dlq(source) && original.equals(m.data)),
      timeoutMs,
    );
    assert.equal(msg.header.get(HEADERS.dlqCode), code);
    assert.equal(msg.header.get(HEADERS.dlqSubject), subject);
    assert.ok(msg.header.get(HEADERS.dlqReason).length > 0, "the dead letter says why in a readable line");
    return msg;
  }

  describe(`A2A requests on fleet.agent.${AGENT}.a2a.*`, () => {
    it("bytes that are not msgpack: MESSAGE_MALFORMED on every operation, each dead-lettered", async () => {
      for (const op of OPERATION_NAMES) {
        const subject = client.names.agentOperation(AGENT, op);
        const data = garbage();
        assertError(await refusal(subject, data), "MESSAGE_MALFORMED");
        await deadLetter("a2a", data, "MESSAGE_MALFORMED", subject);
      }
    });

    it("bytes that are not JSON under Content-Type application/json: MESSAGE_MALFORMED, dead-lettered", async () => {
      const subject = client.names.agentOperation(AGENT, "SendMessage");
      const data = Buffer.from(`{"message": {"role": "ROLE_USER", ${randomUUID()}`);
      assertError(await refusal(subject, data, headersWith({ [HEADERS.contentType]: CONTENT_TYPES.json })), "MESSAGE_MALFORMED");
      await deadLetter("a2a", data, "MESSAGE_MALFORMED", subject);
    });

    it("valid msgpack of the wrong shape: MESSAGE_INVALID naming each bad field, dead-lettered", async () => {
      const subject = client.names.agentOperation(AGENT, "SendMessage");
      const data = encode({ message: { role: "robot" }, metadata: { nonce: randomUUID() } });
      const error = await refusal(subject, data);
      assertError(error, "MESSAGE_INVALID");
      const paths = (error.details ?? []).map((d) => d.path);
      for (const path of ["message.role", "message.messageId", "message.parts"]) assert.ok(paths.includes(path), `details name ${path}: ${paths.join(", ")}`);
      await deadLetter("a2a", data, "MESSAGE_INVALID", subject);
    });

    it(`a payload over maxPayloadBytes (${MAX_PAYLOAD}) but under the server's limit: MESSAGE_TOO_LARGE`, async () => {
      const data = sendMessageBytes("x".repeat(MAX_PAYLOAD + 1_000));
      assert.ok(data.length > MAX_PAYLOAD && data.length < client.nc.info!.max_payload);
      assertError(await refusal(client.names.agentOperation(AGENT, "SendMessage"), data), "MESSAGE_TOO_LARGE");
    });

    it(
      "a payload over maxPayloadBytes is dead-lettered with its original bytes",
      async () => {
        const subject = client.names.agentOperation(AGENT, "SendMessage");
        const data = sendMessageBytes("y".repeat(MAX_PAYLOAD + 1_000));
        assertError(await refusal(subject, data), "MESSAGE_TOO_LARGE");
        await deadLetter("a2a", data, "MESSAGE_TOO_LARGE", subject, 3_000);
      },
    );

    it("Content-Type text/plain: CONTENT_TYPE_NOT_SUPPORTED, dead-lettered", async () => {
      const subject = client.names.agentOperation(AGENT, "SendMessage");
      const data = sendMessageBytes("plain text is not a codec");
      assertError(await refusal(subject, data, headersWith({ [HEADERS.contentType]: "text/plain" })), "CONTENT_TYPE_NOT_SUPPORTED");
      await deadLetter("a2a", data, "CONTENT_TYPE_NOT_SUPPORTED", subject);
    });

    it("A2A-Version 9.9: VERSION_NOT_SUPPORTED, dead-lettered", async () => {
      const subject = client.names.agentOperation(AGENT, "SendMessage");
      const data = sendMessageBytes("from the future");
      assertError(await refusal(subject, data, headersWith({ [HEADERS.a2aVersion]: "9.9" })), "VERSION_NOT_SUPPORTED");
      await deadLetter("a2a", data, "VERSION_NOT_SUPPORTED", subject);
    });

    it("an operation the agent does not implement: UNSUPPORTED_OPERATION, dead-lettered", async () => {
      const subject = client.names.agentOperations(AGENT).replace(/\*$/, "Frobnicate");
      assert.equal(subject, `fleet.agent.${AGENT}.a2a.Frobnicate`);
      const data = encode({ id: randomUUID() });
      assertError(await refusal(subject, data), "UNSUPPORTED_OPERATION");
      await deadLetter("a2a", data, "UNSUPPORTED_OPERATION", subject);
    });

    it("GetTask for an id that does not exist: TASK_NOT_FOUND", async () => {
      const error = await refusal(client.names.agentOperation(AGENT, "GetTask"), encode({ id: `no-such-task-${randomUUID()}` }));
      assertError(error, "TASK_NOT_FOUND");
    });

    it("garbage published one-way (no reply subject): dead-lettered", async () => {
      const subject = client.names.agentOperation(AGENT, "SendMessage");
      const data = garbage();
      client.nc.publish(subject, data, { headers: wireHeaders("msgpack") });
      await deadLetter("a2a", data, "MESSAGE_MALFORMED", subject);
    });
  });

  describe(`assignments on TASKS (fleet.task.${AGENT})`, () => {
    /** Publishes to TASKS as a producer would (JetStream publish, wire headers); returns the stream sequence. */
    async function assign(data: Uint8Array): Promise<number> {
      const ack = await client.js.publish(client.names.task(AGENT), data, { headers: wireHeaders("msgpack") });
      return ack.seq;
    }

    /** Acked, not left to be redelivered until max_deliver: nothing pending and nothing waiting for an ack. */
    async function assertConsumerSettled(): Promise<void> {
      await waitFor("the agent's consumer to have acked everything", async () => {
        const i = await client.resources.jsm.consumers.info(client.names.stream("TASKS"), client.names.agentConsumer(AGENT));
        return i.num_ack_pending === 0 && i.num_pending === 0;
      });
    }

    function assignment(overrides: Partial<TaskAssignment>): TaskAssignment {
      return {
        taskId: `missing-${randomUUID()}`,
        contextId: randomUUID(),
        agentId: AGENT,
        message: { messageId: randomUUID(), role: "ROLE_USER", parts: [{ text: "work on a task that was never stored" }] },
        assignedBy: "test",
        assignedAt: Date.now(),
        ...overrides,
      };
    }

    it("bytes that are not msgpack: dead-lettered as MESSAGE_MALFORMED and acked", async () => {
      const data = garbage();
      await assign(data);
      await deadLetter("tasks", data, "MESSAGE_MALFORMED", client.names.task(AGENT));
      await assertConsumerSettled();
    });

    it("an assignment for another agent: dead-lettered as MESSAGE_INVALID and acked", async () => {
      const data = encode(assignment({ agentId: "ship" }));
      await assign(data);
      await deadLetter("tasks", data, "MESSAGE_INVALID", client.names.task(AGENT));
      await assertConsumerSettled();
    });

    it("an assignment whose Task is not in KV (it overtook its Task, or the Task was never written): the Task is made from the assignment and worked once, nothing dead-lettered", async () => {
      const a = assignment({ assignedAt: Date.now() - 60_000 });
      const data = encode(a);
      const deadBefore = (await readDlq()).length;
      await assign(data);
      const done = await client.waitState(AGENT, a.taskId, "TASK_STATE_COMPLETED", 15_000);
      assert.equal(done.contextId, a.contextId);
      assert.deepEqual(done.history?.[0]?.parts, a.message.parts, "the Task carries the assignment's message");
      await assertConsumerSettled();
      assert.equal((await readDlq()).length, deadBefore, "not dead-lettered");
    });
  });

  describe(`the inbox (fleet.agent.${AGENT}.inbox)`, () => {
    it("bytes that are not msgpack: dead-lettered as MESSAGE_MALFORMED", async () => {
      const data = garbage();
      client.nc.publish(client.names.agentInbox(AGENT), data, { headers: wireHeaders("msgpack") });
      await deadLetter("inbox", data, "MESSAGE_MALFORMED", client.names.agentInbox(AGENT));
    });

    it("msgpack that is not an A2A Message: dead-lettered as MESSAGE_INVALID", async () => {
      const data = encode({ role: "robot", nonce: randomUUID() });
      client.nc.publish(client.names.agentInbox(AGENT), data, { headers: wireHeaders("msgpack") });
      await deadLetter("inbox", data, "MESSAGE_INVALID", client.names.agentInbox(AGENT));
    });
  });

  it("afterwards it is the same process, never restarted, and a valid message still completes", async () => {
    const record = (await client.record(AGENT))!;
    assert.equal(record.pid, pid, "the same process");
    assert.equal(record.restarts, 0);
    assert.equal(procs.status().find((c) => c.id === AGENT)?.restarts, 0, "the supervisor restarted nothing");
    const sent = await client.send(AGENT, "check competitor pricing after all that");
    await client.waitState(AGENT, sent.id, "TASK_STATE_COMPLETED");
    assert.equal((await client.record(AGENT))!.pid, pid);
  });
});
