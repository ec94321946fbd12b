import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino } from "pino";
import { AgentRuntime, TaskStore, type RuntimeDeps } from "../../actors/index.js";
import { AtlasPlanner, behaviourFor, type PeerTaskRecord } from "../../behaviours/index.js";
import { parseFleetConfig, type FleetConfig } from "../../config/index.js";
import { NO_TOOL_MODULES, peerClients } from "../../governance/index.js";
import { connectNats, encode, ensureFleetResources, FleetNames, wireHeaders, type FleetResources, type Finding, type Task } from "../../protocol/index.js";
import type { RunningRouter } from "../../router/index.js";
import { RouterClient } from "../../router/index.js";
import type { ProcessSupervisor } from "../../supervisor/index.js";
import { FleetClient } from "../helpers/fleet-client.js";
import { slowAgentSpec, startProcesses, writeTestFleet } from "../helpers/fleet-processes.js";
import { startGateway, type TestGateway } from "../helpers/gateway.js";
import { NatsServer } from "../helpers/nats-server.js";
import { OpenAIServer } from "../helpers/openai-server.js";
import { routerFleetYaml, startTestRouter } from "../helpers/router-fleet.js";
import { waitFor } from "../helpers/wait.js";

/*
 * Two fleets on one machine, each on its own nats-server, each with its A2A gateway (bridges/gateway): fleet A's Atlas
 * plans a delegation to fleet B's scout (a peer in A's config, a peer in B's gateway config, one bearer token between
 * them), its task calls B's gateway with the @a2a-js/sdk client and completes with the artifact B's scout made. Then B's
 * gateway goes away while B's scout works on the task: A retries with backoff, the task waits, and it completes once B's
 * gateway is back on its port. Fleet B's scout is a real agent process that takes 3 s per task.
 */

const log = pino({ level: "silent" });
const TOKEN = "fleet-a-token-0123456789abcdef";
const WORK_MS = 3000;

