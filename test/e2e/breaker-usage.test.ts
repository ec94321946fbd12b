import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { decodeUnknown } from "../../protocol/index.js";
import { FleetClient } from "../helpers/fleet-client.js";
import { agentSpec, routerSpec, startProcesses } from "../helpers/fleet-processes.js";
import { NatsServer } from "../helpers/nats-server.js";
import { OpenAIServer } from "../helpers/openai-server.js";
import { routerFleetYaml, usageRecords } from "../helpers/router-fleet.js";
import { waitFor } from "../helpers/wait.js";

/**
 * An open breaker means no model calls for that agent: counted in USAGE records, with a real router process, a real
 * agent process and a scripted OpenAI server whose empty answers fail the agent's checks.
 */
describe("breaker and the model bill", () => {
  let server: NatsServer;
  let openai: OpenAIServer;
  const dir = mkdtempSync(join(tmpdir(), "fleet-breaker-usage-"));
  before(async () => {
    [server, openai] = await Promise.all([NatsServer.start(), OpenAIServer.start()]);
  });
  after(async () => {
    await Promise.all([server.stop(), openai.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it("three failed tasks open scout's breaker; while it is open scout makes no model call; after a reset it does", async () => {
    const config = join(dir, "fleet.yaml");
    // the ceiling at scout's own tier: a failed check fails the task at once instead of escalating
    writeFileSync(config, routerFleetYaml({ baseUrl: openai.baseUrl, prefix: "fleet", routing: "  classifier: false\n  escalationCeiling: capable\n  cache: { enabled: false }" }));
    const procs = startProcesses([routerSpec(config, server.url), agentSpec("scout", config, server.url)]);
    const client = await FleetClient.connect(server.url);
    const scoutCalls = async () => (await usageRecords(client.nc, client.names)).filter((u) => u.agentId === "scout").length;
    try {
      await procs.start();
      await client.waitAlive(["scout"]);
      openai.script("m-capable", { content: "" }, { content: "" }, { content: "" });
      for (let i = 0; i < 3; i++) {
        const t = await client.send("scout", `research competitor ${i}`);
        const failed = await client.waitState("scout", t.id, "TASK_STATE_FAILED");
        assert.match(JSON.stringify(failed.status.message), /CHECK_FAILED/);
      }
      await waitFor("the breaker to open", async () => (await client.record("scout"))?.breaker?.state === "open");
      assert.equal(await scoutCalls(), 3, "one model call per failed task");

      const held = [await client.send("scout", "research pricing"), await client.send("scout", "research keywords")];
      // Proof that scout has had a held task in hand long enough to have called the model had the breaker let it: the
      // consumer has delivered the first (ack pending, the second waiting behind it: one task at a time), and scout has
      // since written a heartbeat a second or more later, so its process went on well past the few milliseconds an unheld
      // task takes to reach the scripted model. Scout's own heartbeat, not the test's clock, marks the time as passed.
      const tasks = () => client.resources.jsm.consumers.info(client.names.stream("TASKS"), client.names.agentConsumer("scout"));
      const inHand = await waitFor("the first held task to be delivered to scout", async () => {
        const consumer = await tasks();
        return consumer.num_ack_pending === 1 && consumer.num_pending === 1 ? Date.now() : undefined;
      });
      await waitFor("a heartbeat from scout a second after it took the held task", async () => ((await client.record("scout"))?.heartbeatAt ?? 0) >= inHand + 1_000, 20_000);
      assert.equal((await tasks()).num_redelivered, 0, "the held task is kept, not handed back");
      assert.equal(await scoutCalls(), 3, "no model call while the breaker is open");
      for (const t of held) assert.equal((await client.getTask("scout", t.id)).status.state, "TASK_STATE_SUBMITTED");

      const reply = await client.nc.request(client.names.agentControl("scout", "BreakerReset"), new Uint8Array(), { timeout: 5_000 });
      assert.ok(decodeUnknown(reply.data).ok);
      for (const t of held) await client.waitState("scout", t.id, "TASK_STATE_COMPLETED");
      assert.equal(await scoutCalls(), 5, "the held tasks ran after the reset, one call each");
    } finally {
      await procs.stop();
      await client.close();
    }
  });
});
