import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { AgentRuntime, submitTask, TaskStore, type AgentBehaviour, type HostedAgent, type Outcome } from "../../actors/index.js";
import { textOf } from "../../protocol/index.js";
import { FleetClient } from "../helpers/fleet-client.js";
import { NatsServer } from "../helpers/nats-server.js";
import { waitFor } from "../helpers/wait.js";

const log = pino({ level: process.env.TEST_LOG ?? "silent" });
const agentNamed = (id: string): HostedAgent => ({ id, name: id, role: "test agent", defaultTier: "nano", cycleMinutes: 600, skills: [] });

/**
 * An agent resumes its own unfinished work before it takes new work, by two mechanisms already there: the chart's
 * snapshot (persisted in the agent's record) restores the task in hand and re-runs its effect at start; and, when no
 * snapshot survived, the agent's durable task consumer has max_ack_pending 1, so a task whose process died while WORKING
 * keeps the one slot until its ack wait runs out, and its redelivery comes before any task submitted meanwhile. (A held
 * task's message is acked and kept in KV `held`, so work that waits does not hold the slot.)
 */
describe("resume first: a task left WORKING by a dead process is worked before newer tasks", () => {
  let server: NatsServer;
  let client: FleetClient;
  const runtimes: AgentRuntime[] = [];
  /** the order the second process worked tasks in */
  const worked: string[] = [];
  let started: (text: string) => void = () => undefined;
  /** ends the dead process's work, so that stopping it (cleanup) does not wait out its grace */
  const buried = new AbortController();

  const settings = (runId: string) => ({
    servers: server.url, prefix: "fleet", codec: "msgpack" as const, maxPayloadBytes: 65_536,
    // a short ack wait: the dead process's claim runs out in seconds
    tasks: { ackWaitSeconds: 2, maxDeliver: 5, backoffSeconds: [], workingAckSeconds: 0.5 },
    quietHours: { start: "00:00", end: "00:00", timeZone: "UTC" },
    runId, processName: runId,
  });

  /** the first process: its work never ends (it dies in the middle of it) */
  const stuck: AgentBehaviour = {
    plan: async (input) => (input.item ? { kind: "work", item: input.item, skillId: undefined } : { kind: "nothing" }),
    act: (input, ctx): Promise<Outcome> => {
      started(input.plan.item ? textOf(input.plan.item.message) : "");
      return new Promise((_, reject) => {
        for (const signal of [ctx.signal, buried.signal]) signal.addEventListener("abort", () => reject(new Error("stopped")), { once: true });
      });
    },
  };
  /** the second: works each task at once and notes the order */
  const quick: AgentBehaviour = {
    plan: async (input) => (input.item ? { kind: "work", item: input.item, skillId: undefined } : { kind: "nothing" }),
    act: async (input): Promise<Outcome> => {
      worked.push(input.plan.item ? textOf(input.plan.item.message) : "");
      return { ok: true, artifacts: [] };
    },
  };

  before(async () => {
    server = await NatsServer.start();
    client = await FleetClient.connect(server.url);
  });
  after(async () => {
    buried.abort();
    for (const r of runtimes) await r.stop();
    await client.close();
    await server.stop();
  });

  async function dieAndRestart(AGENT: string, forgetSnapshot: boolean): Promise<void> {
    const agent = agentNamed(AGENT);
    worked.length = 0;
    const first = await AgentRuntime.start(settings("resume-a"), [agent], () => stuck, { log });
    runtimes.push(first);
    const inHand = new Promise<string>((resolve) => (started = resolve));
    const old = await client.send(AGENT, "old work");
    assert.equal(await inHand, "old work");
    await client.waitState(AGENT, old.id, "TASK_STATE_WORKING");

    // the process dies: its connections are gone without a word (no ack, no nak, no more working-acks)
    await first.serveNc.close();
    await first.nc.close();

    // new work arrives while the agent is down
    const deps = { js: client.js, store: new TaskStore(client.resources.kv.tasks, client.names, "msgpack"), names: client.names, codec: "msgpack" as const, now: () => Date.now() };
    const fresh = await submitTask(deps, AGENT, { messageId: randomUUID(), role: "ROLE_USER", parts: [{ text: "new work" }] }, "test");
    assert.equal((await deps.store.get(AGENT, old.id))?.status.state, "TASK_STATE_WORKING", "the old task is still WORKING in KV");

    // a process that died before its snapshot was written: only the task consumer can bring the task back
    if (forgetSnapshot) await client.resources.kv.agents.delete(AGENT);
    const second = await AgentRuntime.start(settings("resume-b"), [agent], () => quick, { log });
    runtimes.push(second);
    await client.waitState(AGENT, fresh.id, "TASK_STATE_COMPLETED", 15_000);
    await client.waitState(AGENT, old.id, "TASK_STATE_COMPLETED", 15_000);
    assert.deepEqual(worked, ["old work", "new work"], "its own unfinished task first");
    await waitFor("nothing left pending", async () => {
      const info = await client.resources.jsm.consumers.info(client.names.stream("TASKS"), client.names.agentConsumer(AGENT));
      return info.num_ack_pending === 0 && info.num_pending === 0;
    });
  }

  it("restored from the chart's snapshot: the unfinished task first, then the one submitted while the agent was down", async () => {
    await dieAndRestart("mason", false);
  });

  it("with no snapshot: the redelivery of the WORKING task comes before the newer task", async () => {
    await dieAndRestart("mortar", true);
  });
});
