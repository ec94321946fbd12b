import assert from "node:assert/strict";
import { hostname } from "node:os";
import { describe, it } from "node:test";
import { pino } from "pino";
import { startTelemetry } from "../../cli/telemetry.js";
import { TelemetryConfig } from "../../config/index.js";
import { HEADERS, inGenAiSpan, wireHeaders } from "../../protocol/index.js";
import { OtlpReceiver } from "../helpers/otlp-receiver.js";
import { waitFor } from "../helpers/wait.js";

const log = pino({ level: "silent" });

describe("telemetry switch", () => {
  it("off by default: no tracer, no exporter, no traceparent on the wire", async () => {
    const telemetry = startTelemetry(TelemetryConfig.parse({}), { role: "router", prefix: "unit", log });
    assert.equal(telemetry.exporter, undefined);
    assert.equal(telemetry.tracer, undefined);
    const ran = await inGenAiSpan(telemetry.tracer, { operation: "chat", target: "m", attributes: {} }, async (span) => {
      assert.equal(span, undefined, "no span is started");
      return wireHeaders("msgpack").get(HEADERS.traceparent);
    });
    assert.equal(ran, "");
    await telemetry.stop();
  });

  it("on: spans go to the OTLP/HTTP endpoint as JSON, and the active span's traceparent rides every wire message", async () => {
    const receiver = await OtlpReceiver.start();
    const telemetry = startTelemetry(TelemetryConfig.parse({ otlp: { endpoint: receiver.endpoint } }), { role: "agent", prefix: "unit", log, attributes: { "natsfleet.agent.ids": ["scout", "mira"] } });
    try {
      assert.ok(telemetry.exporter && telemetry.tracer);
      const header = await inGenAiSpan(telemetry.tracer, { operation: "invoke_agent", target: "Scout", attributes: { "gen_ai.agent.id": "scout" } }, async () => {
        await new Promise((r) => setImmediate(r)); // across an await, the span is still the active one
        return wireHeaders("msgpack", "msg-1").get(HEADERS.traceparent);
      });
      await assert.rejects(inGenAiSpan(telemetry.tracer, { operation: "execute_tool", target: "web_fetch", attributes: {} }, async () => {
        throw Object.assign(new Error("refused"), { code: "TOOL_NOT_ALLOWED" });
      }));
      await telemetry.stop();
      const [agent, tool] = await waitFor("two spans", () => (receiver.spans.length >= 2 ? receiver.spans : undefined));
      assert.equal(header, `00-${agent!.traceId}-${agent!.spanId}-01`);
      assert.equal(agent!.name, "invoke_agent Scout");
      assert.equal(agent!.attributes["gen_ai.operation.name"], "invoke_agent");
      assert.equal(tool!.attributes["error.type"], "TOOL_NOT_ALLOWED");
      assert.equal(tool!.status.code, 2, "STATUS_CODE_ERROR");
      assert.equal(wireHeaders("msgpack").get(HEADERS.traceparent), "", "outside a span: none");
      // what an operator filters on in Jaeger or Tempo: the role's service, this copy of it, the fleet
      for (const span of [agent!, tool!]) {
        assert.equal(span.service, "natsfleet-agent");
        assert.equal(span.resource["service.namespace"], "unit");
        assert.equal(span.resource["natsfleet.fleet.prefix"], "unit");
        assert.equal(span.resource["service.instance.id"], `${hostname()}:${process.pid}`);
        assert.equal(span.resource["natsfleet.agent.ids"], "scout,mira");
        assert.equal(span.resource["telemetry.sdk.language"], "nodejs", "the SDK's own resource is kept");
      }
    } finally {
      await receiver.close();
    }
  });
});
