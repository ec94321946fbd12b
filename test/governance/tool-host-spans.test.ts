import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino } from "pino";
import { z } from "zod";
import { startTelemetry, type Telemetry } from "../../cli/telemetry.js";
import { parseFleetConfig, TelemetryConfig } from "../../config/index.js";
import { defineTool, ToolHost } from "../../governance/index.js";
import { connectNats, ensureFleetResources, FleetError, FleetNames, inGenAiSpan, requestTyped, ToolCallResult, type ToolCallRequest } from "../../protocol/index.js";
import { NatsServer } from "../helpers/nats-server.js";
import { OtlpReceiver, type ReceivedSpan } from "../helpers/otlp-receiver.js";
import { waitFor } from "../helpers/wait.js";

/**
 * The tool host's `execute_tool` spans on a real nats-server, exported to a real OTLP/HTTP receiver: one per call, a
 * SERVER span under the caller's (its `traceparent` rode the request), saying how the call went — it ran, it was the
 * recorded result of an earlier run, the host refused it, or the tool failed.
 */

const PREFIX = "ths";

function fleetYaml(): string {
  const tiers = ["nano", "workhorse", "capable", "power", "premium"].map((t) => `  ${t}: { model: offline-${t}, inputPerM: 1, outputPerM: 2 }`).join("\n");
  const agent = (id: string, tools: string, layer = "execution") =>
    `  - { id: ${id}, name: ${id}, role: r, layer: ${layer}, defaultTier: nano, cycleMinutes: 60, dailyCapUsd: 1, tools: ${tools}, skills: [{ id: s, name: S, description: s, tags: [s] }] }`;
  return `fleet: { name: ths, prefix: ${PREFIX}, timeZone: UTC, dailyCapUsd: 10 }
tiers:
${tiers}
agents:
${agent("atlas", "[count_up]", "orchestration")}
${agent("scout", "[count_up, broken]")}
${agent("ship", "[]")}
`;
}

describe("tool host spans", () => {
  const names = new FleetNames(PREFIX);
  const log = pino({ level: "silent" });
  let nats: NatsServer;
  let nc: NatsConnection;
  let receiver: OtlpReceiver;
  let telemetry: Telemetry;
  let host: ToolHost;

  const call = (tool: string, request: ToolCallRequest & { agentId: string }) =>
    requestTyped(nc, names.tool(tool, request.agentId), request, ToolCallResult, { codec: "msgpack", timeoutMs: 10_000 });
  /** the host's span of the call made inside `fn`, found by its parent: the caller's span */
  async function hostSpanOf(fn: () => Promise<unknown>): Promise<ReceivedSpan> {
    let callerSpanId = "";
    await inGenAiSpan(telemetry.tracer, { operation: "invoke_agent", target: "caller", attributes: {} }, async (span) => {
      callerSpanId = span!.spanContext().spanId;
      await fn().catch((err: unknown) => assert.ok(err instanceof FleetError, String(err)));
    });
    return waitFor("the tool host's span", () => receiver.spans.find((s) => s.parentSpanId === callerSpanId));
  }

  before(async () => {
    [nats, receiver] = await Promise.all([NatsServer.start(), OtlpReceiver.start()]);
    nc = await connectNats({ servers: nats.url, name: "tool-host-spans-test", longLived: false });
    const { kv } = await ensureFleetResources(nc, names);
    telemetry = startTelemetry(TelemetryConfig.parse({ otlp: { endpoint: receiver.endpoint } }), { role: "tools", prefix: PREFIX, log });
    let n = 0;
    host = new ToolHost({
      nc, js: jetstream(nc), names, codec: "msgpack", config: parseFleetConfig(fleetYaml(), "tool-host-spans.yaml"),
      tools: [
        defineTool({ name: "count_up", description: "counts", risk: "AUTO", input: z.object({}), handler: async () => ({ n: ++n }) }),
        defineTool({ name: "broken", description: "always fails", risk: "AUTO+", input: z.object({}), handler: async () => Promise.reject(new Error("disk full")) }),
      ],
      kv: { proposals: kv.proposals, toolruns: kv.toolruns }, host: "test-host", log, tracer: telemetry.tracer,
    });
    await host.start();
  });

  after(async () => {
    await host?.stop();
    await telemetry?.stop();
    await nc?.close();
    await Promise.all([nats?.stop(), receiver?.close()]);
  });

  it("a call that runs: a SERVER span under the caller's, with the tool, its risk, the outcome and the duration", async () => {
    const span = await hostSpanOf(() => call("count_up", { agentId: "scout", input: {}, idempotencyKey: "k-1" }));
    assert.equal(span.name, "execute_tool count_up");
    assert.equal(span.kind, 2, "SPAN_KIND_SERVER");
    assert.equal(span.service, "natsfleet-tools");
    for (const [key, value] of Object.entries({ "gen_ai.tool.name": "count_up", "gen_ai.agent.id": "scout", "natsfleet.tool.risk": "AUTO", "natsfleet.tool.outcome": "ok", "natsfleet.tool.host": "test-host" })) {
      assert.equal(span.attributes[key], value, key);
    }
    assert.equal(typeof span.attributes["natsfleet.tool.duration_ms"], "number");
    assert.equal(span.status.code ?? 0, 0, "not an error");
  });

  it("the same idempotency key again: replayed, the tool not run a second time", async () => {
    const span = await hostSpanOf(() => call("count_up", { agentId: "scout", input: {}, idempotencyKey: "k-1" }));
    assert.equal(span.attributes["natsfleet.tool.outcome"], "replayed");
  });

  it("a call the host refuses, and a tool that fails, are error spans with the code, told apart by the outcome", async () => {
    const refused = await hostSpanOf(() => call("count_up", { agentId: "ship", input: {} }));
    assert.equal(refused.attributes["natsfleet.tool.outcome"], "refused");
    assert.equal(refused.attributes["error.type"], "TOOL_NOT_ALLOWED");
    assert.equal(refused.status.code, 2, "STATUS_CODE_ERROR");
    const failed = await hostSpanOf(() => call("broken", { agentId: "scout", input: {} }));
    assert.equal(failed.attributes["natsfleet.tool.outcome"], "failed");
    assert.equal(failed.attributes["error.type"], "TOOL_FAILED");
    assert.equal(failed.attributes["natsfleet.tool.risk"], "AUTO+");
    assert.equal(failed.status.code, 2);
  });
});
