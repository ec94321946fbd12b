import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { randomUUID } from "node:crypto";
import { context, ROOT_CONTEXT, trace, TraceFlags } from "@opentelemetry/api";
import { requestOperation, type Task } from "../../protocol/index.js";
import { AsyncContextManager } from "../../cli/telemetry.js";
import type { ProcessSupervisor } from "../../supervisor/index.js";
import { FleetClient } from "../helpers/fleet-client.js";
import { agentSpec, DIST, routerSpec, serviceSpec, startProcesses } from "../helpers/fleet-processes.js";
import { NatsServer } from "../helpers/nats-server.js";
import { OpenAIServer } from "../helpers/openai-server.js";
import { OtlpReceiver, type ReceivedSpan } from "../helpers/otlp-receiver.js";
import { routerFleetYaml } from "../helpers/router-fleet.js";
import { waitFor } from "../helpers/wait.js";

/**
 * GenAI spans across processes, everything real: ship, the router, a tool host and governance as processes of their own
 * with `telemetry.otlp` pointing at a real OTLP/HTTP receiver, the router's tiers on a scripted OpenAI server. The test
 * sends the task inside a span of its own (its `traceparent` rides the A2A request): the agent's `invoke_agent` span
 * continues that trace, its model calls are `chat` spans in the router process, its tool call an `execute_tool` span in
 * the agent and the tool host's run of it one in the host; a proposal's execution is a span in governance. Each process
 * says who it is in its resource (`service.name` natsfleet-<role>, `service.instance.id` host:pid, the fleet's prefix).
 */

const PREFIX = "otel";
/** the test's own span: the operator's tool that sent the task */
const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const SENDER_SPAN = "00f067aa0ba902b7";