describe("two fleets over A2A: A's Atlas delegates to B's agent through B's gateway", () => {
  let natsA: NatsServer;
  let natsB: NatsServer;
  let openai: OpenAIServer;
  let fleetB: ReturnType<typeof writeTestFleet>;
  let procsB: ProcessSupervisor;
  let clientB: FleetClient;
  let gatewayB: TestGateway | undefined;
  let gatewayPort = 0;
  let nc: NatsConnection;
  let router: RunningRouter | undefined;
  let runtime: AgentRuntime | undefined;
  let config: FleetConfig;
  let names: FleetNames;
  let resources: FleetResources;
  let planner: AtlasPlanner;
  let store: TaskStore;

  const startGatewayB = async () => {
    gatewayB = await startGateway({ natsUrl: natsB.url, configFile: fleetB.file, peers: [{ id: "fleeta", token: TOKEN, agents: ["scout"], skills: ["research"] }], settings: { port: gatewayPort } });
    gatewayPort = Number(new URL(gatewayB.url).port);
  };

  before(async () => {
    [natsA, natsB, openai] = await Promise.all([NatsServer.start(), NatsServer.start(), OpenAIServer.start()]);
    // fleet B: scout as a real (slow) agent process, its gateway in front
    fleetB = writeTestFleet();
    procsB = startProcesses([slowAgentSpec("scout", fleetB.file, natsB.url, WORK_MS)]);
    clientB = await FleetClient.connect(natsB.url);
    await procsB.start();
    await clientB.waitAlive(["scout"]);
    await startGatewayB();

    // fleet A: its router (scripted planning answers), Atlas hosted here with the peers' clients
    nc = await connectNats({ servers: natsA.url, name: "fleet-a-test" });
    names = new FleetNames("fleeta");
    config = parseFleetConfig(
      routerFleetYaml({ baseUrl: openai.baseUrl, prefix: "fleeta", routing: "  classifier: false\n  cache: { enabled: false }" }) +
        `
peers:
  fleetb:
    card: ${gatewayB!.url}/agents/scout/.well-known/agent-card.json
    tokenEnv: FLEETB_TOKEN
    pollSeconds: 0.2
    timeoutSeconds: 20
    retry: { attempts: 50, backoffSeconds: [0.2, 0.5] }
    skills:
      research: { risk: AUTO, description: Competitor research by fleet B's scout }
`,
      "fleet-a.yaml",
    );
    resources = await ensureFleetResources(nc, names);
    const clock = { now: () => Date.now() };
    router = await startTestRouter(nc, config, {}, clock);
    runtime = await AgentRuntime.start(
      { servers: natsA.url, prefix: "fleeta", codec: "msgpack", maxPayloadBytes: 1024 * 1024, tasks: config.tasks, quietHours: { start: "00:00", end: "00:00", timeZone: "UTC" }, runId: "fleet-a", processName: "fleet-a-atlas" },
      config.agents.filter((a) => a.id === "atlas"),
      behaviourFor(config, "fleet-a.yaml", NO_TOOL_MODULES, { clients: peerClients(config, { FLEETB_TOKEN: TOKEN }, log) }),
      { log },
    );
    const deps: RuntimeDeps = { ...resources, nc, js: jetstream(nc), names, codec: "msgpack", clock, log, gate: { check: () => undefined, holdOf: () => undefined } };
    planner = new AtlasPlanner({ config, self: "atlas", deps, router: new RouterClient(nc, names, { timeoutMs: 20_000 }), log });
    store = new TaskStore(resources.kv.tasks, names, "msgpack");
  });

  after(async () => {
    await runtime?.stop();
    await router?.stop();
    await nc?.close();
    await gatewayB?.stop();
    await clientB?.close();
    await procsB?.stop();
    await Promise.all([natsA?.stop(), natsB?.stop(), openai?.close()]);
    fleetB?.cleanup();
  });

  let findings = 0;
  async function delegate(what: string): Promise<string> {
    const finding: Finding = { id: `f-${++findings}`, agentId: "scout", duty: "watch", subject: `rival-${findings}.example`, key: "prices", severity: "warning", summary: `rival-${findings}.example changed its prices`, evidence: {}, at: Date.now() };
    await jetstream(nc).publish(names.finding("scout"), encode(finding, "msgpack"), { headers: wireHeaders("msgpack") });
    openai.clear();
    openai.script("m-workhorse", {
      content: JSON.stringify({ assignments: [{ agent: "peer:fleetb", what, why: "a rival changed its prices", priority: "normal", skill: "research", pipeline: null, tier: null, target: null, tools: [] }], notices: [] }),
    });
    const result = await planner.cycle();
    assert.equal(result.kind, "planned");
    const assigned = result.kind === "planned" ? result.record.assigned[0] : undefined;
    assert.ok(assigned, JSON.stringify(result));
    return assigned.taskId;
  }
  const settled = (taskId: string) =>
    waitFor(`fleet A's task ${taskId} settled`, async () => {
      const t = await store.get("atlas", taskId);
      return t && ["TASK_STATE_COMPLETED", "TASK_STATE_FAILED"].includes(t.status.state) ? t : undefined;
    }, 40_000);
  const peerOf = (t: Task | undefined) => t?.metadata?.["peer"] as PeerTaskRecord | undefined;

  it("fleet A's Atlas delegates to fleet B's scout and gets its artifact", async () => {
    const taskId = await delegate("Research the competitor pricing of rival-1.example");
    const task = await settled(taskId);
    assert.equal(task.status.state, "TASK_STATE_COMPLETED", JSON.stringify(task.status));
    const fromB = task.artifacts?.find((a) => a.metadata?.["peer"] === "fleetb");
    assert.ok(fromB, `B's artifact is A's task's: ${JSON.stringify(task.artifacts)}`);
    assert.ok(fromB.parts.some((p) => "data" in p && typeof (p.data as { pid?: unknown }).pid === "number"), "made by B's scout process");
    const bTaskId = peerOf(task)?.taskId;
    assert.ok(bTaskId);
    const inB = await new TaskStore(clientB.resources.kv.tasks, clientB.names, "msgpack").get("scout", bTaskId);
    assert.equal(inB?.status.state, "TASK_STATE_COMPLETED", "the same task, completed in fleet B");
  });

  it("fleet B's gateway going away mid-task: A retries, its task waits, and completes once B's gateway is back", async () => {
    const taskId = await delegate("Find out which shipping fees rival-2.example charges abroad");
    const bTaskId = await waitFor("B has the task", async () => peerOf(await store.get("atlas", taskId))?.taskId);
    // B's scout works on it for 3 s: its gateway goes away meanwhile
    await gatewayB!.stop();
    gatewayB = undefined;
    const waiting = await waitFor("A's task waits for B", async () => peerOf(await store.get("atlas", taskId))?.waiting);
    assert.equal(waiting.code, "PEER_UNAVAILABLE");
    assert.equal((await store.get("atlas", taskId))?.status.state, "TASK_STATE_WORKING");
    await startGatewayB();
    const task = await settled(taskId);
    assert.equal(task.status.state, "TASK_STATE_COMPLETED", JSON.stringify(task.status));
    assert.equal(peerOf(task)?.taskId, bTaskId, "the same task of B's, resumed, not sent again");
    assert.ok((peerOf(task)?.attempts ?? 0) >= 2);
    const inB = await new TaskStore(clientB.resources.kv.tasks, clientB.names, "msgpack").list("scout");
    assert.equal(inB.filter((t) => /shipping fees/.test(JSON.stringify(t.history))).length, 1, "B ran the work once");
  });
});
