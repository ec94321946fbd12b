import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino } from "pino";
import { AgentRuntime, listHeld, type HostedAgent, type RuntimeDeps, type RuntimeSettings } from "../../actors/index.js";
import { atlasBehaviour, composeBehaviour, routedModelStep, toolTaskStage } from "../../behaviours/index.js";
import { heldRows } from "../../cli/held-text.js";
import { parseFleetConfig, type FleetConfig } from "../../config/index.js";
import { AgentTools, referenceToolRisks, referenceTools, ToolHost } from "../../governance/index.js";
import { connectNats, heldOf, requestOperation, type Message, type Task } from "../../protocol/index.js";
import { RouterClient, type RunningRouter } from "../../router/index.js";
import { FleetClient } from "../helpers/fleet-client.js";
import { NatsServer } from "../helpers/nats-server.js";
import { OpenAIServer } from "../helpers/openai-server.js";
import { routerFleetYaml, startTestRouter } from "../helpers/router-fleet.js";
import { runFleet } from "../helpers/run-cli.js";
import { waitFor } from "../helpers/wait.js";

/**
 * Held work, with real parts on a simulated clock: a nats-server, the router (on the same clock) with its tiers on a
 * scripted OpenAI server, an in-process tool host with a local site for http_check, and an agent runtime hosting scout
 * and ship with the execution chain (tier-0 tool tasks, then the routed model step). Time moves only when the test
 * says: the clock jumps, and the runtime's scheduler runs what came due (the end of quiet hours, a hold's release).
 *
 * Quiet hours are 23:30–06:30 Europe/Berlin (22:30–05:30Z in January), with "site down" urgent by title.
 */

const PREFIX = "heldwork";
const log = pino({ level: process.env.TEST_LOG ?? "silent" });
const at = (iso: string): number => Date.parse(iso);

