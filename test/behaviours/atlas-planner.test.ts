import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino } from "pino";
import { TaskDedup, TaskStore, submitTask, type ModelWorkGate, type RuntimeDeps } from "../../actors/index.js";
import { AtlasPlanner, buildStatusReport, type PlannedAssignment } from "../../behaviours/index.js";
import { parseFleetConfig, type FleetConfig } from "../../config/index.js";
import {
  connectNats,
  decode,
  encode,
  ensureFleetResources,
  FleetNames,
  OutboxRecord,
  TaskAssignment,
  textOf,
  wireHeaders,
  type Finding,
  type Task,
} from "../../protocol/index.js";
import { RouterClient, type RunningRouter } from "../../router/index.js";
import { NatsServer } from "../helpers/nats-server.js";
import { OpenAIServer } from "../helpers/openai-server.js";
import { routerFleetYaml, startTestRouter } from "../helpers/router-fleet.js";

/*
 * Atlas's plan against real parts: a nats-server, the router on a scripted OpenAI server, real streams and buckets, on a
 * simulated clock. Each test has a fleet of its own (prefix), so their inputs never mix.
 */

const log = pino({ level: "silent" });
/** a gate that never holds: planning as by day with budget left */
const openGate: ModelWorkGate = { check: () => undefined, holdOf: () => undefined };
const DAY = 86_400_000;
const EXTRA = `
principals:
  - { id: owner, channel: console, to: owner }
pipelines:
  site-health:
    description: Checks a site's health
    steps:
      - id: check
        tool: http_check
        input: { url: "{{input.target}}" }
`;

interface Bed {
  config: FleetConfig;
  names: FleetNames;
  deps: RuntimeDeps;
  clock: { t: number; now(): number };
  planner: () => AtlasPlanner;
  store: TaskStore;
}