describe("OpenTelemetry GenAI spans across the agent and router processes", () => {
  let nats: NatsServer;
  let openai: OpenAIServer;
  let receiver: OtlpReceiver;
  let site: Server;
  let siteUrl: string;
  let processes: ProcessSupervisor;
  let client: FleetClient;
  const dir = mkdtempSync(join(tmpdir(), "fleet-telemetry-"));

  before(async () => {
    [nats, openai, receiver] = await Promise.all([NatsServer.start(), OpenAIServer.start(), OtlpReceiver.start()]);
    site = createServer((_req, res) => res.writeHead(204).end());
    await new Promise<void>((r) => site.listen(0, "127.0.0.1", r));
    siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}/health`;
    const config = join(dir, "fleet.yaml");
    writeFileSync(
      config,
      // ship may also propose deploy_site (PROPOSE, the governed fixture's): its execution runs through governance
      routerFleetYaml({ baseUrl: openai.baseUrl, prefix: PREFIX, routing: "  classifier: false\n  cache: { enabled: false }\n  localClassifier: { enabled: false }" })
        .replace("tools: [http_check]", "tools: [http_check, deploy_site]") +
        `toolModules: [${JSON.stringify(join(DIST, "test", "fixtures", "governed-tools.js"))}]\n` +
        // atlas ("*") may propose CONFIRM tools: governance starts only with somewhere to ask
        "governance:\n  approvals: { channels: [console] }\n" +
        `memory: { dir: ${JSON.stringify(join(dir, "memory"))} }\nbackups: { dir: ${JSON.stringify(join(dir, "backups"))} }\n` +
        `telemetry:\n  otlp: { endpoint: ${JSON.stringify(receiver.endpoint)} }\n`,
    );
    processes = startProcesses([
      routerSpec(config, nats.url),
      serviceSpec("tools", config, nats.url),
      serviceSpec("governance", config, nats.url),
      agentSpec("ship", config, nats.url),
    ]);
    await processes.start();
    client = await FleetClient.connect(nats.url, PREFIX);
    await client.waitAlive(["ship"]);
  });

  after(async () => {
    await processes?.stop();
    await client?.close();
    site?.close();
    await Promise.all([nats?.stop(), openai?.close(), receiver?.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it("a task is one trace: invoke_agent (agent) → chat with the tokens (router), execute_tool (agent)", async () => {
    openai.script(
      "m-workhorse",
      { toolCalls: [{ id: "call_site", name: "http_check", arguments: { url: siteUrl } }], usage: { prompt_tokens: 120, completion_tokens: 30 } },
      { content: "The site answers 204.", usage: { prompt_tokens: 200, completion_tokens: 12 } },
    );
    // the test's process traces too: the A2A request carries its traceparent (protocol/wire.ts)
    context.setGlobalContextManager(new AsyncContextManager());
    const sender = trace.setSpanContext(ROOT_CONTEXT, { traceId: TRACE_ID, spanId: SENDER_SPAN, traceFlags: TraceFlags.SAMPLED, isRemote: false });
    const sent = await context.with(sender, () => client.send("ship", "health of our site, please"));
    context.disable();
    await client.waitState("ship", sent.id, "TASK_STATE_COMPLETED", 30_000);

    const named = (prefix: string) => receiver.spans.filter((s) => s.name.startsWith(prefix) && s.traceId === TRACE_ID);
    // the spans are exported in batches (every second): wait for the last of them
    const agentSpan = await waitFor("the invoke_agent span", () => named("invoke_agent").find((s) => s.attributes["natsfleet.task.id"] === sent.id));
    const chats = await waitFor("both chat spans", () => (named("chat").length >= 2 ? named("chat") : undefined));
    const tools = await waitFor("the execute_tool span", () => (named("execute_tool").length >= 1 ? named("execute_tool") : undefined));

    assert.equal(receiver.requests[0]?.contentType, "application/json", "OTLP/HTTP with the JSON encoding");
    assert.equal(agentSpan.name, "invoke_agent Ship");
    assert.equal(agentSpan.parentSpanId, SENDER_SPAN, "the task's trace continues the sender's");
    assertAttributes(agentSpan, {
      "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.id": "ship", "gen_ai.agent.name": "Ship",
      "gen_ai.usage.input_tokens": 320, "gen_ai.usage.output_tokens": 42,
    });

    for (const chat of chats) assert.equal(chat.parentSpanId, agentSpan.spanId, "each model call is a child of the agent's span, across processes");
    const [first, second] = [...chats].sort((a, b) => Number(a.attributes["gen_ai.usage.input_tokens"]) - Number(b.attributes["gen_ai.usage.input_tokens"]));
    assert.equal(first!.name, "chat m-workhorse");
    assert.equal(first!.kind, 3, "SPAN_KIND_CLIENT");
    assertAttributes(first!, {
      "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "m-workhorse", "gen_ai.response.model": "m-workhorse",
      "gen_ai.usage.input_tokens": 120, "gen_ai.usage.output_tokens": 30, "gen_ai.agent.id": "ship", "natsfleet.tier": "workhorse",
    });
    assertAttributes(second!, { "gen_ai.usage.input_tokens": 200, "gen_ai.usage.output_tokens": 12 });

    const tool = tools.find((s) => s.parentSpanId === agentSpan.spanId)!;
    assertAttributes(tool, { "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "http_check", "gen_ai.tool.call.id": "call_site", "natsfleet.tool.outcome": "ok" });
    assert.equal(tool.attributes["error.type"], undefined);

    // the tool host's run of that call: a SERVER span in its own process, the child of the agent's call
    const hosted = await waitFor("the tool host's execute_tool span", () => receiver.spans.find((s) => s.parentSpanId === tool.spanId));
    assert.equal(hosted.name, "execute_tool http_check");
    assert.equal(hosted.kind, 2, "SPAN_KIND_SERVER");
    assertAttributes(hosted, { "gen_ai.tool.name": "http_check", "gen_ai.agent.id": "ship", "natsfleet.tool.risk": "AUTO", "natsfleet.tool.outcome": "ok", "natsfleet.tool.mode": "run" });
    assert.equal(typeof hosted.attributes["natsfleet.tool.duration_ms"], "number");

    // who sent each span: the role's service, the process (host:pid), the fleet
    assert.equal(agentSpan.service, "natsfleet-agent");
    assert.equal(first!.service, "natsfleet-router");
    assert.equal(hosted.service, "natsfleet-tools");
    const instances = new Set<unknown>();
    for (const span of [agentSpan, first!, hosted]) {
      assertResource(span, { "service.namespace": PREFIX, "natsfleet.fleet.prefix": PREFIX });
      assert.match(String(span.resource["service.instance.id"]), /^.+:\d+$/, `${span.service}: service.instance.id is host:pid`);
      instances.add(span.resource["service.instance.id"]);
    }
    assert.equal(instances.size, 3, "three processes, three instances");
    assert.equal(agentSpan.resource["natsfleet.agent.ids"], "ship");
  });

  it("a task naming a tool (tier 0) is invoke_agent → execute_tool, with no model call; a refused tool is marked", async () => {
    const toolTask = (tool: string, input: unknown): Promise<Task> =>
      requestOperation(client.nc, client.names, "ship", "SendMessage", { message: { messageId: randomUUID(), role: "ROLE_USER", parts: [{ data: { tool, input } }] } });
    const ran = await toolTask("http_check", { url: siteUrl });
    const refused = await toolTask("dns_lookup", { host: "localhost" });
    await client.waitState("ship", ran.id, "TASK_STATE_COMPLETED", 30_000);
    await client.waitState("ship", refused.id, "TASK_STATE_FAILED", 30_000);
    const spansOf = async (taskId: string) => {
      const agent = await waitFor(`the invoke_agent span of ${taskId}`, () => receiver.spans.find((s) => s.name.startsWith("invoke_agent") && s.attributes["natsfleet.task.id"] === taskId));
      const tool = await waitFor(`the execute_tool span of ${taskId}`, () => receiver.spans.find((s) => s.name.startsWith("execute_tool") && s.parentSpanId === agent.spanId));
      return { agent, tool, chats: receiver.spans.filter((s) => s.traceId === agent.traceId && s.name.startsWith("chat")) };
    };
    const ok = await spansOf(ran.id);
    assert.notEqual(ok.agent.traceId, TRACE_ID, "an untraced sender: a trace of its own");
    assertAttributes(ok.tool, { "gen_ai.tool.name": "http_check", "natsfleet.tool.outcome": "ok", "natsfleet.task.id": ran.id });
    assert.equal(ok.chats.length, 0, "tier 0: no model call");
    const no = await spansOf(refused.id);
    assertAttributes(no.tool, { "gen_ai.tool.name": "dns_lookup", "error.type": "TOOL_NOT_ALLOWED" });
    assert.equal(no.tool.status.code, 2);
    assertAttributes(no.agent, { "error.type": "TASK_FAILED" });
  });

  it("a proposal is one trace too: the agent's execute_tool (proposed) → governance's execution → the tool host's run", async () => {
    context.setGlobalContextManager(new AsyncContextManager());
    const traceId = "5c0ffee0000000000000000000000001";
    const sender = trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId: SENDER_SPAN, traceFlags: TraceFlags.SAMPLED, isRemote: false });
    const message = { messageId: randomUUID(), role: "ROLE_USER" as const, parts: [{ data: { tool: "deploy_site", input: { site: "example.org" } } }] };
    await context.with(sender, () => requestOperation(client.nc, client.names, "ship", "SendMessage", { message }));
    context.disable();

    const inTrace = () => receiver.spans.filter((s) => s.traceId === traceId);
    const proposed = await waitFor("the agent's execute_tool span (proposed)", () => inTrace().find((s) => s.service === "natsfleet-agent" && s.attributes["natsfleet.tool.outcome"] === "proposed"));
    assertAttributes(proposed, { "gen_ai.tool.name": "deploy_site", "natsfleet.tool.risk": "PROPOSE" });
    // the submission carried the agent's traceparent: Sentinel approved it at once, so its execution continues the trace
    const execution = await waitFor("governance's execution span", () => inTrace().find((s) => s.service === "natsfleet-governance" && s.parentSpanId === proposed.spanId));
    assert.equal(execution.name, "execute_tool deploy_site");
    assertAttributes(execution, { "gen_ai.tool.name": "deploy_site", "gen_ai.agent.id": "ship", "natsfleet.proposal.attempt": 1, "natsfleet.proposal.outcome": "completed" });
    assert.ok(execution.attributes["natsfleet.proposal.id"], "the proposal is named");
    assertResource(execution, { "service.namespace": PREFIX });
    const run = await waitFor("the tool host's run of the proposal", () => inTrace().find((s) => s.service === "natsfleet-tools" && s.parentSpanId === execution.spanId));
    assertAttributes(run, {
      "gen_ai.tool.name": "deploy_site", "natsfleet.tool.risk": "PROPOSE", "natsfleet.tool.outcome": "ok",
      "natsfleet.proposal.id": String(execution.attributes["natsfleet.proposal.id"]), "gen_ai.agent.id": "ship",
    });
    assert.equal(run.kind, 2, "SPAN_KIND_SERVER");
  });
});

function assertResource(span: ReceivedSpan, expected: Record<string, string | number>): void {
  for (const [key, value] of Object.entries(expected)) assert.equal(span.resource[key], value, `${span.service}: resource ${key}`);
}

function assertAttributes(span: ReceivedSpan, expected: Record<string, string | number>): void {
  for (const [key, value] of Object.entries(expected)) assert.equal(span.attributes[key], value, `${span.name}: ${key}`);
}
