import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import type { StoredMsg } from "@nats-io/jetstream";
import { pino } from "pino";
import { AgentRuntime, type AgentBehaviour, type HostedAgent, type Outcome } from "../../actors/index.js";
import { RETRY_DELAY_MS } from "../../actors/delivery-outcome.js";
import { encode, textOf, wireHeaders, type TaskAssignment } from "../../protocol/index.js";
import { FleetClient } from "../helpers/fleet-client.js";
import { NatsServer } from "../helpers/nats-server.js";
import { waitFor } from "../helpers/wait.js";

const log = pino({ level: process.env.TEST_LOG ?? "silent" });
const AGENT = "courier";
const agent: HostedAgent = { id: AGENT, name: "Courier", role: "test agent", defaultTier: "nano", cycleMinutes: 600, skills: [] };

/**
 * The task consumer against a real nats-server: what each outcome does to the message, seen from the stream's side.
 * The ack wait is long (30 s), so anything that comes back within seconds came back by a nak, not by a timeout.
 */
describe("TaskConsumer on a real JetStream consumer", () => {
  let server: NatsServer;
  let runtime: AgentRuntime;
  let client: FleetClient;
  /** every act call, by the task's text, with when it ran */
  const acts: Array<{ text: string; at: number }> = [];
  /** texts whose first act asks for a retry (the router away, say) */
  const flaky = new Set<string>();

  const behaviour: AgentBehaviour = {
    plan: async (input) => (input.item ? { kind: "work", item: input.item, skillId: undefined } : { kind: "nothing" }),
    act: async (input): Promise<Outcome> => {
      const text = input.plan.item ? textOf(input.plan.item.message) : "";
      acts.push({ text, at: Date.now() });
      if (flaky.delete(text)) return { ok: false, retry: true, reason: "no router answers" };
      return { ok: true, artifacts: [{ artifactId: `a-${randomUUID()}`, parts: [{ text: `done: ${text}` }] }] };
    },
  };

  before(async () => {
    server = await NatsServer.start();
    runtime = await AgentRuntime.start(
      {
        servers: server.url,
        prefix: "fleet",
        codec: "msgpack",
        maxPayloadBytes: 65_536,
        tasks: { ackWaitSeconds: 30, maxDeliver: 5, backoffSeconds: [], workingAckSeconds: 1 },
        quietHours: { start: "00:00", end: "00:00", timeZone: "UTC" },
        runId: "task-consumer-test",
        processName: "task-consumer-test",
      },
      [agent],
      () => behaviour,
      { log },
    );
    client = await FleetClient.connect(server.url);
  });
  after(async () => {
    await client.close();
    await runtime.stop();
    await server.stop();
  });

  const consumerInfo = () => client.resources.jsm.consumers.info(client.names.stream("TASKS"), client.names.agentConsumer(AGENT));

  /** Waits until the consumer has settled everything up to stream sequence `seq`. */
  async function settledThrough(seq: number): Promise<void> {
    await waitFor(`the consumer to settle stream sequence ${seq}`, async () => {
      const i = await consumerInfo();
      return i.ack_floor.stream_seq >= seq && i.num_ack_pending === 0 && i.num_pending === 0;
    });
  }

  async function readDlq(): Promise<StoredMsg[]> {
    const stream = client.names.stream("DLQ");
    const { state } = await client.resources.jsm.streams.info(stream);
    const out: StoredMsg[] = [];
    for (let seq = Math.max(state.first_seq, 1); seq <= state.last_seq && state.messages > 0; seq++) {
      const m = await client.resources.jsm.streams.getMessage(stream, { seq }).catch(() => undefined);
      if (m) out.push(m);
    }
    return out;
  }

  function assignment(taskId: string, contextId: string, text: string): Uint8Array {
    const a: TaskAssignment = {
      taskId,
      contextId,
      agentId: AGENT,
      message: { messageId: randomUUID(), taskId, contextId, role: "ROLE_USER", parts: [{ text }] },
      assignedBy: "test",
      assignedAt: Date.now(),
    };
    return encode(a, "msgpack");
  }

  it("a retry outcome naks with its delay and the task comes back, then completes once", async () => {
    const text = `flaky ${randomUUID()}`;
    flaky.add(text);
    const deliveriesBefore = (await consumerInfo()).delivered.consumer_seq;
    const sent = await client.send(AGENT, text);
    const done = await client.waitState(AGENT, sent.id, "TASK_STATE_COMPLETED", 10_000);
    const tries = acts.filter((a) => a.text === text);
    assert.equal(tries.length, 2, "worked twice: the retry, then the redelivery");
    const gap = tries[1]!.at - tries[0]!.at;
    assert.ok(gap >= RETRY_DELAY_MS - 100, `the redelivery waited for the nak's delay (${gap} ms)`);
    assert.ok(gap < 10_000, `it came back by the nak, not the 30 s ack wait (${gap} ms)`);
    await settledThrough((await consumerInfo()).delivered.stream_seq);
    assert.equal((await consumerInfo()).delivered.consumer_seq - deliveriesBefore, 2, "one message, delivered twice");
    assert.equal(done.artifacts?.length, 1);
    assert.equal(client.finalEvents(sent.id).length, 1, "one final status event");
  });

  it("a redelivery of finished work is acked without a second completion", async () => {
    const text = `once ${randomUUID()}`;
    const deadBefore = (await readDlq()).length;
    const sent = await client.send(AGENT, text);
    const done = await client.waitState(AGENT, sent.id, "TASK_STATE_COMPLETED", 10_000);
    // the same assignment again, as after a crash between completing and acking (another msg id: not a server duplicate)
    // (the msg id goes in through wireHeaders: js.publish's msgID option would write it into wireHeaders' shared object)
    const ack = await client.js.publish(client.names.task(AGENT), assignment(sent.id, sent.contextId, text), { headers: wireHeaders("msgpack", `again-${randomUUID()}`) });
    await settledThrough(ack.seq);
    assert.equal(acts.filter((a) => a.text === text).length, 1, "not worked again");
    const after = await client.getTask(AGENT, sent.id);
    assert.deepEqual(after, done, "the Task is exactly as it was completed");
    assert.equal(client.finalEvents(sent.id).length, 1, "no second completion event");
    assert.equal((await readDlq()).length, deadBefore, "not dead-lettered");
  });

  it("an assignment that overtook its Task (or has none) is worked once from what it carries, nothing dead-lettered", async () => {
    const taskId = `t-missing-${randomUUID()}`;
    const text = `work on a task that was never stored ${taskId}`;
    const data = assignment(taskId, taskId, text);
    const deadBefore = (await readDlq()).length;
    const deliveriesBefore = (await consumerInfo()).delivered.consumer_seq;
    const ack = await client.js.publish(client.names.task(AGENT), data, { headers: wireHeaders("msgpack") });
    const done = await client.waitState(AGENT, taskId, "TASK_STATE_COMPLETED", 10_000);
    assert.equal(done.id, taskId);
    await settledThrough(ack.seq);
    assert.equal((await consumerInfo()).delivered.consumer_seq - deliveriesBefore, 1, "delivered once: no nak-retry, no grace period");
    assert.equal(acts.filter((a) => a.text === text).length, 1, "worked once");
    assert.equal((await readDlq()).length, deadBefore, "not dead-lettered");
  });
});
