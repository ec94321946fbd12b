import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { jetstream, jetstreamManager, type JetStreamClient } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino } from "pino";
import type { HostedAgent, ModelWorkGate } from "../../actors/index.js";
import { pipelineStage, PipelineRunStore, publishFinding, toolCallKey, type PipelineRunnerDeps } from "../../behaviours/index.js";
import { parseFleetConfig, type FleetConfig } from "../../config/index.js";
import { AgentTools, readAuditRecords, referenceToolRisks, referenceTools, ToolHost } from "../../governance/index.js";
import { connectNats, decode, ensureFleetResources, Finding, FleetNames, PipelineRunRecord, type FleetResources, type Message } from "../../protocol/index.js";
import { RouterClient, type RunningRouter } from "../../router/index.js";
import { NatsServer } from "../helpers/nats-server.js";
import { OpenAIServer } from "../helpers/openai-server.js";
import { routerFleetYaml, startTestRouter, usageRecords } from "../helpers/router-fleet.js";

/**
 * Pipelines run by ship's behaviour stage against real parts in this process: a nats-server, the router with its tiers on
 * a scripted OpenAI server, a tool host serving the reference tools (governed: allow list, audit, idempotency keys), and
 * local HTTP sites whose request counts show how often a check really ran.
 */

const PREFIX = "pipes";
const SCHEMA = {
  type: "object",
  properties: { summary: { type: "string" }, severity: { type: "string", enum: ["info", "warning", "critical"] } },
  required: ["summary", "severity"],
  additionalProperties: false,
};

const PIPELINES = `
pipelines:
  site-health:
    input: { sites: [], ports: [] }
    steps:
      - id: http
        tool: http_check
        forEach: input.sites
        input: { url: "{{item.url}}", timeoutMs: 3000 }
        findings:
          - when: { path: output.ok, is: falsy }
            severity: critical
            subject: "{{item.name}}"
            key: http-down
            summary: "{{item.name}} answers {{output.status}}"
      - id: port
        tool: port_check
        forEach: input.ports
        input: { host: 127.0.0.1, port: "{{item}}", timeoutMs: 3000 }
        findings:
          - when: { path: output.open, is: falsy }
            subject: "port {{item}}"
            key: port-closed
            summary: "port {{item}} is closed"
      - id: triage
        when: { path: findings, is: nonEmpty }
        model:
          tier: triage
          uses: [http]
          prompt: "Findings so far: {{findings}}. Write a short incident summary for the operator."
          output: ${JSON.stringify(SCHEMA)}
    report: "{{steps.triage.output.severity}}: {{steps.triage.output.summary}}"
  announce:
    steps:
      - id: post
        tool: channel_post
        input: { channel: console, to: operator, text: "{{input.text}}" }
`;

const SHIP: HostedAgent = { id: "ship", name: "Ship", role: "devops", defaultTier: "workhorse", cycleMinutes: 30, skills: [{ id: "health", name: "Health", description: "Checks hosts", tags: ["health"] }] };

