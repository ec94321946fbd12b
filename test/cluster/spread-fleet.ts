import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { requestOperation, type Task } from "../../protocol/index.js";
import type { ProcessSupervisor } from "../../supervisor/index.js";
import { NatsCluster, OpenAIServer } from "../../harness/index.js";
import { FleetClient } from "../helpers/fleet-client.js";
import { startProcesses } from "../helpers/fleet-processes.js";
import { waitFor } from "../helpers/wait.js";
import { itemOf, proposer, roleOn, tallies, writeClusterFleet } from "./cluster-fleet.js";

/** The cluster fleet running: three nodes (hosts), the scripted provider, the processes spread over them, a test client. */
export interface SpreadFleet {
  cluster: NatsCluster;
  openai: OpenAIServer;
  processes: ProcessSupervisor;
  client: FleetClient;
  fleet: ReturnType<typeof writeClusterFleet>;
  output: string[];
  stop(): Promise<void>;
}

export async function startSpreadFleet(prefix: string): Promise<SpreadFleet> {
  // each node and the processes beside it on a host of their own (a network namespace) where the machine allows it
  const cluster = await NatsCluster.start({ netns: true });
  const openai = await OpenAIServer.start(cluster.testAddress);
  const fleet = writeClusterFleet(prefix, openai.baseUrl);
  const client = await FleetClient.connect(cluster.urls, prefix, { replicas: 3 });
  const [n1, n2, n3] = cluster.urls as [string, string, string];
  const output: string[] = [];
  const processes = startProcesses(
    [
      cluster.onHost(0, roleOn("router", ["router"], fleet.file, n1)),
      cluster.onHost(1, roleOn("scout", ["agent", "scout"], fleet.file, n2)),
      cluster.onHost(2, roleOn("ship", ["agent", "ship"], fleet.file, n3)),
      cluster.onHost(2, roleOn("governance", ["governance"], fleet.file, n3)),
      cluster.onHost(1, roleOn("tools", ["tools"], fleet.file, n2)),
      cluster.onHost(0, roleOn("scheduler", ["scheduler"], fleet.file, n1)),
    ],
    output,
  );
  await processes.start();
  await client.waitAlive(["scout", "ship"], 60_000);
  return {
    cluster, openai, processes, client, fleet, output,
    stop: async () => {
      await processes.stop();
      await client.close();
      await Promise.all([cluster.stop(), openai.close()]);
      fleet.cleanup();
    },
  };
}

/**
 * Sends `count` tasks (scout and ship in turn) and `count` proposals of `tally`, 16 at a time, calling `disrupt` before
 * each window with how many were sent; then waits for every one to complete and checks that each task's model call was
 * made once and each proposal's tool ran once.
 */
export async function workThrough(f: SpreadFleet, count: number, disrupt: (sent: number) => Promise<void>, timeoutMs: number): Promise<void> {
  const props = proposer(f.client);
  // a client that was not answered asks again with the same message id: the task id comes from it, so a repeat is the
  // same task (at-least-once asking, exactly-once work)
  const send = async (agent: string, i: number): Promise<Task> => {
    const messageId = randomUUID();
    for (let attempt = 0; ; attempt++) {
      try {
        return await requestOperation(f.client.nc, f.client.names, agent, "SendMessage", { message: { messageId, role: "ROLE_USER", parts: [{ text: `research item ${i}` }] } }, { timeoutMs: 10_000 });
      } catch (err) {
        if (attempt >= 10) throw err;
      }
    }
  };
  const tasks = new Map<number, { agent: string; id: string }>();
  const proposals = new Map<number, string>();
  const WINDOW = 16;
  for (let i = 0; i < count; i += WINDOW) {
    await disrupt(i);
    await Promise.all(
      Array.from({ length: Math.min(WINDOW, count - i) }, async (_, k) => {
        const n = i + k;
        const agent = n % 2 ? "ship" : "scout";
        const [task, proposal] = await Promise.all([send(agent, n), props.propose(n, f.fleet.tallyFile)]);
        tasks.set(n, { agent, id: task.id });
        proposals.set(n, proposal);
      }),
    );
  }
  assert.equal(tasks.size, count, "every task acknowledged");
  assert.equal(proposals.size, count, "every proposal acknowledged");

  await waitFor("every task COMPLETED", async () => {
    for (const [, t] of tasks) if ((await f.client.getTask(t.agent, t.id)).status.state !== "TASK_STATE_COMPLETED") return false;
    return true;
  }, timeoutMs);
  await waitFor("every proposal completed", async () => {
    for (const [, id] of proposals) if ((await props.state(id)) !== "completed") return false;
    return true;
  }, timeoutMs);

  const calls = new Map<string, number>();
  for (const r of f.openai.requests) {
    const item = r.path.endsWith("/chat/completions") ? itemOf(r.body) : undefined;
    if (item !== undefined) calls.set(item, (calls.get(item) ?? 0) + 1);
  }
  const twice = [...calls].filter(([, c]) => c > 1);
  const started = f.openai.requests[0]?.at ?? 0;
  const when = (item: string) => f.openai.requests.filter((r) => r.path.endsWith("/chat/completions") && itemOf(r.body) === item).map((r) => r.at - started);
  assert.deepEqual(twice, [], `no task's model call made twice: ${JSON.stringify(twice.map(([item]) => [item, when(item)]))}\n${f.output.slice(-40).join("\n")}`);
  assert.equal(calls.size, count, "each task's model call made");
  const runs = tallies(f.fleet.tallyFile);
  assert.deepEqual([...runs].filter(([, c]) => c !== 1), [], "no proposal's tool ran twice");
  assert.equal(runs.size, count, "each proposal's tool ran");
}
