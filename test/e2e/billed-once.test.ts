import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { decode } from "../../protocol/index.js";
import { BudgetRecord } from "../../router/budget-ledger.js";
import { roundUsd } from "../../router/index.js";
import { fleetDay } from "../../config/index.js";
import type { ProcessSupervisor } from "../../supervisor/index.js";
import { FleetClient } from "../helpers/fleet-client.js";
import { agentSpec, routerSpec, startProcesses } from "../helpers/fleet-processes.js";
import { NatsServer } from "../helpers/nats-server.js";
import { OpenAIServer } from "../helpers/openai-server.js";
import { routerFleetYaml, usageRecords } from "../helpers/router-fleet.js";
import { waitFor } from "../helpers/wait.js";

/**
 * kill -9 of an agent while its model call is with the provider: the router finishes the call, keeps its answer under
 * the task's step, and the redelivered task is answered from it. Every task completes once and is billed once: the
 * provider sees one request per step, USAGE holds one paid record per step, and the budget holds their sum.
 */

const PREFIX = "billed";
const TASKS = 4;
const CALL_MS = 1_500;

describe("a task redelivered after its agent was killed mid-call is billed once (processes)", () => {
  let nats: NatsServer;
  let openai: OpenAIServer;
  let processes: ProcessSupervisor;
  let client: FleetClient;
  const dir = mkdtempSync(join(tmpdir(), "fleet-billed-once-"));

  before(async () => {
    [nats, openai] = await Promise.all([NatsServer.start(), OpenAIServer.start()]);
    const config = join(dir, "fleet.yaml");
    writeFileSync(
      config,
      routerFleetYaml({ baseUrl: openai.baseUrl, prefix: PREFIX, routing: "  classifier: false\n  cache: { enabled: false }" }) +
        `memory: { dir: ${JSON.stringify(join(dir, "memory"))} }\nbackups: { dir: ${JSON.stringify(join(dir, "backups"))} }\n` +
        "tasks: { maxDeliver: 5, ackWaitSeconds: 2, backoffSeconds: [2, 2, 2], workingAckSeconds: 0.5 }\n",
    );
    processes = startProcesses([routerSpec(config, nats.url), agentSpec("scout", config, nats.url)]);
    await processes.start();
    client = await FleetClient.connect(nats.url, PREFIX);
    await client.waitAlive(["scout"]);
  });

  after(async () => {
    await processes?.stop();
    await client?.close();
    await Promise.all([nats?.stop(), openai?.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it(`${TASKS} tasks, the agent killed during each one's model call: ${TASKS} provider calls, ${TASKS} charges`, async () => {
    openai.script("m-capable", ...Array.from({ length: 3 * TASKS }, (_, i) => ({ content: `answer ${i}`, delayMs: CALL_MS })));
    const sent = [];
    for (let i = 0; i < TASKS; i++) sent.push(await client.send("scout", `research item ${i}: who sells what`));

    const chats = () => openai.requests.filter((r) => r.path.endsWith("/chat/completions"));
    // the task's own request is the last message; earlier ones may quote other tasks from the session log
    const itemOf = (body: unknown) => /research item (\d+)/.exec(JSON.stringify(Object(body).messages?.at(-1)))?.[1];
    const killed = new Set<string>();
    for (let k = 0; k < TASKS; k++) {
      // the first call of a task not killed yet is with the provider: kill the agent that made it
      const item = await waitFor("a task's first model call", () => chats().map((r) => itemOf(r.body)).find((i) => i !== undefined && !killed.has(i)), 30_000);
      killed.add(item);
      const restarts = processes.status().find((c) => c.id === "scout")?.restarts ?? 0;
      const victim = (await client.record("scout"))!;
      process.kill(victim.pid, "SIGKILL");
      await waitFor("the supervisor to restart scout", () => (processes.status().find((c) => c.id === "scout")?.restarts ?? 0) > restarts);
    }

    for (const task of sent) {
      const done = await client.waitState("scout", task.id, "TASK_STATE_COMPLETED", 30_000);
      assert.equal(done.artifacts?.length, 1, "one completion, one artifact");
    }
    const calls = chats().map((r) => itemOf(r.body));
    assert.equal(calls.length, TASKS, `one provider call per step, not ${calls.join(",")}`);
    assert.equal(new Set(calls).size, TASKS);

    const paid = (await usageRecords(client.nc, client.names)).filter((r) => r.agentId === "scout" && r.ok);
    assert.equal(paid.length, TASKS, "one USAGE record per step");
    assert.equal(new Set(paid.map((r) => r.taskId)).size, TASKS);
    const day = fleetDay(Date.now(), "Europe/Berlin");
    const entry = await client.resources.kv.budgets.get(`${day}.scout`);
    const budget = decode(BudgetRecord, entry!.value, { codec: "json" });
    assert.ok(budget.ok);
    assert.equal(budget.value.spentUsd, roundUsd(paid.reduce((sum, r) => sum + r.costUsd, 0)), "the budget holds each call once");
  });
});
