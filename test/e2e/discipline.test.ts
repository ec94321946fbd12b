import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { decodeUnknown, isTerminal } from "../../protocol/index.js";
import { STATUS_REPORT_TASK } from "../../behaviours/index.js";
import { FleetClient } from "../helpers/fleet-client.js";
import { agentSpec, routerSpec, slowAgentSpec, startProcesses, writeTestFleet } from "../helpers/fleet-processes.js";
import { NatsServer } from "../helpers/nats-server.js";
import { waitFor } from "../helpers/wait.js";

/** The operator's levers on a running agent process: its breaker, a restart, a wake-up. */
describe("operating discipline across processes", () => {
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

  async function control(client: FleetClient, agentId: string, op: "Restart" | "BreakerReset"): Promise<unknown> {
    const reply = await client.nc.request(client.names.agentControl(agentId, op), new Uint8Array(), { timeout: 5_000 });
    const decoded = decodeUnknown(reply.data);
    assert.ok(decoded.ok);
    return decoded.value;
  }

  it("three failed tasks open the breaker; the next task waits, untouched, until the operator resets it", async () => {
    const procs = startProcesses([slowAgentSpec("ship", fleet.file, server.url, 50, { fail: true })]);
    const client = await FleetClient.connect(server.url);
    try {
      await procs.start();
      await client.waitAlive(["ship"]);
      for (let i = 0; i < 3; i++) {
        const t = await client.send("ship", `deploy attempt ${i}`);
        await client.waitState("ship", t.id, "TASK_STATE_FAILED");
      }
      await waitFor("the breaker to open", async () => (await client.record("ship"))?.breaker?.state === "open");
      const opened = (await client.record("ship"))!.breaker!;
      assert.equal(opened.consecutiveFailures, 3);
      assert.ok(opened.openUntil! - Date.now() > 4 * 60_000, "the first cooldown is 5 minutes");

      const held = await client.send("ship", "deploy once more");
      // A held task must not be redelivered or worked for longer than the test fleet's 2 s ack wait. Proof that that much
      // time has passed with the task in ship's hands: the consumer has delivered it (the one message ack pending), and
      // ship has since written a heartbeat 2.5 s later; ship's own record, not the test's clock, marks the time as passed.
      const tasks = () => client.resources.jsm.consumers.info(client.names.stream("TASKS"), client.names.agentConsumer("ship"));
      const inHand = await waitFor("the held task to be delivered to ship", async () => {
        const consumer = await tasks();
        return consumer.num_ack_pending === 1 && consumer.num_pending === 0 ? Date.now() : undefined;
      });
      await waitFor("a heartbeat from ship longer than the ack wait after it took the held task", async () => ((await client.record("ship"))?.heartbeatAt ?? 0) >= inHand + 2_500);
      assert.equal((await tasks()).num_redelivered, 0, "the held task is kept past its ack wait, not redelivered");
      assert.equal((await client.getTask("ship", held.id)).status.state, "TASK_STATE_SUBMITTED", "no work while the breaker is open");

      const reset = (await control(client, "ship", "BreakerReset")) as { result: { state: string } };
      assert.equal(reset.result.state, "closed");
      const done = await waitFor("the held task to be worked", async () => {
        const t = await client.getTask("ship", held.id);
        return isTerminal(t.status.state) ? t : undefined;
      });
      assert.equal(done.status.state, "TASK_STATE_FAILED", "it ran after the reset (and failed, as scripted)");
      const info = await client.resources.jsm.consumers.info(client.names.stream("TASKS"), client.names.agentConsumer("ship"));
      assert.equal(info.num_redelivered, 0, "the held task was kept with working-acks, never redelivered");
    } finally {
      await procs.stop();
      await client.close();
    }
  });

  it("fleet restart: the agent's process exits and its supervisor starts it again", async () => {
    const procs = startProcesses([routerSpec(fleet.file, server.url), agentSpec("scout", fleet.file, server.url)]);
    const client = await FleetClient.connect(server.url);
    try {
      await procs.start();
      await client.waitAlive(["scout"]);
      const before = (await client.record("scout"))!;
      const reply = (await control(client, "scout", "Restart")) as { result: { restarting: boolean } };
      assert.equal(reply.result.restarting, true);
      const after = await waitFor("scout to come back in a new process", async () => {
        const r = await client.record("scout");
        return r && r.pid !== before.pid && r.state !== "stopped" ? r : undefined;
      });
      assert.equal(after.restarts, before.restarts + 1);
      assert.equal(procs.status().find((c) => c.id === "scout")?.restarts, 1);
    } finally {
      await procs.stop();
      await client.close();
    }
  });

  it("fleet.wake.<agent> runs a cycle now instead of at the next timer (atlas writes its status report)", async () => {
    const procs = startProcesses([routerSpec(fleet.file, server.url), ...["atlas", "scout"].map((id) => agentSpec(id, fleet.file, server.url))]);
    const client = await FleetClient.connect(server.url);
    try {
      await procs.start();
      await client.waitAlive(["atlas", "scout"]);
      // the test fleet's cycles are an hour long: without the wake-up there is no report for a long time
      const before = await client.getTask("atlas", STATUS_REPORT_TASK).catch(() => undefined);
      client.nc.publish(client.names.wake("atlas"));
      const report = await waitFor("atlas's status report", async () => {
        const t = await client.getTask("atlas", STATUS_REPORT_TASK).catch(() => undefined);
        return t && t.status.timestamp !== before?.status.timestamp ? t : undefined;
      });
      const text = report.artifacts?.[0]?.parts.find((p) => "text" in p);
      assert.ok(text && "text" in text && text.text.includes("scout: idle"), "the report covers the other agents");
    } finally {
      await procs.stop();
      await client.close();
    }
  });
});
