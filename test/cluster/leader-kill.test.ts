import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { requestOperation, type Task } from "../../protocol/index.js";
import type { ProcessSupervisor } from "../../supervisor/index.js";
import { NatsCluster, OpenAIServer } from "../../harness/index.js";
import { FleetClient } from "../helpers/fleet-client.js";
import { startProcesses } from "../helpers/fleet-processes.js";
import { waitFor } from "../helpers/wait.js";
import { itemOf, proposer, roleOn, tallies, writeClusterFleet } from "./cluster-fleet.js";

/**
 * kill -9 of the TASKS stream's leader while tasks and proposals are in flight, on a three-node cluster with the fleet's
 * processes spread over the nodes (each connected to one node). Every acknowledged task completes once (one provider
 * call, COMPLETED), every proposal completes with one run of its tool; none lost, none twice. FLEET_SOAK=1: 1,000 each.
 */

const COUNT = process.env.FLEET_SOAK === "1" ? 1000 : 100;
const PREFIX = "ckill";

describe(`kill -9 of the stream leader with ${COUNT} tasks and ${COUNT} proposals in flight (three-node cluster)`, () => {
  let cluster: NatsCluster;
  let openai: OpenAIServer;
  let processes: ProcessSupervisor;
  let client: FleetClient;
  let fleet: ReturnType<typeof writeClusterFleet>;
  const output: string[] = [];

  before(async () => {
    [cluster, openai] = await Promise.all([NatsCluster.start(), OpenAIServer.start()]);
    fleet = writeClusterFleet(PREFIX, openai.baseUrl);
    client = await FleetClient.connect(cluster.urls, PREFIX, { replicas: 3 });
    const [n1, n2, n3] = cluster.urls as [string, string, string];
    processes = startProcesses(
      [
        roleOn("router", ["router"], fleet.file, n1),
        roleOn("scout", ["agent", "scout"], fleet.file, n2),
        roleOn("ship", ["agent", "ship"], fleet.file, n3),
        roleOn("governance", ["governance"], fleet.file, n3),
        roleOn("tools", ["tools"], fleet.file, n2),
        roleOn("scheduler", ["scheduler"], fleet.file, n1),
      ],
      output,
    );
    await processes.start();
    await client.waitAlive(["scout", "ship"], 60_000);
  });

  after(async () => {
    await processes?.stop();
    await client?.close();
    await Promise.all([cluster?.stop(), openai?.close()]);
    fleet?.cleanup();
  });

  it("every acknowledged task and proposal completes exactly once", { timeout: COUNT > 100 ? 900_000 : 150_000 }, async () => {
    const jsm = await jetstreamManager(client.nc);
    const leader = (await jsm.streams.info(client.names.stream("TASKS"))).cluster?.leader ?? "";
    const victim = cluster.indexOf(leader);
    assert.ok(victim >= 0, `TASKS leader ${leader} is a node of the cluster`);
    const props = proposer(client);

    // a client that was not answered asks again with the same message id: the task id comes from it, so a repeat is
    // the same task (at-least-once asking, exactly-once work)
    const send = async (agent: string, i: number): Promise<Task> => {
      const messageId = randomUUID();
      for (let attempt = 0; ; attempt++) {
        try {
          return await requestOperation(client.nc, client.names, agent, "SendMessage", { message: { messageId, role: "ROLE_USER", parts: [{ text: `research item ${i}` }] } }, { timeoutMs: 10_000 });
        } catch (err) {
          if (attempt >= 10) throw err;
        }
      }
    };
    const tasks = new Map<number, { agent: string; id: string }>();
    const proposals = new Map<number, string>();
    const WINDOW = 16;
    for (let i = 0; i < COUNT; i += WINDOW) {
      if (i >= COUNT * 0.3 && cluster.node(victim).running) await cluster.kill(victim);
      await Promise.all(
        Array.from({ length: Math.min(WINDOW, COUNT - i) }, async (_, k) => {
          const n = i + k;
          const agent = n % 2 ? "ship" : "scout";
          const [task, proposal] = await Promise.all([send(agent, n), props.propose(n, fleet.tallyFile)]);
          tasks.set(n, { agent, id: task.id });
          proposals.set(n, proposal);
        }),
      );
    }
    assert.equal(tasks.size, COUNT, "every task acknowledged");
    assert.equal(proposals.size, COUNT, "every proposal acknowledged");
    await cluster.node(victim).start();

    const timeout = COUNT > 100 ? 600_000 : 90_000;
    await waitFor("every task COMPLETED", async () => {
      for (const [, t] of tasks) if ((await client.getTask(t.agent, t.id)).status.state !== "TASK_STATE_COMPLETED") return false;
      return true;
    }, timeout);
    await waitFor("every proposal completed", async () => {
      for (const [, id] of proposals) if ((await props.state(id)) !== "completed") return false;
      return true;
    }, timeout);

    const calls = new Map<string, number>();
    for (const r of openai.requests) if (r.path.endsWith("/chat/completions")) {
      const item = itemOf(r.body);
      if (item !== undefined) calls.set(item, (calls.get(item) ?? 0) + 1);
    }
    const twice = [...calls].filter(([, c]) => c > 1);
    assert.deepEqual(twice, [], "no task's model call made twice");
    assert.equal(calls.size, COUNT, "each task's model call made");
    const runs = tallies(fleet.tallyFile);
    assert.deepEqual([...runs].filter(([, c]) => c !== 1), [], "no proposal's tool ran twice");
    assert.equal(runs.size, COUNT, "each proposal's tool ran");
  });
});
