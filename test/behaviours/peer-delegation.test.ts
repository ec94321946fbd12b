import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jetstream, jetstreamManager, type JetStreamClient } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino } from "pino";
import { AgentRuntime, TaskStore, type RuntimeDeps } from "../../actors/index.js";
import { AtlasPlanner, behaviourFor, governedCall, peerTaskStage, type PeerTaskRecord } from "../../behaviours/index.js";
import { parseFleetConfig, type FleetConfig } from "../../config/index.js";
import {
  AgentTools,
  fleetToolRisks,
  fleetTools,
  GovernanceService,
  NO_TOOL_MODULES,
  peerClients,
  peerToolRisks,
  policyOf,
  PeerToolOutput,
  peerToolTimeoutMs,
  ProposalStore,
  readAuditRecords,
  ToolHost,
  type FleetToolSources,
} from "../../governance/index.js";
import { connectNats, encode, ensureFleetResources, FleetError, FleetNames, wireHeaders, type FleetResources, type Finding, type Task } from "../../protocol/index.js";
import { RouterClient, type RunningRouter } from "../../router/index.js";
import { taskRow } from "../../cli/tasks.js";
import { A2APeer } from "../helpers/a2a-peer.js";
import { NatsServer } from "../helpers/nats-server.js";
import { OpenAIServer } from "../helpers/openai-server.js";
import { routerFleetYaml, startTestRouter } from "../helpers/router-fleet.js";
import { waitFor } from "../helpers/wait.js";

/*
 * Fleet to fleet, against real parts: a nats-server, the router on a scripted OpenAI server, a tool host, governance, an
 * actor runtime hosting Atlas, and "another company's fleet" as a real A2A server (@a2a-js/sdk's DefaultRequestHandler
 * behind node:http). An agent's governed call of a peer's skill (AUTO, and PROPOSE through Sentinel) returns the peer's
 * artifact with its cost in the audit trail; Atlas's plan delegates to a peer's skill and the task completes with the
 * artifact; a peer that goes away mid-task is retried and the task completes when it is back; one that stays away fails
 * the task with PEER_UNAVAILABLE, in `fleet tasks`; a skill config does not grant is refused by the tool gate. Atlas's
 * delegations, completed or failed, are in the audit trail as calls of the peer's tool in Atlas's name.
 */

const log = pino({ level: "silent" });
const TOKEN = "peer-token-for-tests";
const env = { ACME_TOKEN: TOKEN };
const SLOW_SKILL_MS = 2_500;

function fleetYaml(baseUrl: string, prefix: string, cardUrl: string, attempts: number): string {
  return (
    routerFleetYaml({ baseUrl, prefix, routing: "  classifier: false\n  cache: { enabled: false }", scoutExtra: "" }).replace("tools: [web_fetch]", "tools: [web_fetch, acme.translate, acme.summarise, acme.research]") +
    `
principals:
  - { id: owner, channel: console, to: owner }
governance:
  sentinel: { quietHoursForExternal: false }
peers:
  acme:
    card: ${cardUrl}
    tokenEnv: ACME_TOKEN
    pollSeconds: 0.05
    timeoutSeconds: 10
    retry: { attempts: ${attempts}, backoffSeconds: [0.1, 0.2] }
    skills:
      translate: { risk: AUTO, description: Translates a text into German }
      summarise: {}
      research: { risk: AUTO, timeoutSeconds: 30 }
`
  );
}

