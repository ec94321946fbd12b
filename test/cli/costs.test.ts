import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { headers, type NatsConnection } from "@nats-io/nats-core";
import { jetstream } from "@nats-io/jetstream";
import { shippedFleetPath } from "../../config/index.js";
import { connectNats, CONTENT_TYPES, encode, ensureFleetResources, FleetNames, type UsageRecord } from "../../protocol/index.js";
import { writeTestFleet } from "../helpers/fleet-processes.js";
import { NatsServer } from "../helpers/nats-server.js";
import { runFleet } from "../helpers/run-cli.js";

/** `fleet costs` and `fleet simulate` run as the compiled CLI, the way an operator runs them. */

const fleet = (args: string[]) => runFleet(args);

const close = (actual: number, expected: number, what: string) => assert.ok(Math.abs(actual - expected) < 1e-9, `${what}: ${actual} ≈ ${expected}`);

describe("fleet costs", () => {
  const names = new FleetNames("costs");
  const now = Date.now();
  const DAY = 86_400_000;
  let server: NatsServer;
  let nc: NatsConnection;
  let fleetFile: ReturnType<typeof writeTestFleet>;
  let n = 0;

  function record(overrides: Partial<UsageRecord>): UsageRecord {
    return {
      callId: `call-${++n}`, agentId: "scout", kind: "research", requestedTier: "capable", servedTier: "capable", model: "offline-capable",
      deploymentId: "d1", inputTokens: 1000, outputTokens: 200, cachedTokens: 0, costUsd: 0.01, latencyMs: 50, cacheHit: false,
      escalations: 0, fallbacks: 0, simulated: false, decisionReason: "default", ok: true, attempt: 0, at: now - 5_000, ...overrides,
    };
  }

  before(async () => {
    server = await NatsServer.start();
    fleetFile = writeTestFleet({ prefix: names.prefix });
    nc = await connectNats({ servers: server.url, name: "costs-test", longLived: false });
    await ensureFleetResources(nc, names);
    const js = jetstream(nc);
    const publish = async (r: UsageRecord, codec: "msgpack" | "json" = "msgpack") => {
      const h = headers();
      h.set("Content-Type", CONTENT_TYPES[codec]);
      await js.publish(names.usage(r.agentId, r.servedTier), encode(r, codec), { headers: h, msgID: `${r.callId}.${r.attempt}` });
    };
    const first = record({ costUsd: 0.02, cachedTokens: 100 });
    await publish(first, "json");
    await publish(first); // the same call again: the stream's duplicate window drops it
    await publish(record({ kind: undefined, servedTier: "nano", model: "offline-nano", costUsd: 0.001 }));
    await publish(record({ agentId: "atlas", kind: "status-report", servedTier: "power", requestedTier: "capable", costUsd: 0.3, escalations: 1, attempt: 1, at: now - 4_000 }));
    await publish(record({ agentId: "atlas", kind: "status-report", servedTier: "power", deploymentId: "cache", inputTokens: 0, outputTokens: 0, costUsd: 0, cacheHit: true, at: now - 4_000 }));
    await publish(record({ agentId: "ship", kind: "deploy", servedTier: "workhorse", simulated: true, costUsd: 0.05, at: now - 3_000 }));
    await publish(record({ costUsd: 0.1, at: now - 3 * DAY }));
    await publish(record({ agentId: "atlas", servedTier: "power", costUsd: 0.2, at: now - 8 * DAY }));
    // a message that is not msgpack, and one that is but is no UsageRecord: both skipped and counted
    await js.publish(names.usage("scout", "nano"), new Uint8Array([0xc1, 0xc1, 0xc1]));
    await js.publish(names.usage("scout", "nano"), encode({ callId: "x", costUsd: "a lot" }));
  });

  after(async () => {
    await nc?.close();
    await server?.stop();
    fleetFile?.cleanup();
  });

  it("--week --json: the last 7 days by agent, tier and kind, the top calls, the trend against the 7 days before", async () => {
    const r = await fleet(["costs", "--week", "--json", "--nats", server.url, "--config", fleetFile.file]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.malformed, 2);
    assert.equal(out.totals.calls, 6);
    close(out.totals.costUsd, 0.02 + 0.001 + 0.3 + 0.1, "real spend");
    close(out.totals.simulatedUsd, 0.05, "simulated spend");
    assert.equal(out.totals.simulatedCalls, 1);
    assert.equal(out.totals.cacheHits, 1);
    assert.equal(out.totals.escalations, 1);
    assert.equal(out.totals.cachedTokens, 100);
    assert.deepEqual(out.byAgent.map((g: { key: string }) => g.key), ["atlas", "scout", "ship"]);
    const kinds = Object.fromEntries(out.byKind.map((g: { key: string; calls: number }) => [g.key, g.calls]));
    assert.deepEqual(kinds, { "status-report": 2, research: 2, general: 1, deploy: 1 });
    assert.equal(out.byTier.find((g: { key: string }) => g.key === "power").calls, 2);
    assert.deepEqual(out.topCalls.map((c: { costUsd: number }) => c.costUsd), [0.3, 0.1, 0.05, 0.02, 0.001]);
    close(out.trend.previousCostUsd, 0.2, "previous week");
    close(out.trend.deltaUsd, 0.421 - 0.2, "delta");
  });

  it("today --json: since local midnight, nothing from days ago", async () => {
    const r = await fleet(["costs", "--json", "--nats", server.url, "--config", fleetFile.file]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.label, "today");
    assert.equal(out.timeZone, "UTC");
    assert.equal(out.totals.calls, 5);
    close(out.totals.costUsd, 0.321, "today's spend");
    assert.equal(out.trend, undefined, "nothing yesterday to compare with");
  });

  it("prints aligned tables for a person", async () => {
    const r = await fleet(["costs", "--week", "--nats", server.url, "--config", fleetFile.file]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /spent \$0\.42 real, plus \$0\.05 simulated/);
    assert.match(r.stdout, /^AGENT +CALLS +INPUT +OUTPUT +CACHED +CACHED % +UNCACHED\/CALL/m);
    // scout: 3,000 input tokens in three calls, 100 of them from the provider's prompt cache
    assert.match(r.stdout, /^scout\s.*\s3\.3 %\s+967\s/m);
    assert.match(r.stdout, /^KIND +CALLS/m);
    assert.match(r.stdout, /^TOP CALLS/m);
    assert.match(r.stdout, /trend: \$0\.42 vs \$0\.20 the 7 days before: \+\$0\.22/);
    assert.match(r.stdout, /2 USAGE messages did not decode/);
  });

  it("leaves no consumer behind", async () => {
    const info = await (await jetstream(nc).streams.get(names.stream("USAGE"))).info();
    assert.equal(info.state.consumer_count, 0);
  });
});

