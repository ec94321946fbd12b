import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { requestOperation } from "../../protocol/index.js";
import { FleetClient } from "../helpers/fleet-client.js";
import { agentSpec, routerSpec, startProcesses, writeTestFleet } from "../helpers/fleet-processes.js";
import { NatsServer } from "../helpers/nats-server.js";
import { waitFor } from "../helpers/wait.js";

/** The task and discovery dedup layers between real agent processes. */
describe("dedup across processes", () => {
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

  it("96 identical discoveries in a day become one task; the rest are REJECTED naming it", async () => {
    const procs = startProcesses([routerSpec(fleet.file, server.url), agentSpec("scout", fleet.file, server.url)]);
    const client = await FleetClient.connect(server.url);
    try {
      await procs.start();
      await client.waitAlive(["scout"]);
      const results = [];
      for (let i = 0; i < 96; i++) {
        results.push(
          await requestOperation(client.nc, client.names, "scout", "SendMessage", {
            message: { messageId: randomUUID(), role: "ROLE_USER", parts: [{ text: "Competitor X cut its pricing page prices by 20%" }], metadata: { discovery: true } },
          }),
        );
      }
      const admitted = results.filter((t) => t.status.state !== "TASK_STATE_REJECTED");
      assert.equal(admitted.length, 1, "one task");
      const rejected = results.filter((t) => t.status.state === "TASK_STATE_REJECTED");
      assert.equal(rejected.length, 95);
      for (const t of rejected) assert.equal(t.metadata?.duplicateOf, admitted[0]!.id);
      assert.match(rejected[0]!.status.message?.parts[0] && "text" in rejected[0]!.status.message.parts[0] ? rejected[0]!.status.message.parts[0].text : "", /similar/);
      await client.waitState("scout", admitted[0]!.id, "TASK_STATE_COMPLETED");
      await waitFor("fleet status to count the suppressed discoveries", async () => (await client.record("scout"))?.dedupSuppressed === 95, 15_000);

      // an operator's own request is never deduplicated
      const direct = await client.send("scout", "Competitor X cut its pricing page prices by 20%");
      assert.equal(direct.status.state, "TASK_STATE_SUBMITTED");
    } finally {
      await procs.stop();
      await client.close();
    }
  });

  it("atlas asked three times for the same work delegates it once and answers all three from it", async () => {
    const procs = startProcesses([routerSpec(fleet.file, server.url), ...["atlas", "ship"].map((id) => agentSpec(id, fleet.file, server.url))]);
    const client = await FleetClient.connect(server.url);
    try {
      await procs.start();
      await client.waitAlive(["atlas", "ship"]);
      const asked = [];
      for (let i = 0; i < 3; i++) asked.push(await client.send("atlas", "deploy the marketing site build"));
      const delegatedTo = new Set<string>();
      for (const t of asked) {
        const done = await client.waitState("atlas", t.id, "TASK_STATE_COMPLETED");
        const note = done.artifacts?.find((a) => a.name === "delegation")?.parts.find((p) => "data" in p);
        assert.ok(note && "data" in note);
        delegatedTo.add((note.data as { taskId: string }).taskId);
      }
      assert.equal(delegatedTo.size, 1, "one task at ship answered all three");
      const shipTasks = await requestOperation(client.nc, client.names, "ship", "ListTasks", {});
      assert.equal(shipTasks.tasks.filter((t) => t.status.state === "TASK_STATE_COMPLETED").length, 1);
      assert.equal(shipTasks.tasks.filter((t) => t.status.state === "TASK_STATE_REJECTED").length, 2);
    } finally {
      await procs.stop();
      await client.close();
    }
  });
});