describe("peers: fleet to fleet over A2A (real NATS, real A2A server)", () => {
  let nats: NatsServer;
  let openai: OpenAIServer;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let peer: A2APeer;
  let release: () => void = () => undefined;
  let gate: Promise<void> = Promise.resolve();
  const routers: RunningRouter[] = [];
  const stops: (() => Promise<unknown>)[] = [];
  let fleets = 0;

  before(async () => {
    [nats, openai] = await Promise.all([NatsServer.start(), OpenAIServer.start()]);
    nc = await connectNats({ servers: nats.url, name: "peer-delegation-test" });
    js = jetstream(nc);
    peer = new A2APeer({
      name: "acme",
      token: TOKEN,
      skills: [
        { id: "translate", answer: async ({ text }) => ({ text: `Übersetzung: ${text.split("\n")[0]}`, data: { lang: "de" }, costUsd: 0.02 }) },
        // a skill whose task takes longer than the tool host's own timeout in the test below
        {
          id: "research",
          answer: async ({ text }) => {
            await new Promise((r) => setTimeout(r, SLOW_SKILL_MS));
            return { text: `Recherche: ${text}`, costUsd: 0.1 };
          },
        },
        {
          id: "summarise",
          answer: async ({ text }) => {
            await gate;
            return { text: `Zusammenfassung (${text.length} Zeichen)`, costUsd: 0.05 };
          },
        },
      ],
    });
    await peer.start();
  });
  after(async () => {
    release();
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    for (const r of routers) await r.stop();
    await peer?.stop();
    await nc?.close();
    await Promise.all([nats?.stop(), openai?.close()]);
  });

  async function fleet(attempts = 20): Promise<{ config: FleetConfig; names: FleetNames; resources: FleetResources; sources: FleetToolSources }> {
    const prefix = `peer${++fleets}`;
    const config = parseFleetConfig(fleetYaml(openai.baseUrl, prefix, peer.cardUrl, attempts), "peer-test.yaml");
    const names = new FleetNames(prefix);
    const resources = await ensureFleetResources(nc, names);
    return { config, names, resources, sources: { modules: [], peers: peerToolRisks(config) } };
  }

  async function toolHost(config: FleetConfig, names: FleetNames, resources: FleetResources, sources: FleetToolSources, timeoutMs = 10_000): Promise<void> {
    const host = new ToolHost({
      nc, js, names, codec: "msgpack", config, host: "test-host", log, timeoutMs,
      tools: fleetTools({ js, names, codec: "msgpack", config, peers: peerClients(config, env, log) }, sources),
      kv: { proposals: resources.kv.proposals, toolruns: resources.kv.toolruns, tools: resources.kv.tools },
    });
    await host.start();
    stops.push(() => host.stop());
  }

  it("an agent's governed call of a peer's skill: AUTO runs and returns the artifact, cost and duration in the audit trail; PROPOSE goes through Sentinel; an ungranted skill is refused at the gate", async () => {
    const { config, names, resources, sources } = await fleet();
    await toolHost(config, names, resources, sources);
    const governance = new GovernanceService({
      nc, js, jsm: await jetstreamManager(nc), names, codec: "msgpack", config, proposalsKv: resources.kv.proposals,
      tools: fleetTools({ js, names, codec: "msgpack", config }, sources), policy: policyOf(config), budgetOf: async () => ({ spentUsd: 0, capUsd: 5 }), log, tickMs: 0, toolTimeoutMs: 10_000,
    });
    await governance.start();
    stops.push(() => governance.stop());
    const risks = new Map(Object.entries(fleetToolRisks(sources)));
    const scout = new AgentTools({
      nc, js, names, codec: "msgpack", agentId: "scout", allowed: config.agents.find((a) => a.id === "scout")!.tools,
      risks: { get: (n) => risks.get(n) }, unknownTool: (n) => (n.startsWith("acme.") ? new FleetError("PEER_SKILL_NOT_GRANTED", `${n} is not granted`) : undefined),
    });

    const result = await scout.call("acme.translate", { text: "Good morning" }, undefined, { idempotencyKey: "k-translate-1" });
    const output = result.output as { text: string; artifacts: { parts: unknown[] }[]; costUsd: number; taskId: string };
    assert.equal(output.text, "Übersetzung: Good morning");
    assert.deepEqual(output.artifacts[0]?.parts[1], { data: { lang: "de" }, mediaType: "application/json" });
    assert.equal(output.costUsd, 0.02);
    assert.equal(peer.received.at(-1)?.messageId, "k-translate-1", "the idempotency key is the A2A messageId");
    const again = await scout.call("acme.translate", { text: "Good morning" }, undefined, { idempotencyKey: "k-translate-1" });
    assert.equal(again.replayed, true, "one effect per idempotency key: the recorded answer, the peer not asked again");
    const trail = await readAuditRecords(js, names, "msgpack", { agentId: "scout", tool: "acme.translate" });
    assert.equal(trail.records[0]?.ok, true);
    assert.equal(trail.records[0]?.costUsd, 0.02, "the peer's reported cost is attributed to the agent");
    assert.equal(trail.records[0]?.risk, "AUTO");
    assert.ok((trail.records[0]?.durationMs ?? -1) >= 0);

    // PROPOSE (the default): not callable directly, a proposal Sentinel approves, executed by governance
    await assert.rejects(scout.call("acme.summarise", { text: "x" }), (err: FleetError) => err.code === "PROPOSAL_REQUIRED");
    const proposed = await governedCall(scout, { tool: "acme.summarise", input: { text: "the quarterly report" }, reason: "the owner asked for a summary" });
    assert.equal(proposed.kind, "proposed");
    const store = new ProposalStore(resources.kv.proposals, js, names, "msgpack");
    const done = await waitFor("the proposal executed", async () => {
      const record = proposed.kind === "proposed" ? (await store.get(proposed.proposalId))?.record : undefined;
      return record?.state === "completed" ? record : undefined;
    });
    assert.match(String((done.output as { text?: string }).text), /^Zusammenfassung/);
    const proposalTrail = await readAuditRecords(js, names, "msgpack", { tool: "acme.summarise" });
    assert.equal(proposalTrail.records.at(-1)?.costUsd, 0.05);
    assert.equal(proposalTrail.records.at(-1)?.proposalId, proposed.kind === "proposed" ? proposed.proposalId : "");

    // a skill config does not grant: refused at the gate, nothing reaches the peer
    const sent = peer.received.length;
    await assert.rejects(scout.call("acme.audit", { text: "x" }), (err: FleetError) => err.code === "PEER_SKILL_NOT_GRANTED");
    await assert.rejects(governedCall(scout, { tool: "acme.audit", input: { text: "x" }, reason: "r" }), (err: FleetError) => err.code === "PEER_SKILL_NOT_GRANTED");
    assert.equal(peer.received.length, sent);
  });

  it("a peer skill's own timeoutSeconds: the tool host lets its call run past the host's timeout, and the caller waits for it", async () => {
    const { config, names, resources, sources } = await fleet();
    assert.equal(peerToolTimeoutMs(config, "acme.research"), 35_000, "the skill's 30 s, and the host's margin");
    assert.equal(peerToolTimeoutMs(config, "acme.translate"), 15_000, "the peer's 10 s for a skill that names none");
    assert.equal(peerToolTimeoutMs(config, "web_fetch"), undefined);
    // a host whose own timeout (1 s) is shorter than the peer's task (2.5 s), and a caller that usually waits 1.5 s
    await toolHost(config, names, resources, sources, 1_000);
    const risks = new Map(Object.entries(fleetToolRisks(sources)));
    const scout = new AgentTools({
      nc, js, names, codec: "msgpack", agentId: "scout", allowed: config.agents.find((a) => a.id === "scout")!.tools, timeoutMs: 1_500,
      risks: { get: (n) => risks.get(n) }, timeoutOf: (n) => peerToolTimeoutMs(config, n),
    });
    const result = await scout.call("acme.research", { text: "competitors in Berlin" }, undefined, { idempotencyKey: "k-research-1" });
    const output = PeerToolOutput.parse(result.output);
    assert.equal(output.text, "Recherche: competitors in Berlin");
    assert.ok(result.durationMs >= SLOW_SKILL_MS - 100, `it ran its ${SLOW_SKILL_MS} ms: ${result.durationMs}`);
  });

  /** Atlas hosted in an actor runtime, with the peers' clients; the plan made by a planner on the same fleet. */
  async function atlasFleet(attempts: number) {
    const f = await fleet(attempts);
    const clock = { now: () => Date.now() };
    routers.push(await startTestRouter(nc, f.config, {}, clock));
    const runtime = await AgentRuntime.start(
      { servers: nats.url, prefix: f.names.prefix, codec: "msgpack", maxPayloadBytes: 1024 * 1024, tasks: f.config.tasks, quietHours: { start: "00:00", end: "00:00", timeZone: "UTC" }, runId: `peer-${f.names.prefix}`, processName: "peer-test-atlas" },
      f.config.agents.filter((a) => a.id === "atlas"),
      behaviourFor(f.config, "peer-test.yaml", NO_TOOL_MODULES, { clients: peerClients(f.config, env, log) }),
      { log },
    );
    stops.push(() => runtime.stop());
    const store = new TaskStore(f.resources.kv.tasks, f.names, "msgpack");
    const deps: RuntimeDeps = { ...f.resources, nc, js, names: f.names, codec: "msgpack", clock, log, gate: { check: () => undefined, holdOf: () => undefined } };
    const planner = new AtlasPlanner({ config: f.config, self: "atlas", deps, router: new RouterClient(nc, f.names, { timeoutMs: 20_000 }), log });
    const finding: Finding = { id: `f-${f.names.prefix}`, agentId: "scout", duty: "inbox", subject: "customer-42", key: "letter", severity: "warning", summary: "a customer wrote a long letter in English", evidence: {}, at: Date.now() };
    await js.publish(f.names.finding("scout"), encode(finding, "msgpack"), { headers: wireHeaders("msgpack") });
    const plan = (skill: string, what: string) => ({
      content: JSON.stringify({ assignments: [{ agent: "peer:acme", what, why: "the customer's letter", priority: "normal", skill, pipeline: null, tier: null, target: null, tools: [] }], notices: [] }),
    });
    const delegated = async (skill: string, what: string): Promise<string> => {
      openai.clear();
      openai.script("m-workhorse", plan(skill, what));
      const result = await planner.cycle();
      assert.equal(result.kind, "planned");
      const assigned = result.kind === "planned" ? result.record.assigned[0] : undefined;
      assert.equal(assigned?.agent, "peer:acme", JSON.stringify(result.kind === "planned" ? result.record : result));
      return assigned!.taskId;
    };
    const settled = (taskId: string) => waitFor(`task ${taskId} settled`, async () => {
      const t = await store.get("atlas", taskId);
      return t && ["TASK_STATE_COMPLETED", "TASK_STATE_FAILED"].includes(t.status.state) ? t : undefined;
    }, 30_000);
    return { ...f, store, delegated, settled };
  }

  const peerRecord = (t: Task | undefined) => t?.metadata?.["peer"] as PeerTaskRecord | undefined;

  it("Atlas's plan delegates to a peer's skill: a durable task of Atlas's calls the peer and completes with its artifact", async () => {
    const f = await atlasFleet(20);
    await toolHost(f.config, f.names, f.resources, f.sources);
    const taskId = await f.delegated("translate", "Translate the customer's letter into German");
    const task = await f.settled(taskId);
    assert.equal(task.status.state, "TASK_STATE_COMPLETED", JSON.stringify(task.status));
    // the delegation's spend and latency are in the audit trail, in Atlas's name, as a call of the peer's tool
    const trail = await waitFor("the delegation in the audit trail", async () => (await readAuditRecords(js, f.names, "msgpack", { agentId: "atlas", tool: "acme.translate" })).records[0]);
    assert.deepEqual([trail.ok, trail.risk, trail.costUsd, trail.mode, trail.reportedBy], [true, "AUTO", 0.02, "run", "agent-host"]);
    assert.deepEqual(trail.input, { text: "Translate the customer's letter into German\n\nWhy: the customer's letter" }, "the peer tool's input: what the peer was sent");
    const recorded = PeerToolOutput.parse(trail.output);
    assert.deepEqual([recorded.peer, recorded.skill, recorded.text, recorded.attempts], ["acme", "translate", "Übersetzung: Translate the customer's letter into German", 1], "the peer tool's output");
    assert.ok(trail.durationMs >= recorded.latencyMs, "the duration covers the whole delegation");
    const answer = task.artifacts?.find((a) => a.metadata?.["peer"] === "acme");
    assert.ok(answer, "the peer's artifact is the task's");
    assert.deepEqual(answer.parts[0], { text: "Übersetzung: Translate the customer's letter into German", mediaType: "text/plain" });
    const record = peerRecord(task);
    assert.equal(record?.costUsd, 0.02);
    assert.equal(record?.attempts, 1);
    assert.ok(record?.taskId, "the peer's task id is kept");

    // Atlas dying after its report but before the task's end: the redelivered task reports the same delegation again,
    // and the trail still holds it once (the report's run claim is keyed by the task)
    const atlas = new AgentTools({ nc, js, names: f.names, codec: "msgpack", agentId: "atlas", allowed: ["*"], risks: { get: () => undefined } });
    const resent = { tool: "acme.translate", input: trail.input, output: trail.output, ok: true, durationMs: trail.durationMs, costUsd: 0.02, at: Date.now(), taskId };
    assert.equal(await atlas.reportDelegation(resent), true, "the repeated report is answered as recorded");
    assert.equal(await atlas.reportDelegation({ ...resent, taskId: `${taskId}-other` }), true);
    const delegations = await waitFor("the other task's delegation in the trail", async () => {
      const { records } = await readAuditRecords(js, f.names, "msgpack", { agentId: "atlas", tool: "acme.translate" });
      return records.length >= 2 ? records : undefined;
    });
    assert.equal(delegations.length, 2, "one record per task: the repeated report of the first added none");
  });

  it("the peer going away mid-task is retried with backoff while the task waits, and the task completes when it is back", async () => {
    const f = await atlasFleet(50);
    gate = new Promise<void>((resolve) => (release = resolve));
    const sent = peer.received.length;
    const taskId = await f.delegated("summarise", "Summarise the customer's letter");
    await waitFor("the peer has the message", () => peer.received.length > sent);
    await peer.stop();
    const waiting = await waitFor("the task records its wait", async () => peerRecord(await f.store.get("atlas", taskId))?.waiting);
    assert.equal(waiting.code, "PEER_UNAVAILABLE");
    const meanwhile = await f.store.get("atlas", taskId);
    assert.equal(meanwhile?.status.state, "TASK_STATE_WORKING", "the task waits, neither failed nor lost");
    assert.match(taskRow("atlas", meanwhile!)[6] ?? "", /^waiting \(PEER_UNAVAILABLE, attempt \d+\): /, "fleet tasks says what it waits for");
    release();
    await peer.start();
    const task = await f.settled(taskId);
    assert.equal(task.status.state, "TASK_STATE_COMPLETED", JSON.stringify(task.status));
    assert.match(JSON.stringify(task.artifacts), /Zusammenfassung/);
    assert.equal(peer.received.length, sent + 1, "the peer's task was resumed, not sent again");
    assert.ok((peerRecord(task)?.attempts ?? 0) >= 2);
    assert.equal(peerRecord(task)?.waiting, undefined);
  });

  it("Atlas's process dying mid-delegation loses nothing: the redelivered task resumes the peer's task (not sent again) and completes", async () => {
    const { config, names, resources } = await fleet(20);
    const store = new TaskStore(resources.kv.tasks, names, "msgpack");
    const message = { messageId: "m-crash", role: "ROLE_USER" as const, parts: [{ text: "Summarise the contract" }, { data: { peerTask: { peer: "acme", skill: "summarise" } } }] };
    const task: Task = { id: "t-crash", contextId: "t-crash", status: { state: "TASK_STATE_WORKING", timestamp: new Date().toISOString() }, history: [message] };
    await store.create("atlas", task);
    const stage = () => peerTaskStage({ self: "atlas", config, clients: peerClients(config, env, log), store, now: () => Date.now() });
    const input = { agentId: "atlas", trigger: "task" as const, plan: { kind: "work" as const, item: { taskId: task.id, contextId: task.id, message }, skillId: undefined } };
    const next = async () => ({ ok: false as const, reason: "not for the peer stage" });
    gate = new Promise<void>((resolve) => (release = resolve));
    const sent = peer.received.length;
    // the first process: the peer has the task, then the process goes down (its work's signal fires)
    const dying = new AbortController();
    const first = stage().act!(input, { signal: dying.signal, log }, next);
    await waitFor("the peer's task id is on our task", async () => peerRecord(await store.get("atlas", task.id))?.taskId);
    dying.abort();
    const handedBack = await first;
    assert.ok(!handedBack.ok && "retry" in handedBack, `handed back for redelivery, not failed: ${JSON.stringify(handedBack)}`);
    // the second process takes the redelivered task
    release();
    const outcome = await stage().act!(input, { signal: new AbortController().signal, log }, next);
    assert.ok(outcome.ok, JSON.stringify(outcome));
    assert.match(JSON.stringify(outcome.artifacts), /Zusammenfassung/);
    assert.equal(peer.received.length, sent + 1, "the peer got the message once");
  });

  it("a peer that stays away: after the retry limit the task fails with PEER_UNAVAILABLE, shown by fleet tasks", async () => {
    const f = await atlasFleet(3);
    await toolHost(f.config, f.names, f.resources, f.sources);
    await peer.stop();
    try {
      const taskId = await f.delegated("translate", "Translate the customer's reply into German");
      const task = await f.settled(taskId);
      assert.equal(task.status.state, "TASK_STATE_FAILED");
      assert.match(JSON.stringify(task.status.message), /PEER_UNAVAILABLE: .*after 3 attempts/);
      assert.match(taskRow("atlas", task)[6] ?? "", /^PEER_UNAVAILABLE: /);
      const trail = await waitFor("the failed delegation in the audit trail", async () => (await readAuditRecords(js, f.names, "msgpack", { agentId: "atlas", tool: "acme.translate" })).records[0]);
      assert.deepEqual([trail.ok, trail.error?.code, trail.costUsd, trail.reportedBy], [false, "PEER_UNAVAILABLE", 0, "agent-host"]);
    } finally {
      await peer.start();
    }
  });
});