/** A local site answering `status` and counting the requests it got. */
async function site(status: () => number): Promise<{ server: Server; url: string; hits: () => number }> {
  let hits = 0;
  const server = createServer((_req, res) => {
    hits++;
    res.writeHead(status()).end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/health`, hits: () => hits };
}

describe("pipelines: JSON in, JSON out, a tier per step", () => {
  let nats: NatsServer;
  let openai: OpenAIServer;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let resources: FleetResources;
  let router: RunningRouter;
  let host: ToolHost;
  let config: FleetConfig;
  let deps: PipelineRunnerDeps;
  let up: Awaited<ReturnType<typeof site>>;
  let down: Awaited<ReturnType<typeof site>>;
  let openPort: Server;
  const names = new FleetNames(PREFIX);
  const log = pino({ level: "silent" });

  before(async () => {
    [nats, openai] = await Promise.all([NatsServer.start(), OpenAIServer.start()]);
    nc = await connectNats({ servers: nats.url, name: "pipeline-test" });
    js = jetstream(nc);
    resources = await ensureFleetResources(nc, names);
    const yaml = routerFleetYaml({ baseUrl: openai.baseUrl, prefix: PREFIX, routing: "  classifier: false\n  cache: { enabled: false }" }).replace(
      "tools: [http_check]",
      "tools: [http_check, port_check, channel_post]",
    );
    config = parseFleetConfig(yaml + PIPELINES, "pipelines-test.yaml");
    router = await startTestRouter(nc, config);
    host = new ToolHost({
      nc, js, names, codec: "msgpack", config, kv: { proposals: resources.kv.proposals, toolruns: resources.kv.toolruns }, host: "test-host", log,
      tools: referenceTools({ js, names, codec: "msgpack", config }),
    });
    await host.start();
    const tools = new AgentTools({ nc, js, names, codec: "msgpack", agentId: "ship", allowed: ["http_check", "port_check", "channel_post"], risks: new Map(Object.entries(referenceToolRisks())) });
    deps = {
      agent: SHIP,
      tools,
      router: new RouterClient(nc, names, { timeoutMs: 20_000 }),
      store: new PipelineRunStore(resources.kv.pipelineruns, names, "msgpack"),
      publishFinding: (finding) => publishFinding(js, names, "msgpack", finding),
      now: () => Date.now(),
    };
    up = await site(() => 200);
    down = await site(() => 503);
    openPort = createServer();
    await new Promise<void>((r) => openPort.listen(0, "127.0.0.1", r));
  });
  after(async () => {
    await host?.stop();
    await router?.stop();
    for (const s of [up?.server, down?.server, openPort]) s?.close();
    await nc?.close();
    await Promise.all([nats?.stop(), openai?.close()]);
  });

  const portOf = (s: Server) => (s.address() as AddressInfo).port;

  function pipelineTask(pipeline: string, input: Record<string, unknown>, taskId = `t-${randomUUID()}`) {
    const message: Message = { messageId: randomUUID(), role: "ROLE_USER", parts: [{ text: `pipeline ${pipeline}` }], metadata: { work: { pipeline, input } } };
    return { taskId, input: { agentId: "ship", trigger: "task" as const, plan: { kind: "work" as const, item: { taskId, contextId: taskId, message }, skillId: undefined } } };
  }

  const stage = () => pipelineStage(config.pipelines, deps);
  const act = async (task: ReturnType<typeof pipelineTask>, signal = new AbortController().signal) =>
    stage().act!(task.input, { signal, log }, async () => ({ ok: false, reason: "reached the end of the chain" }));

  function runOf(outcome: Awaited<ReturnType<typeof act>>) {
    assert.ok(outcome.ok, `the run failed: ${"reason" in outcome ? outcome.reason : ""}`);
    const artifact = outcome.artifacts[0];
    assert.ok(artifact);
    const text = artifact.parts.find((p) => "text" in p);
    const data = artifact.parts.find((p) => "data" in p);
    assert.ok(text && "text" in text && data && "data" in data);
    return { text: text.text, data: Object(data.data), metadata: artifact.metadata ?? {} };
  }

  const chats = (from: number) => openai.requests.slice(from).filter((r) => r.path.endsWith("/chat/completions")).map((r) => Object(r.body));
  async function findingsOfTask(taskId: string): Promise<Finding[]> {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(names.stream("FINDINGS"));
    const out: Finding[] = [];
    for (let seq = info.state.first_seq; info.state.messages > 0 && seq <= info.state.last_seq; seq++) {
      const msg = await jsm.streams.getMessage(names.stream("FINDINGS"), { seq }).catch(() => undefined);
      const d = msg ? decode(Finding, msg.data) : undefined;
      if (d?.ok && d.value.taskId === taskId) out.push(d.value);
    }
    return out;
  }

  it("a clean run: every site answers, no finding, no model call, $0, nothing to deliver", async () => {
    const from = openai.requests.length;
    const hits = up.hits();
    const task = pipelineTask("site-health", { sites: [{ name: "up", url: up.url }], ports: [portOf(openPort)] });
    const run = runOf(await act(task));

    assert.equal(run.metadata.found, false);
    assert.equal(run.text, "nothing found");
    assert.equal(run.data.costUsd, 0);
    assert.deepEqual(run.data.steps.map((s: { id: string; status: string }) => [s.id, s.status]), [["http", "done"], ["port", "done"], ["triage", "skipped"]]);
    assert.equal(run.data.outputs.http[0].status, 200);
    assert.equal(run.data.outputs.port[0].open, true);
    assert.equal(up.hits(), hits + 1, "the site was really checked");
    assert.equal(chats(from).length, 0, "no model call");
    assert.equal((await usageRecords(nc, names)).filter((u) => u.taskId === task.taskId).length, 0, "no USAGE record");
    assert.deepEqual(await findingsOfTask(task.taskId), []);
  });

  it("a site down: a finding on FINDINGS, one model call at triage with only the outputs it uses, the report from its answer", async () => {
    const from = openai.requests.length;
    openai.script("m-nano", { content: JSON.stringify({ summary: "down answers 503; port open", severity: "critical" }) });
    const task = pipelineTask("site-health", { sites: [{ name: "up", url: up.url }, { name: "down", url: down.url }], ports: [portOf(openPort)] });
    const run = runOf(await act(task));

    assert.equal(run.metadata.found, true);
    assert.equal(run.text, "critical: down answers 503; port open");
    const published = await findingsOfTask(task.taskId);
    assert.deepEqual(published.map((f) => [f.agentId, f.duty, f.subject, f.key, f.severity, f.summary]), [["ship", "site-health", "down", "http-down", "critical", "down answers 503"]]);
    assert.deepEqual(run.data.findings.map((f: Finding) => f.id), published.map((f) => f.id));

    const bodies = chats(from);
    assert.equal(bodies.length, 1, "one model call");
    assert.equal(bodies[0].model, "m-nano", "the triage alias is nano");
    assert.equal(bodies[0].response_format?.type, "json_schema", "the output schema is the response format");
    const prompt = JSON.stringify(bodies[0].messages);
    assert.match(prompt, /down answers 503/, "the findings");
    assert.match(prompt, /Output of step \\"http\\"/, "the output it uses");
    assert.match(prompt, /\\"status\\":503/);
    assert.doesNotMatch(prompt, /\\"open\\"/, "not the port step's output: the step does not use it");
    assert.equal(bodies[0].messages.length, 2, "a system line and the prompt: no history, no memory");

    const triage = run.data.steps.find((s: { id: string }) => s.id === "triage");
    assert.equal(triage.model.servedTier, "nano");
    assert.equal(triage.model.reason, "alias");
    const usage = (await usageRecords(nc, names)).filter((u) => u.taskId === task.taskId && u.ok);
    assert.equal(usage.length, 1);
    assert.ok(Math.abs(run.data.costUsd - usage[0]!.costUsd) < 1e-12, "the run's cost is its one call");
  });

  it("an answer that breaks the schema escalates that step alone one tier; the tool steps before it are not run again", async () => {
    const from = openai.requests.length;
    const hits = down.hits();
    const audited = async () => (await readAuditRecords(js, names, "msgpack", { agentId: "ship", tool: "http_check" })).records.length;
    const auditedBefore = await audited();
    openai.script("m-nano", { content: JSON.stringify({ summary: "down", severity: "catastrophic" }) });
    openai.script("m-capable", { content: JSON.stringify({ summary: "down answers 503", severity: "critical" }) });
    const task = pipelineTask("site-health", { sites: [{ name: "down", url: down.url }] });
    const run = runOf(await act(task));

    const triage = run.data.steps.find((s: { id: string }) => s.id === "triage");
    assert.equal(triage.model.requestedTier, "nano");
    assert.equal(triage.model.servedTier, "capable", "one tier up (by price: nano, capable, workhorse, ...)");
    assert.equal(triage.model.escalations.length, 1);
    assert.match(triage.model.escalations[0].reason, /^schema: /);
    assert.equal(run.text, "critical: down answers 503");
    assert.deepEqual(chats(from).map((b) => b.model), ["m-nano", "m-capable"]);
    assert.equal(down.hits(), hits + 1, "the site was checked once: the escalation re-ran only the model step");
    assert.equal(await audited(), auditedBefore + 1, "one audited tool call");
  });

  it("stopped between steps, the task resumes: the finished step is not run again, its finding not published twice", async () => {
    const from = openai.requests.length;
    const hits = down.hits();
    openai.script("m-nano", { content: JSON.stringify({ summary: "down again", severity: "warning" }) });
    const task = pipelineTask("site-health", { sites: [{ name: "down", url: down.url }] });
    // the host stops right after the first step's record is saved
    const stopping = new AbortController();
    const store = new PipelineRunStore(resources.kv.pipelineruns, names, "msgpack");
    const firstDeps: PipelineRunnerDeps = {
      ...deps,
      store: {
        load: (agentId, taskId) => store.load(agentId, taskId),
        save: async (record: PipelineRunRecord) => {
          await store.save(record);
          stopping.abort();
        },
      },
    };
    const stopped = await pipelineStage(config.pipelines, firstDeps).act!(task.input, { signal: stopping.signal, log }, async () => ({ ok: false, reason: "end" }));
    assert.ok(!stopped.ok && "retry" in stopped, "stopped mid-run: the task is to be redelivered");
    assert.equal(chats(from).length, 0, "the model step had not started");
    const saved = await store.load("ship", task.taskId);
    assert.deepEqual(saved?.steps.map((s) => s.id), ["http"]);

    const run = runOf(await act(task));
    assert.equal(run.text, "warning: down again");
    assert.equal(down.hits(), hits + 1, "the site was checked once over both attempts");
    assert.equal(chats(from).length, 1);
    assert.equal((await findingsOfTask(task.taskId)).length, 1, "one finding");

    // the same task once more (a redelivery after completion): everything is answered from the record
    const again = runOf(await act(task));
    assert.equal(again.text, run.text);
    assert.equal(chats(from).length, 1, "no second model call");
    assert.equal(down.hits(), hits + 1);
  });

  it("quiet hours hold a run at its model step, not before: the tool step runs and is kept, and the run goes on from there", async () => {
    const from = openai.requests.length;
    const hits = down.hits();
    openai.script("m-nano", { content: JSON.stringify({ summary: "down at night", severity: "warning" }) });
    const task = pipelineTask("site-health", { sites: [{ name: "down", url: down.url }] });
    const asked: string[] = [];
    const quiet: ModelWorkGate = {
      check: (step) => {
        asked.push(step.title ?? "");
        return { reason: "quiet-hours", until: Date.now() + 3_600_000, detail: "quiet hours until 06:30 UTC" };
      },
      holdOf: () => undefined,
    };
    const held = await pipelineStage(config.pipelines, { ...deps, gate: quiet }).act!(task.input, { signal: new AbortController().signal, log }, async () => ({ ok: false, reason: "end" }));
    assert.ok(!held.ok && "held" in held && held.held?.reason === "quiet-hours", "held, not failed");
    assert.deepEqual(held.held.found, [{ subject: "down", key: "http-down" }], "the hold says what the run found, for the duty's next runs");
    assert.deepEqual(asked, ["site-health: triage"], "the gate was asked once, for the model step");
    assert.equal(down.hits(), hits + 1, "the tool step ran in quiet hours (tier 0)");
    assert.equal(chats(from).length, 0, "no model call while held");

    // the window is over: the run goes on at the model step, the site is not checked again
    const run = runOf(await act(task));
    assert.equal(run.text, "warning: down at night");
    assert.equal(down.hits(), hits + 1);
    assert.equal(chats(from).length, 1);
  });

  it("a problem the duty has open is still open when seen again: not published again, no model step, $0, nothing to deliver", async () => {
    const from = openai.requests.length;
    const hits = down.hits();
    const task = pipelineTask("site-health", { sites: [{ name: "down", url: down.url }] });
    const message = task.input.plan.item.message;
    message.metadata = { work: { ...Object(message.metadata?.work), duty: "watch", open: [{ subject: "down", key: "http-down" }] } };
    const run = runOf(await act(task));
    assert.equal(down.hits(), hits + 1, "the site was checked");
    assert.equal(run.metadata.found, false, "nothing new");
    assert.deepEqual([run.metadata.stillOpen, run.metadata.open], [1, [{ subject: "down", key: "http-down" }]]);
    assert.equal(run.data.stillOpen.length, 1);
    assert.deepEqual(await findingsOfTask(task.taskId), [], "not published again");
    assert.equal(chats(from).length, 0, "no model call");
    assert.equal(run.data.costUsd, 0);
  });

  it("a tool call asked again under its key is replayed by the tool host, not run again", async () => {
    const hits = up.hits();
    const taskId = `t-${randomUUID()}`;
    const key = toolCallKey(taskId, "http", 0);
    const first = await deps.tools.call("http_check", { url: up.url }, taskId, { idempotencyKey: key });
    const second = await deps.tools.call("http_check", { url: up.url }, taskId, { idempotencyKey: key });
    assert.equal(first.replayed, false);
    assert.equal(second.replayed, true);
    assert.deepEqual(second.output, first.output);
    assert.equal(up.hits(), hits + 1);
  });

  it("a PROPOSE tool in a pipeline becomes a proposal, as anywhere else", async () => {
    const task = pipelineTask("announce", { text: "deploy done" });
    const run = runOf(await act(task));
    const post = run.data.outputs.post;
    assert.equal(post.proposed, true);
    assert.equal(post.risk, "PROPOSE");
    assert.match(post.proposalId, /^t-/, "named by the task and the action, so a redelivery proposes the same one");
    assert.deepEqual(run.data.steps[0].tool.proposals, [post.proposalId]);
  });

  it("a task naming an unknown pipeline fails with PIPELINE_NOT_FOUND; a task naming none goes on down the chain", async () => {
    const outcome = await act(pipelineTask("no-such", {}));
    assert.ok(!outcome.ok && "reason" in outcome);
    assert.match(outcome.reason, /^PIPELINE_NOT_FOUND: no pipeline "no-such"/);
    const plain = pipelineTask("x", {});
    plain.input.plan.item.message.metadata = {};
    const passed = await stage().act!(plain.input, { signal: new AbortController().signal, log }, async () => ({ ok: true, artifacts: [] }));
    assert.deepEqual(passed, { ok: true, artifacts: [] });
  });
});