describe("Atlas's plan", () => {
  let nats: NatsServer;
  let openai: OpenAIServer;
  let nc: NatsConnection;
  const routers: RunningRouter[] = [];
  let fleets = 0;

  before(async () => {
    [nats, openai] = await Promise.all([NatsServer.start(), OpenAIServer.start()]);
    nc = await connectNats({ servers: nats.url, name: "atlas-planner-test" });
  });
  after(async () => {
    for (const r of routers) await r.stop();
    await nc?.close();
    await Promise.all([nats?.stop(), openai?.close()]);
  });

  async function bed(): Promise<Bed> {
    const prefix = `atl${++fleets}`;
    const config = parseFleetConfig(routerFleetYaml({ baseUrl: openai.baseUrl, prefix, routing: "  classifier: false\n  cache: { enabled: false }" }) + EXTRA, "atlas-test.yaml");
    const names = new FleetNames(prefix);
    const resources = await ensureFleetResources(nc, names);
    // starts at the wall clock: a first cycle looks back from it by the streams' own timestamps
    const clock = { t: Date.now(), now() { return this.t; } };
    routers.push(await startTestRouter(nc, config, {}, clock));
    const deps: RuntimeDeps = { ...resources, nc, js: jetstream(nc), names, codec: "msgpack", clock, log, gate: openGate };
    const client = new RouterClient(nc, names, { timeoutMs: 20_000 });
    openai.clear();
    return { config, names, deps, clock, planner: () => new AtlasPlanner({ config, self: "atlas", deps, router: client, log }), store: new TaskStore(resources.kv.tasks, names, "msgpack") };
  }

  const chats = () => openai.requests.filter((r) => r.path.endsWith("/chat/completions")).map((r) => ({ model: r.model, body: Object(r.body) }));

  const plan = (assignments: Partial<PlannedAssignment>[], notices: { text: string; severity: string }[] = []) => ({
    content: JSON.stringify({
      assignments: assignments.map((a) => ({ why: "because", priority: "normal", skill: null, pipeline: null, tier: null, target: null, tools: [], ...a })),
      notices,
    }),
  });

  async function publishFinding(b: Bed, finding: Partial<Finding> = {}): Promise<void> {
    const full: Finding = {
      id: `f-${Math.random().toString(36).slice(2)}`,
      agentId: "ship",
      duty: "site-health",
      subject: "shop.example.com",
      key: "http-503",
      severity: "critical",
      summary: "shop.example.com answers 503",
      evidence: { status: 503 },
      at: b.clock.now(),
      ...finding,
    };
    await b.deps.js.publish(b.names.finding(full.agentId), encode(full, "msgpack"), { headers: wireHeaders("msgpack") });
  }

  async function outbox(b: Bed): Promise<OutboxRecord[]> {
    const stream = b.names.stream("OUTBOX");
    const info = await b.deps.jsm.streams.info(stream);
    const out: OutboxRecord[] = [];
    for (let seq = info.state.first_seq; info.state.messages > 0 && seq <= info.state.last_seq; seq++) {
      const m = await b.deps.jsm.streams.getMessage(stream, { seq }).catch(() => undefined);
      const d = m ? decode(OutboxRecord, m.data) : undefined;
      if (d?.ok) out.push(d.value);
    }
    return out;
  }

  async function tasksOf(b: Bed, agent: string): Promise<Task[]> {
    return (await b.store.list(agent)).filter((t) => t.status.state !== "TASK_STATE_REJECTED");
  }

  it("a finding leads the next cycle to plan a fix and a notice: the fix reaches ship with its pipeline; a cycle with nothing new (even after a restart) calls no model", async () => {
    const b = await bed();
    await publishFinding(b);
    openai.script(
      "m-workhorse",
      plan(
        [{ agent: "ship", what: "Restore shop.example.com, which answers 503", why: "finding http-503", priority: "high", pipeline: "site-health", target: "https://shop.example.com/" }],
        [{ text: "shop.example.com is down; ship is restoring it", severity: "critical" }],
      ),
    );
    const result = await b.planner().cycle();
    assert.equal(result.kind, "planned");
    const calls = chats();
    assert.equal(calls.length, 1, "one planning call");
    assert.equal(calls[0]?.model, "m-workhorse", "at the planning tier");
    assert.equal(calls[0]?.body.response_format?.type, "json_schema", "the plan's schema is the response format");
    assert.match(JSON.stringify(calls[0]?.body.messages), /shop.example.com answers 503/, "the finding is in the prompt");

    const [task] = await tasksOf(b, "ship");
    assert.ok(task, "ship has the fix");
    assert.equal(result.kind === "planned" ? result.record.assigned[0]?.taskId : undefined, task.id);
    const metadata = task.history?.[0]?.metadata;
    assert.deepEqual(metadata?.work, { trigger: "atlas", pipeline: "site-health", input: { target: "https://shop.example.com/", subject: "https://shop.example.com/" } });
    assert.equal(metadata?.target, "shop.example.com");
    const assigned = await b.deps.jsm.streams.getMessage(b.names.stream("TASKS"), { last_by_subj: b.names.task("ship") });
    const assignment = decode(TaskAssignment, assigned!.data);
    assert.ok(assignment.ok);
    assert.equal(assignment.value.taskId, task.id);
    assert.equal(assignment.value.assignedBy, "atlas");
    assert.match(textOf(assignment.value.message), /^Restore shop.example.com, which answers 503/);

    const notices = await outbox(b);
    assert.equal(notices.length, 1);
    assert.equal(notices[0]?.channel, "console");
    assert.equal(notices[0]?.to, "owner");
    assert.match(notices[0]?.text ?? "", /shop.example.com is down/);

    // the status report is built from the findings, site by site
    const report = await buildStatusReport(b.config.agents, b.deps, b.store);
    assert.equal(report.sites[0]?.subject, "shop.example.com");
    assert.equal(report.sites[0]?.worst, "critical");
    assert.deepEqual(report.sites[0]?.findings[0]?.evidence, { status: 503 });
    assert.match(String(report.artifact.parts[0] && "text" in report.artifact.parts[0] ? report.artifact.parts[0].text : ""), /shop.example.com: 1 open \(critical\)/);

    b.clock.t += 15 * 60_000;
    assert.equal((await b.planner().cycle()).kind, "quiet", "a restarted Atlas finds nothing new");
    assert.equal(chats().length, 1, "and calls no model");
  });

  it("quiet hours hold the plan, not the inputs: no model call and the cursor stays, so the morning's cycle plans from the finding", async () => {
    const b = await bed();
    await publishFinding(b);
    const quiet: ModelWorkGate = { check: () => ({ reason: "quiet-hours", until: b.clock.now() + 3_600_000, detail: "quiet hours until 06:30 UTC" }), holdOf: () => undefined };
    const held = await new AtlasPlanner({ config: b.config, self: "atlas", deps: { ...b.deps, gate: quiet }, router: new RouterClient(b.deps.nc, b.names, { timeoutMs: 20_000 }), log }).cycle();
    assert.equal(held.kind, "held");
    assert.equal(chats().length, 0, "no planning call in quiet hours");

    openai.script("m-workhorse", plan([{ agent: "ship", what: "Restore shop.example.com", why: "finding http-503", priority: "high", pipeline: "site-health", target: "https://shop.example.com/" }], []));
    b.clock.t += 60 * 60_000;
    const morning = await b.planner().cycle();
    assert.equal(morning.kind, "planned", "the finding waited for the morning plan");
    assert.match(JSON.stringify(chats()[0]?.body.messages), /shop.example.com answers 503/);
  });

  it("a plan naming an unknown agent fails its check and is asked once more at power; a second failure (a tool ship lacks) is a notice, not a loop", async () => {
    const b = await bed();
    await publishFinding(b, { summary: "blog.example.com certificate expires in 3 days", subject: "blog.example.com", key: "tls-expiry", severity: "warning" });
    openai.script("m-workhorse", plan([{ agent: "nobody", what: "Renew the TLS certificate of blog.example.com" }]));
    openai.script("m-power", plan([{ agent: "ship", what: "Renew the health of the TLS certificate of blog.example.com", tools: ["ssh_exec"] }]));
    const result = await b.planner().cycle();
    const calls = chats();
    assert.deepEqual(calls.map((c) => c.model), ["m-workhorse", "m-power"], "one call at workhorse, one at power");
    assert.match(JSON.stringify(calls[1]?.body.messages), /no agent \\"nobody\\" in this fleet/, "the check's failures are in the second prompt");
    assert.ok(result.kind === "planned");
    assert.equal(result.record.attempts.length, 2);
    assert.deepEqual(result.record.refused.map((r) => r.agent), ["ship"]);
    assert.match(result.record.refused[0]?.reasons.join() ?? "", /lacks the tool ssh_exec/);
    assert.equal((await tasksOf(b, "ship")).length, 0, "nothing was assigned");
    const notices = await outbox(b);
    assert.equal(notices.length, 1);
    assert.match(notices[0]?.text ?? "", /could not assign 1 piece\(s\) of work after asking twice/);
    assert.match(notices[0]?.text ?? "", /ssh_exec/);

    b.clock.t += 15 * 60_000;
    assert.equal((await b.planner().cycle()).kind, "quiet");
    assert.equal(chats().length, 2, "no third call");
  });

  it("work that duplicates work completed in the last 7 days is not assigned, and is no reason to escalate", async () => {
    const b = await bed();
    // the earlier work was created and completed three days ago
    const threeDaysAgo = () => b.clock.now() - 3 * DAY;
    const dedup = new TaskDedup({ kv: b.deps.kv.dedup, codec: "msgpack", now: threeDaysAgo });
    const done = await submitTask(
      { js: b.deps.js, store: b.store, dedup, names: b.names, codec: "msgpack", now: threeDaysAgo },
      "ship",
      { messageId: "earlier", role: "ROLE_USER", parts: [{ text: "Check the health of blog.example.com" }] },
      "operator",
      "discovery",
    );
    await b.store.transition("ship", done.id, () => ({ status: { state: "TASK_STATE_COMPLETED", timestamp: new Date(b.clock.now()).toISOString() } }));
    await dedup.completed("ship", done.id);
    await publishFinding(b, { subject: "blog.example.com", key: "slow", severity: "warning", summary: "blog.example.com is slow" });
    openai.script("m-workhorse", plan([{ agent: "ship", what: "Check the health of blog.example.com", target: "blog.example.com" }]));
    const result = await b.planner().cycle();
    assert.ok(result.kind === "planned");
    assert.equal(chats().length, 1, "a duplicate does not escalate");
    assert.equal(result.record.assigned.length, 0);
    assert.equal(result.record.skipped.length, 1);
    assert.match(result.record.skipped[0]?.reason ?? "", new RegExp(`discovery dedup: .*${done.id}.*completed 3 d ago`));
    assert.deepEqual((await tasksOf(b, "ship")).map((t) => t.id), [done.id], "no second task");
  });

  it("two assignments on one target: the higher priority goes, the other is held with the reason and goes out once the first has ended (no model call)", async () => {
    const b = await bed();
    await publishFinding(b);
    openai.script(
      "m-workhorse",
      plan([
        { agent: "scout", what: "Research why shop.example.com fails for customers", priority: "normal", target: "shop.example.com" },
        { agent: "ship", what: "Check the health of shop.example.com and restart it", priority: "high", target: "https://www.shop.example.com" },
      ]),
    );
    const result = await b.planner().cycle();
    assert.ok(result.kind === "planned");
    assert.deepEqual(result.record.assigned.map((a) => a.agent), ["ship"]);
    assert.deepEqual(result.record.held.map((h) => h.agent), ["scout"]);
    assert.match(result.record.held[0]?.reason ?? "", /shop.example.com is also the target of ship's .* \(it has priority high over normal\)/);
    const [shipTask] = await tasksOf(b, "ship");
    assert.deepEqual(Object(shipTask?.history?.[0]?.metadata?.atlas).holds, [{ agent: "scout", what: "Research why shop.example.com fails for customers" }]);
    assert.equal((await tasksOf(b, "scout")).length, 0, "scout waits");

    // still open: scout keeps waiting
    b.clock.t += 15 * 60_000;
    assert.deepEqual(await b.planner().cycle(), { kind: "quiet", released: [] });
    await b.store.transition("ship", shipTask!.id, () => ({ status: { state: "TASK_STATE_COMPLETED", timestamp: new Date(b.clock.now()).toISOString() } }));
    b.clock.t += 15 * 60_000;
    const next = await b.planner().cycle();
    assert.equal(next.kind, "quiet", "releasing held work needs no plan");
    assert.equal(next.released.length, 1);
    const [scoutTask] = await tasksOf(b, "scout");
    assert.equal(scoutTask?.id, next.released[0]);
    assert.match(String(Object(scoutTask?.history?.[0]?.metadata?.atlas).heldFor), /is also the target of ship's/);
    assert.equal(chats().length, 1);
  });

  it("an assignment on a target an open task already works on is held behind it", async () => {
    const b = await bed();
    const dedup = new TaskDedup({ kv: b.deps.kv.dedup, codec: "msgpack", now: () => b.clock.now() });
    const open = await submitTask(
      { js: b.deps.js, store: b.store, dedup, names: b.names, codec: "msgpack", now: () => b.clock.now() },
      "ship",
      { messageId: "deploy", role: "ROLE_USER", parts: [{ text: "Deploy release 42 of the shop" }], metadata: { target: "shop.example.com" } },
      "operator",
    );
    await publishFinding(b);
    openai.script("m-workhorse", plan([{ agent: "scout", what: "Research the shop outage", target: "shop.example.com" }]));
    const result = await b.planner().cycle();
    assert.ok(result.kind === "planned");
    assert.equal(result.record.assigned.length, 0);
    assert.match(result.record.held[0]?.reason ?? "", new RegExp(`already being worked on by ship's open task ${open.id}`));
  });

  it("inbox notes from other agents are the next cycle's input, taken once", async () => {
    const b = await bed();
    const planner = b.planner();
    await planner.noteInbox([{ messageId: "n1", role: "ROLE_AGENT", parts: [{ text: "Competitor X launched a price cut" }], metadata: { from: "scout" } }]);
    openai.script("m-workhorse", plan([], [{ text: "Scout reports a competitor price cut", severity: "info" }]));
    const result = await planner.cycle();
    assert.ok(result.kind === "planned");
    assert.match(JSON.stringify(chats()[0]?.body.messages), /Competitor X launched a price cut/);
    assert.equal(result.record.inputs.notes, 1);
    assert.equal((await b.planner().cycle()).kind, "quiet");
  });
});