describe("fleet simulate", () => {
  it("--days 30 --json on the reference fleet: every agent, below the all-premium baseline", async () => {
    const r = await fleet(["simulate", "--days", "30", "--json", "--config", shippedFleetPath("dcode-ops")]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.fleet, "dcode-ops");
    assert.equal(out.days, 30);
    assert.equal(new Set(out.rows.map((row: { agentId: string }) => row.agentId)).size, 7);
    assert.ok(out.totals.usdPerPeriod > 0 && out.totals.usdPerPeriod < out.baseline.usdPerPeriod);
    assert.ok(out.ratio > 1);
    assert.ok(out.notes.length > 0, "the assumptions travel with the numbers");
  });

  it("prints the table and the verdict; a bad --days is a usage error", async () => {
    const r = await fleet(["simulate", "--config", shippedFleetPath("dcode-ops")]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^AGENT +TIER +STEPS +CALLS\/DAY/m);
    assert.match(r.stdout, /this fleet: \$[\d.,]+\/month vs \$[\d.,]+\/month if every call went to premium: [\d.]+× cheaper \/ \d+ % saved/);
    assert.match(r.stdout, /assumptions:/);
    const bad = await fleet(["simulate", "--days", "soon"]);
    assert.equal(bad.code, 2);
  });
});