describe("held work: quiet hours and spent caps hold tasks instead of failing them", { timeout: 120_000 }, () => {
  let nats: NatsServer;
  let openai: OpenAIServer;
  let nc: NatsConnection;
  let router: RunningRouter;
  let toolHost: ToolHost;
  let site: Server;
  let siteUrl: string;
  let config: FleetConfig;
  let client: FleetClient;
  let runtime: AgentRuntime;
  const clock = { t: at("2026-01-15T22:45:00Z"), now() { return this.t; } };

  const settings = (): RuntimeSettings => ({
    servers: nats.url,
    prefix: PREFIX,
    codec: "msgpack",
    maxPayloadBytes: 1_048_576,
    tasks: { ackWaitSeconds: 30, maxDeliver: 3, backoffSeconds: [], workingAckSeconds: 1 },
    quietHours: { start: config.fleet.quietHours.start, end: config.fleet.quietHours.end, timeZone: config.fleet.timeZone },
    modelWork: { urgent: config.fleet.quietHours.urgent, aliases: Object.fromEntries(Object.entries(config.routing.aliases).map(([a, v]) => [a, v.tier])) },
    runId: `held-${randomUUID()}`,
    processName: "held-work-test",
  });

  /** The execution chain of behaviours/role-behaviour.ts without memory: tool tasks first, then the routed model step. */
  const behaviour = (agent: HostedAgent, deps: RuntimeDeps) => {
    if (agent.id === "atlas") return atlasBehaviour(agent, config, deps, new RouterClient(deps.nc, deps.names, { timeoutMs: 20_000 }));
    const allowed = config.agents.find((a) => a.id === agent.id)?.tools ?? [];
    const tools = new AgentTools({ nc: deps.nc, js: deps.js, names: deps.names, codec: deps.codec, agentId: agent.id, allowed, risks: new Map(Object.entries(referenceToolRisks())), clock: deps.clock });
    return composeBehaviour([toolTaskStage(tools)], routedModelStep(agent, new RouterClient(deps.nc, deps.names, { timeoutMs: 20_000 }), undefined, { gate: deps.gate }));
  };
  const hosted = () => config.agents.filter((a) => ["atlas", "scout", "ship"].includes(a.id));
  const startRuntime = () => AgentRuntime.start(settings(), hosted(), behaviour, { log, clock });

  /** Moves the clock and runs what came due (the end of quiet hours, held tasks' releases). */
  const advance = (iso: string) => {
    clock.t = at(iso);
    runtime.scheduler.runDue();
  };

  const send = (agentId: string, text: string, metadata?: Message["metadata"]): Promise<Task> =>
    requestOperation(client.nc, client.names, agentId, "SendMessage", { message: { messageId: randomUUID(), role: "ROLE_USER", parts: [{ text }], ...(metadata ? { metadata } : {}) } });
  const sendTool = (agentId: string, tool: string, input: unknown): Promise<Task> =>
    requestOperation(client.nc, client.names, agentId, "SendMessage", { message: { messageId: randomUUID(), role: "ROLE_USER", parts: [{ data: { tool, input } }] } });
  const waitHeld = (agentId: string, taskId: string) =>
    waitFor(`${agentId}'s task ${taskId} to be held`, async () => {
      const task = await client.getTask(agentId, taskId);
      return heldOf(task.metadata) ? task : undefined;
    });
  /** the task Atlas delegated: the held scout task that the test did not send itself */
  const delegatedId = (rows: { agentId: string; taskId: string; title: string }[]) => rows.find((r) => r.agentId === "scout" && r.title === "research the delegated question")?.taskId;
  const chats = () => openai.requests.filter((r) => r.path.endsWith("/chat/completions"));
  const heldRecords = () => listHeld(client.resources.kv.held, "msgpack");
  const consumer = (agentId: string) => client.resources.jsm.consumers.info(client.names.stream("TASKS"), client.names.agentConsumer(agentId));

  before(async () => {
    [nats, openai] = await Promise.all([NatsServer.start(), OpenAIServer.start()]);
    site = createServer((_req, res) => res.writeHead(204).end());
    await new Promise<void>((r) => site.listen(0, "127.0.0.1", r));
    siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}/health`;
    const yaml = routerFleetYaml({
      baseUrl: openai.baseUrl,
      prefix: PREFIX,
      scoutCapUsd: 0.001,
      routing: "  classifier: false\n  cache: { enabled: false }",
      quietHours: '{ start: "23:30", end: "06:30", urgent: { titles: ["site down"] } }',
    });
    config = parseFleetConfig(yaml, "held-work.yaml");
    nc = await connectNats({ servers: nats.url, name: "held-work-test" });
    client = await FleetClient.connect(nats.url, PREFIX);
    router = await startTestRouter(nc, config, {}, clock);
    const js = jetstream(nc);
    toolHost = new ToolHost({
      nc, js, names: client.names, codec: "msgpack", config, kv: { proposals: client.resources.kv.proposals, toolruns: client.resources.kv.toolruns },
      host: "held-work-test", log, tools: referenceTools({ js, names: client.names, codec: "msgpack", config }),
    });
    await toolHost.start();
    runtime = await startRuntime();
  });
  after(async () => {
    await runtime?.stop();
    await toolHost?.stop();
    await router?.stop();
    await client?.close();
    await nc?.close();
    site?.close();
    await Promise.all([nats?.stop(), openai?.close()]);
  });

  it("in quiet hours, urgent work runs at once: marked urgent, or urgent by the title policy", async () => {
    openai.clear();
    const marked = await send("scout", "research the outage notice of our host", { work: { urgent: true, trigger: "event" } });
    const byTitle = await send("scout", "Site down: research what the status page says");
    for (const task of [marked, byTitle]) {
      const done = await client.waitState("scout", task.id, "TASK_STATE_COMPLETED");
      assert.equal(heldOf(done.metadata), undefined);
    }
    // delegated by Atlas, urgent work stays urgent
    const delegated = await send("atlas", "research the breach report now", { work: { urgent: true } });
    await client.waitState("atlas", delegated.id, "TASK_STATE_COMPLETED");
    assert.equal(chats().length, 3, "all three asked the model at 23:45");
  });

  it("in quiet hours, a tier-0 tool task runs: no model is asked", async () => {
    openai.clear();
    const task = await sendTool("ship", "http_check", { url: siteUrl });
    const done = await client.waitState("ship", task.id, "TASK_STATE_COMPLETED");
    assert.equal(done.artifacts?.[0]?.name, "tool-result");
    assert.equal(chats().length, 0);
  });

  it("a task and a cron job's task sent in quiet hours are held (visible, not failed, no delivery spent), survive an agent restart, and run when the window ends", async () => {
    openai.clear();
    const deliveredBefore = (await consumer("scout")).delivered.consumer_seq;
    const plain = await send("scout", "research competitor pricing pages");
    const cron = await send("scout", "research the morning's advisories", { work: { cronJob: "advisories", trigger: "cron" } });
    // a delegation: Atlas passes it to scout, whose task is held; Atlas's own task waits with it instead of blocking Atlas
    const delegation = await send("atlas", "research the delegated question");
    const atlasHeld = await waitHeld("atlas", delegation.id);
    assert.equal(heldOf(atlasHeld.metadata)?.until, at("2026-01-16T05:30:00Z"));
    assert.match(heldOf(atlasHeld.metadata)?.detail ?? "", /delegated to scout \(task t-[0-9a-f]+\), which waits: quiet hours/);
    for (const task of [plain, cron]) {
      const held = await waitHeld("scout", task.id);
      assert.equal(held.status.state, "TASK_STATE_SUBMITTED", "open, and nobody works on it");
      assert.deepEqual(heldOf(held.metadata) && { reason: heldOf(held.metadata)?.reason, until: heldOf(held.metadata)?.until }, { reason: "quiet-hours", until: at("2026-01-16T05:30:00Z") });
      assert.match(held.status.message?.parts[0] && "text" in held.status.message.parts[0] ? held.status.message.parts[0].text : "", /held: quiet hours until/);
    }
    assert.equal(chats().length, 0, "no model was asked");
    // the messages are settled (acked): nothing waits on TASKS, no redelivery is counted against max_deliver
    const info = await consumer("scout");
    assert.deepEqual([info.num_pending, info.num_ack_pending, info.num_redelivered, info.delivered.consumer_seq - deliveredBefore], [0, 0, 0, 3]);
    // what `fleet status` shows
    const rows = heldRows(await heldRecords(), config.fleet.timeZone);
    assert.deepEqual(
      rows.filter((r) => r.agentId === "scout" && r.taskId !== delegatedId(rows)).map((r) => [r.agentId, r.taskId, r.why, r.untilText]).sort(),
      [plain.id, cron.id].map((id) => ["scout", id, "quiet hours", "Fri 16 Jan, 06:30 Europe/Berlin"]).sort(),
    );
    assert.deepEqual(rows.map((r) => r.agentId).sort(), ["atlas", "scout", "scout", "scout"], "Atlas's task and the three of scout");
    // the operator's view (no scheduler runs here, so no quiet-hours record names the zone: the command falls back to UTC)
    const status = await runFleet(["status", "--nats", nats.url, "--prefix", PREFIX]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /held: 4 task\(s\) wait/);
    assert.match(status.stdout, new RegExp(`scout\\s+${plain.id}\\s+quiet hours\\s+Fri 16 Jan, 05:30 UTC\\s+research competitor pricing pages`));

    // the agent restarts in the night: the held work is still there and its release is armed again
    await runtime.stop();
    runtime = await startRuntime();
    assert.equal((await heldRecords()).length, 4, "nothing held was lost");
    assert.equal(runtime.scheduler.dueAt(`held:scout:${plain.id}`), at("2026-01-16T05:30:00Z"));

    advance("2026-01-16T05:29:59Z");
    assert.equal((await heldRecords()).length, 4, "still held a second before the window ends");
    advance("2026-01-16T05:30:00Z");
    for (const task of [plain, cron]) {
      const done = await client.waitState("scout", task.id, "TASK_STATE_COMPLETED");
      assert.equal(heldOf(done.metadata), undefined, "the hold is gone from the Task");
      assert.match(done.artifacts?.[0]?.parts[0] && "text" in done.artifacts[0].parts[0] ? done.artifacts[0].parts[0].text : "", /ok from m-capable/);
    }
    const delegationDone = await client.waitState("atlas", delegation.id, "TASK_STATE_COMPLETED");
    assert.match(JSON.stringify(delegationDone.artifacts), /delegated to scout/);
    assert.equal(chats().length, 3, "scout's two tasks and the delegated one, each asked once");
    await waitFor("the held records to be gone", async () => (await heldRecords()).length === 0);
    const record = await client.record("scout");
    assert.equal(record?.tasksFailed, 0);
    assert.equal(record?.breaker?.state ?? "closed", "closed");
  });

  it("a capped agent's tasks wait for midnight instead of failing; the breaker stays closed; at midnight quiet hours hold them on to the morning", async () => {
    advance("2026-01-16T10:00:00Z");
    openai.clear();
    // one capable call of 100,000 input tokens ($0.01) takes scout far past its $0.001 cap and the nano grace
    openai.script("m-capable", { content: "pricing noted", usage: { prompt_tokens: 100_000, completion_tokens: 0 } });
    const first = await send("scout", "research pricing of competitor A");
    await client.waitState("scout", first.id, "TASK_STATE_COMPLETED");
    const capped: Task[] = [];
    for (const what of ["B", "C", "D", "E"]) capped.push(await send("scout", `research pricing of competitor ${what}`));
    for (const task of capped) {
      const held = await waitHeld("scout", task.id);
      assert.deepEqual([held.status.state, heldOf(held.metadata)?.reason, heldOf(held.metadata)?.until], ["TASK_STATE_SUBMITTED", "agent-cap", at("2026-01-16T23:00:00Z")]);
    }
    // the router refused once; the gate remembered the spent cap and the rest waited without asking again
    // (Atlas plans from scout's budget state now, at its own tiers: only scout's capable calls count here)
    assert.equal(chats().filter((r) => Object(r.body).model === "m-capable").length, 1, "only the first task reached a model");
    const record = await client.record("scout");
    assert.deepEqual([record?.tasksFailed, record?.breaker?.state ?? "closed", record?.breaker?.consecutiveFailures ?? 0], [0, "closed", 0], "four refusals are no failures");
    const rows = heldRows(await heldRecords(), config.fleet.timeZone);
    assert.deepEqual(new Set(rows.map((r) => `${r.why} until ${r.untilText}`)), new Set(["cap of agent scout until Sat 17 Jan, 00:00 Europe/Berlin"]));
    // ship's own cap is untouched: it works on
    const ship = await send("ship", "check health of the shop");
    await client.waitState("ship", ship.id, "TASK_STATE_COMPLETED");

    // midnight in Berlin: a new budget day, but quiet hours: the tasks are released and held again until 06:30
    advance("2026-01-16T23:00:00Z");
    for (const task of capped) {
      await waitFor(`task ${task.id} to be held by quiet hours`, async () => heldOf((await client.getTask("scout", task.id)).metadata)?.reason === "quiet-hours");
    }
    await waitFor("the re-held records", async () => {
      const held = await heldRecords();
      return held.length === capped.length && held.every((h) => h.hold.reason === "quiet-hours");
    });
    advance("2026-01-17T05:30:00Z");
    for (const task of capped) await client.waitState("scout", task.id, "TASK_STATE_COMPLETED");
    assert.equal((await client.record("scout"))?.tasksFailed, 0);
    await waitFor("no held work left", async () => (await heldRecords()).length === 0);
  });
});
