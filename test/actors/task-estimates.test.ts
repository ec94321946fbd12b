import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino } from "pino";
import { actualOfTask, AgentRuntime, estimateOfTask, median, type HostedAgent } from "../../actors/index.js";
import { behaviourFor } from "../../behaviours/index.js";
import { connectNats, decode, Task } from "../../protocol/index.js";
import type { RunningRouter } from "../../router/index.js";
import { taskRow, TASK_COLUMNS } from "../../cli/tasks.js";
import { FleetClient } from "../helpers/fleet-client.js";
import { NatsServer } from "../helpers/nats-server.js";
import { OpenAIServer } from "../helpers/openai-server.js";
import { routerFleetConfig, startTestRouter } from "../helpers/router-fleet.js";

const log = pino({ level: process.env.TEST_LOG ?? "silent" });

/**
 * Work in kilotokens, through a running agent (Scout's routed model step), a real router and a scripted OpenAI server
 * whose replies report known usage: each finished task carries its actual tokens (the sum of its calls' usage), and the
 * next task of the same kind is estimated at the median of the ones before it.
 */
describe("task estimates and actuals in story points", () => {
  let server: NatsServer;
  let openai: OpenAIServer;
  let nc: NatsConnection;
  let router: RunningRouter;
  let runtime: AgentRuntime | undefined;
  let client: FleetClient;
  const config = () => routerFleetConfig({ baseUrl: openai.baseUrl, prefix: "fleet", routing: "  classifier: false\n  cache: { enabled: false }" });

  before(async () => {
    [server, openai] = await Promise.all([NatsServer.start(), OpenAIServer.start()]);
    nc = await connectNats({ servers: server.url, name: "estimates-test" });
    router = await startTestRouter(nc, config());
    client = await FleetClient.connect(server.url);
  });
  after(async () => {
    await runtime?.stop();
    await client.close();
    await router.stop();
    await nc.close();
    await Promise.all([server.stop(), openai.close()]);
  });

  const start = async (): Promise<AgentRuntime> => {
    const fleet = config();
    const scout = fleet.agents.find((a) => a.id === "scout");
    assert.ok(scout);
    const agent: HostedAgent = scout;
    return AgentRuntime.start(
      {
        servers: server.url, prefix: "fleet", codec: "msgpack", maxPayloadBytes: 65_536,
        tasks: { ackWaitSeconds: 30, maxDeliver: 5, backoffSeconds: [], workingAckSeconds: 1 },
        quietHours: { start: "00:00", end: "00:00", timeZone: "UTC" },
        runId: "estimates-test", processName: "estimates-test",
      },
      [agent],
      behaviourFor(fleet, "/nonexistent/fleet.yaml"),
      { log },
    );
  };

  const research = async (n: number, usage: { prompt_tokens: number; completion_tokens: number }): Promise<Task> => {
    openai.script("m-capable", { content: `finding ${n}`, usage });
    const sent = await client.send("scout", `research competitor number ${n}`);
    return client.waitState("scout", sent.id, "TASK_STATE_COMPLETED", 20_000);
  };

  it("records each task's actual tokens and estimates the next of its kind at the median of the last ones", async () => {
    runtime = await start();
    const first = await research(1, { prompt_tokens: 1_000, completion_tokens: 200 });
    // the first of its kind: nothing to go by, the default
    assert.deepEqual(estimateOfTask(first), { kind: "skill:research", points: 1, basis: "default", samples: 0 });
    assert.deepEqual(actualOfTask(first), { tokens: 1_200, points: 1.2 });
    // made at the claim, before any work: the write that moved the Task to WORKING carried it (KV keeps its revisions)
    const revisions: Task[] = [];
    for await (const e of await client.resources.kv.tasks.history({ key: client.names.taskKey("scout", first.id) })) {
      const d = decode(Task, e.value, { codec: "msgpack" });
      if (e.operation === "PUT" && d.ok) revisions.push(d.value);
    }
    const claimed = revisions.find((t) => t.status.state === "TASK_STATE_WORKING");
    assert.deepEqual(revisions.map((t) => t.status.state), ["TASK_STATE_SUBMITTED", "TASK_STATE_WORKING", "TASK_STATE_COMPLETED"]);
    assert.equal(estimateOfTask(revisions[0]!), undefined, "not at submission");
    assert.deepEqual(estimateOfTask(claimed!), estimateOfTask(first), "at the claim");
    assert.equal(actualOfTask(claimed!), undefined, "the actual comes at the settle");
    const second = await research(2, { prompt_tokens: 4_000, completion_tokens: 1_000 });
    assert.deepEqual(actualOfTask(second), { tokens: 5_000, points: 5 });
    const third = await research(3, { prompt_tokens: 2_500, completion_tokens: 500 });
    assert.deepEqual(actualOfTask(third), { tokens: 3_000, points: 3 });

    // the fourth, from a fresh process: the history is read back from the agent's own Tasks in KV
    await runtime.stop();
    runtime = await start();
    const fourth = await research(4, { prompt_tokens: 100, completion_tokens: 50 });
    assert.deepEqual(estimateOfTask(fourth), { kind: "skill:research", points: 3, basis: "history", samples: 3 }, "the median of 1.2, 5 and 3 points");
    assert.deepEqual(actualOfTask(fourth), { tokens: 150, points: 0.2 });
    // and the next from this process counts the fourth as well (kept in memory at its completion)
    const fifth = await research(5, { prompt_tokens: 100, completion_tokens: 50 });
    assert.equal(estimateOfTask(fifth)?.points, 2.1, "the median of 0.15, 1.2, 3 and 5 thousand tokens");
    assert.equal(estimateOfTask(fifth)?.samples, 4);

    // what `fleet tasks` prints for them
    assert.deepEqual(TASK_COLUMNS.slice(4, 6), ["EST", "ACTUAL"]);
    assert.deepEqual(taskRow("scout", first).slice(4, 6), ["1*", "1.2"], "a default estimate is starred");
    assert.deepEqual(taskRow("scout", fourth).slice(4, 6), ["3", "0.2"]);
  });

  it("the actual is the sum over every model call of the task (tool rounds included)", async () => {
    // two calls in one task: a round of tool calls (however the tool fares, the round was paid for), then the answer
    openai.clear();
    openai.script(
      "m-capable",
      { toolCalls: [{ name: "web_fetch", arguments: { url: "https://example.com" } }], usage: { prompt_tokens: 700, completion_tokens: 30 } },
      { content: "the answer", usage: { prompt_tokens: 900, completion_tokens: 70 } },
    );
    const sent = await client.send("scout", "research the example site");
    const done = await client.waitState("scout", sent.id, "TASK_STATE_COMPLETED", 20_000);
    assert.equal(openai.requests.filter((r) => r.path.endsWith("/chat/completions")).length, 2, "two model calls");
    assert.deepEqual(actualOfTask(done), { tokens: 1_700, points: 1.7 });
  });

  it("median", () => {
    assert.equal(median([5, 1, 3]), 3);
    assert.equal(median([4, 1, 3, 2]), 2.5);
  });
});
