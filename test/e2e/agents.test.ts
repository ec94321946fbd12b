import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { FleetClient } from "../helpers/fleet-client.js";
import { agentSpec, routerSpec, slowAgentSpec, startProcesses, writeTestFleet } from "../helpers/fleet-processes.js";
import { NatsServer } from "../helpers/nats-server.js";
import { waitFor } from "../helpers/wait.js";

/** Agents as real OS processes on a real nats-server: delivery, crash recovery, server restarts. */

describe("agents in their own processes", () => {
  let server: NatsServer;
  let fleet: ReturnType<typeof writeTestFleet>;
  before(async () => {
    server = await NatsServer.start();
    fleet = writeTestFleet();
  });
  after(async () => {
    await server.stop();
    fleet.cleanup();
  });

  it("a message to atlas is delegated through TASKS to scout's process; states show through GetTask and events", async () => {
    const procs = startProcesses([routerSpec(fleet.file, server.url), ...["atlas", "scout", "ship"].map((id) => agentSpec(id, fleet.file, server.url))]);
    const client = await FleetClient.connect(server.url);
    try {
      await procs.start();
      await client.waitAlive(["atlas", "scout", "ship"]);
      const sent = await client.send("atlas", "check the competitors' pricing pages");
      assert.equal(sent.status.state, "TASK_STATE_SUBMITTED");
      const done = await client.waitState("atlas", sent.id, "TASK_STATE_COMPLETED");

      const delegation = done.artifacts?.find((a) => a.name === "delegation");
      assert.ok(delegation, "atlas records where the work went");
      const data = delegation.parts.find((p) => "data" in p);
      const { agent, taskId } = (data && "data" in data ? data.data : {}) as { agent: string; taskId: string };
      assert.equal(agent, "scout", "pricing research goes to the agent whose skills match");
      assert.ok(done.artifacts?.some((a) => a.name === "simulated-answer"), "scout's answer is gathered into atlas's task");

      const scoutTask = await client.getTask("scout", taskId);
      assert.equal(scoutTask.status.state, "TASK_STATE_COMPLETED");
      // who assigned it, its estimate (the first of its kind: the default) and its actual (the simulated call's tokens)
      const { estimate, actual, ...assigned } = scoutTask.metadata ?? {};
      assert.deepEqual(assigned, { agentId: "scout", assignedBy: "atlas" });
      assert.deepEqual(estimate, { kind: "skill:research", points: 1, basis: "default", samples: 0 });
      assert.ok(typeof actual === "object" && actual !== null && "tokens" in actual && typeof actual.tokens === "number" && actual.tokens > 0, `an actual: ${JSON.stringify(actual)}`);
      await waitFor("scout's events", () => client.finalEvents(taskId).length === 1);
      const states = client.events.filter((e) => e.taskId === taskId && e.kind === "status-update").map((e) => (e.kind === "status-update" ? e.status.state : ""));
      assert.deepEqual(states, ["TASK_STATE_WORKING", "TASK_STATE_COMPLETED"]);
    } finally {
      await procs.stop();
      await client.close();
    }
  });

  it("kill -9 of an agent holding a task: restarted, the task is redelivered and completed exactly once", async () => {
    const procs = startProcesses([slowAgentSpec("ship", fleet.file, server.url, 2_500)]);
    const client = await FleetClient.connect(server.url);
    try {
      await procs.start();
      await client.waitAlive(["ship"]);
      const sent = await client.send("ship", "deploy the site");
      await client.waitState("ship", sent.id, "TASK_STATE_WORKING");
      const victim = await waitFor("ship's record to show the task in hand", async () => {
        const r = await client.record("ship");
        return r?.currentTaskId === sent.id ? r : undefined;
      });
      process.kill(victim.pid, "SIGKILL");

      await waitFor("the supervisor to restart ship", () => procs.status().find((c) => c.id === "ship")?.restarts === 1);
      const done = await client.waitState("ship", sent.id, "TASK_STATE_COMPLETED", 30_000);
      assert.equal(done.artifacts?.length, 1, "one completion, one artifact");
      const worker = done.artifacts?.[0]?.parts[0];
      assert.ok(worker && "data" in worker);
      assert.notEqual((worker.data as { pid: number }).pid, victim.pid, "the restarted process did the work");

      // The killed process never acked its delivery, so only a redelivery (ack wait 2 s) can: wait until the consumer has
      // delivered the message again and it is acked, with nothing left pending. Nothing is redelivered after that, so
      // whatever a redelivery could do twice has been done by then.
      await waitFor("the redelivery to arrive and be acked as finished work", async () => {
        const consumer = await client.resources.jsm.consumers.info(client.names.stream("TASKS"), client.names.agentConsumer("ship"));
        return consumer.delivered.consumer_seq >= 2 && consumer.num_ack_pending === 0 && consumer.num_pending === 0;
      }, 20_000);
      const again = await client.getTask("ship", sent.id);
      assert.equal(again.artifacts?.length, 1, "a redelivery completes nothing twice");
      assert.equal(client.finalEvents(sent.id).length, 1, "exactly one final status event");
      const record = (await client.record("ship"))!;
      assert.equal(record.restarts, 1);
      const info = await client.resources.jsm.consumers.info(client.names.stream("TASKS"), client.names.agentConsumer("ship"));
      assert.equal(info.num_ack_pending, 0, "the task message was acked");
      assert.equal(info.num_pending, 0);
    } finally {
      await procs.stop();
      await client.close();
    }
  });

  it("a nats-server restart mid-run: every process reconnects and no assigned task is lost", async () => {
    const procs = startProcesses([routerSpec(fleet.file, server.url), ...["scout", "ship"].map((id) => agentSpec(id, fleet.file, server.url))]);
    const client = await FleetClient.connect(server.url);
    try {
      await procs.start();
      await client.waitAlive(["scout", "ship"]);
      const sent = [];
      for (let i = 0; i < 10; i++) {
        sent.push({ agent: "scout", task: await client.send("scout", `competitor pricing batch ${i}`) });
        sent.push({ agent: "ship", task: await client.send("ship", `deploy build ${i}`) });
      }
      // mid-run means every process is up: the router (which trains its local classifier at start) has answered a step
      await client.waitState("scout", sent[0]!.task.id, "TASK_STATE_COMPLETED", 30_000);
      await server.restart();
      // requests during the outage fail fast (no responders / timeout): retry as a client would
      for (let i = 10; i < 15; i++) {
        for (const agent of ["scout", "ship"]) {
          const task = await waitFor(`${agent} to accept a task after the restart`, () => client.send(agent, `after restart ${i}`).catch(() => undefined), 30_000);
          sent.push({ agent, task });
        }
      }
      for (const { agent, task } of sent) await client.waitState(agent, task.id, "TASK_STATE_COMPLETED", 30_000);
      for (const child of procs.status()) assert.equal(child.restarts, 0, `${child.id} carried on without a restart`);
    } finally {
      await procs.stop();
      await client.close();
    }
  });
});
