import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { jetstream, jetstreamManager, type JetStreamClient } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino } from "pino";
import { z } from "zod";
import { parseFleetConfig, type FleetConfig } from "../../config/index.js";
import { defineTool, readAuditRecords, referenceTools, toolRunKey, ToolHost, verifyAuditChain, type ToolDefinition } from "../../governance/index.js";
import {
  CALLERS,
  connectNats,
  decode,
  encode,
  ensureFleetResources,
  ErrorPayload,
  FleetError,
  FleetNames,
  HEADERS,
  OutboxRecord,
  replySchema,
  requestTyped,
  ToolCallResult,
  type ProposalRecord,
  type ToolCallRequest,
} from "../../protocol/index.js";
import { CLI } from "../helpers/fleet-processes.js";
import { NatsServer } from "../helpers/nats-server.js";
import { runFleet } from "../helpers/run-cli.js";
import { waitFor } from "../helpers/wait.js";

/** A tool host on a real nats-server: its checks, its idempotency records, its audit trail, and `fleet audit`. */

const PREFIX = "th";

function fleetYaml(): string {
  const tiers = ["nano", "workhorse", "capable", "power", "premium"].map((t) => `  ${t}: { model: offline-${t}, inputPerM: 1, outputPerM: 2 }`).join("\n");
  const agent = (id: string, layer: string, tools: string) =>
    `  - { id: ${id}, name: ${id}, role: r, layer: ${layer}, defaultTier: nano, cycleMinutes: 60, dailyCapUsd: 1, tools: ${tools}, skills: [{ id: s, name: S, description: s, tags: [s] }] }`;
  return `fleet: { name: th, prefix: ${PREFIX}, timeZone: UTC, dailyCapUsd: 10 }
tiers:
${tiers}
agents:
${agent("atlas", "orchestration", '["*"]')}
${agent("scout", "execution", "[http_check, channel_post, count_up, gate, hang, flaky]")}
${agent("ship", "execution", "[]")}
`;
}

describe("tool host", () => {
  const dir = mkdtempSync(join(tmpdir(), "fleet-toolhost-"));
  const configFile = join(dir, "fleet.yaml");
  const names = new FleetNames(PREFIX);
  let nats: NatsServer;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let kv: { proposals: KV; toolruns: KV };
  let config: FleetConfig;
  let host: ToolHost;
  const children: ChildProcess[] = [];

  // test tools that count their runs, so "never ran" and "ran once" can be asserted
  const runs = { count_up: 0, spy_block: 0, flaky: 0 };
  let openGate: () => void = () => undefined;
  const testTools: ToolDefinition[] = [
    defineTool({ name: "count_up", description: "counts", risk: "AUTO", input: z.object({ by: z.number().default(1) }), handler: async (input) => ({ n: (runs.count_up += input.by) }) }),
    defineTool({ name: "spy_block", description: "must never run", risk: "BLOCK", input: z.object({}), handler: async () => ++runs.spy_block }),
    defineTool({ name: "gate", description: "waits to be let through", risk: "AUTO", input: z.object({}), handler: () => new Promise((resolve) => (openGate = () => resolve("through"))) }),
    // ignores its AbortSignal: the host must answer without it
    defineTool({ name: "hang", description: "hangs", risk: "AUTO", input: z.object({ ms: z.number() }), handler: (input) => new Promise((resolve) => setTimeout(resolve, input.ms, "late")) }),
    defineTool({
      name: "flaky",
      description: "fails the first time",
      risk: "AUTO",
      input: z.object({}),
      handler: async () => {
        if (++runs.flaky === 1) throw new Error("first time fails");
        return "second time works";
      },
    }),
  ];

  // an agent calls as itself; a call naming a proposal comes from governance, the one caller that may carry one
  const call = (tool: string, request: ToolCallRequest, as = request.proposalId ? CALLERS.governance : (request.agentId ?? "")) =>
    requestTyped(nc, names.tool(tool, as), request, ToolCallResult, { codec: "msgpack", timeoutMs: 10_000 });
  const refused = (code: string) => (err: unknown) => {
    assert.ok(err instanceof FleetError, String(err));
    assert.equal(err.code, code, err.message);
    return true;
  };

  async function putProposal(p: Partial<ProposalRecord> & Pick<ProposalRecord, "id" | "tool" | "agentId" | "input" | "state">): Promise<void> {
    const record: ProposalRecord = { risk: "PROPOSE", reason: "test", createdAt: Date.now(), updatedAt: Date.now(), notified: [], attempts: 0, history: [], ...p };
    await kv.proposals.put(p.id, encode(record, "msgpack"));
  }

  before(async () => {
    nats = await NatsServer.start();
    nc = await connectNats({ servers: nats.url, name: "tool-host-test", longLived: false });
    js = jetstream(nc);
    const resources = await ensureFleetResources(nc, names);
    kv = { proposals: resources.kv.proposals, toolruns: resources.kv.toolruns };
    writeFileSync(configFile, fleetYaml());
    config = parseFleetConfig(fleetYaml(), configFile);
    host = new ToolHost({
      nc, js, names, codec: "msgpack", config, kv, host: "test-host", log: pino({ level: "silent" }), timeoutMs: 300,
      tools: [...referenceTools({ js, names, codec: "msgpack", config }), ...testTools],
    });
    await host.start();
  });
  after(async () => {
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
    await host.stop();
    await nc.close();
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("an allowed AUTO call runs and lands in the audit trail", async () => {
    const result = await call("memory_usage", { agentId: "atlas", input: {} });
    assert.equal(result.replayed, false);
    assert.ok(z.object({ totalBytes: z.number() }).parse(result.output).totalBytes > 0);
    const trail = await readAuditRecords(js, names, "msgpack", { agentId: "atlas", tool: "memory_usage" });
    assert.equal(trail.records.length, 1);
    assert.equal(trail.records[0]?.ok, true);
    assert.equal(trail.records[0]?.risk, "AUTO");
  });

  it("refuses an agent whose allow list lacks the tool, an unknown agent, and every BLOCK tool (audited, never run)", async () => {
    await assert.rejects(call("memory_usage", { agentId: "ship", input: {} }), refused("TOOL_NOT_ALLOWED"));
    await assert.rejects(call("count_up", { agentId: "ghost", input: {} }), refused("TOOL_NOT_ALLOWED"));
    await assert.rejects(call("spy_block", { agentId: "atlas", input: {} }), refused("TOOL_BLOCKED"));
    await assert.rejects(call("money_transfer", { agentId: "atlas", input: { to: "x", amount: 1, currency: "EUR" } }), refused("TOOL_BLOCKED"));
    assert.equal(runs.spy_block, 0);
    const blocked = await readAuditRecords(js, names, "msgpack", { tool: "spy_block" });
    assert.deepEqual(blocked.records.map((r) => [r.ok, r.error?.code]), [[false, "TOOL_BLOCKED"]]);
  });

  it("every call's targets must be on the allow list, AUTO calls too (they never meet Sentinel)", async () => {
    await assert.rejects(call("http_check", { agentId: "scout", input: { url: "http://169.254.169.254/latest/meta-data" } }), (err: unknown) =>
      err instanceof FleetError && err.code === "TOOL_NOT_ALLOWED" && /host 169\.254\.169\.254 is not in the target allow list/.test(err.message));
    const refused = await readAuditRecords(js, names, "msgpack", { tool: "http_check" });
    assert.ok(refused.records.some((r) => !r.ok && r.error?.code === "TOOL_NOT_ALLOWED"), "the refused call is audited");
  });

  it("a PROPOSE tool runs only as the executing proposal for that very call, and rolls back once completed", async () => {
    const input = { channel: "console", text: "release 1.2 is out" };
    const request = { agentId: "scout", input, proposalId: "p-1", idempotencyKey: "p-1/1" };
    await assert.rejects(call("channel_post", { agentId: "scout", input }), refused("PROPOSAL_REQUIRED"));
    await assert.rejects(call("channel_post", request), refused("PROPOSAL_REQUIRED"));
    await putProposal({ id: "p-1", tool: "channel_post", agentId: "scout", input, state: "sentinel_approved" });
    await assert.rejects(call("channel_post", request), /is sentinel_approved, not executing/);
    await putProposal({ id: "p-1", tool: "channel_post", agentId: "scout", input: { ...input, text: "something else" }, state: "executing" });
    await assert.rejects(call("channel_post", request), /input differs/);
    await putProposal({ id: "p-1", tool: "channel_post", agentId: "atlas", input, state: "executing" });
    await assert.rejects(call("channel_post", request), /belongs to agent "atlas"/);

    // key order does not matter to "the same input"
    await putProposal({ id: "p-1", tool: "channel_post", agentId: "scout", input: { text: input.text, channel: "console" }, state: "executing" });
    const posted = await call("channel_post", request);
    const seq = z.object({ seq: z.number() }).parse(posted.output).seq;
    await assert.rejects(call("channel_post", { ...request, mode: "rollback" }), /is executing, not completed/);
    await putProposal({ id: "p-1", tool: "channel_post", agentId: "scout", input, state: "completed" });
    await assert.rejects(call("channel_post", { ...request, mode: "rollback", idempotencyKey: "never-ran" }), refused("PROPOSAL_STATE"));
    await call("channel_post", { ...request, mode: "rollback" });
    // a repeated rollback is the same rollback
    assert.equal((await call("channel_post", { ...request, mode: "rollback" })).replayed, true);

    const jsm = await jetstreamManager(nc);
    const texts: string[] = [];
    for (let s = seq; s <= seq + 1; s++) {
      const m = await jsm.streams.getMessage(names.stream("OUTBOX"), { seq: s });
      assert.ok(m);
      const record = decode(OutboxRecord, m.data);
      assert.ok(record.ok);
      texts.push(record.value.text);
    }
    assert.deepEqual(texts, [input.text, `Retracted: ${input.text}`]);
    const trail = await readAuditRecords(js, names, "msgpack", { tool: "channel_post" });
    assert.deepEqual(
      trail.records.map((r) => [r.mode, r.ok, r.error?.code ?? ""]),
      [
        ["run", false, "PROPOSAL_REQUIRED"], ["run", false, "PROPOSAL_REQUIRED"], ["run", false, "PROPOSAL_REQUIRED"], ["run", false, "PROPOSAL_REQUIRED"],
        ["run", false, "PROPOSAL_REQUIRED"], ["run", true, ""], ["rollback", false, "PROPOSAL_REQUIRED"], ["rollback", false, "PROPOSAL_STATE"],
        ["rollback", true, ""], ["rollback", true, ""],
      ],
      "every call is audited, refused ones too",
    );
  });

  it("the caller is the subject's: a payload naming another agent is refused before anything runs or is audited as it", async () => {
    const before = runs.count_up;
    // scout may call count_up; atlas, named in the payload on scout's subject, would be refused a different way
    await assert.rejects(call("count_up", { agentId: "atlas", input: { by: 1 } }, "scout"), refused("PERMISSION_DENIED"));
    await assert.rejects(call("memory_usage", { agentId: "atlas", input: {} }, "ship"), refused("PERMISSION_DENIED"));
    assert.equal(runs.count_up, before, "nothing ran");
    const asAtlas = await readAuditRecords(js, names, "msgpack", { agentId: "atlas", tool: "count_up" });
    assert.equal(asAtlas.records.length, 0, "no audit record in atlas's name");
    // without agentId in the payload the call is the caller's own
    assert.ok(await call("count_up", { input: { by: 1 } }, "scout"));
    assert.equal(runs.count_up, before + 1);
    const asScout = await readAuditRecords(js, names, "msgpack", { agentId: "scout", tool: "count_up" });
    assert.ok(asScout.records.some((r) => r.ok && JSON.stringify(r.input) === JSON.stringify({ by: 1 })));
  });

  it("an agent never runs a PROPOSE tool itself, not even naming its own executing proposal; governance calls only with one", async () => {
    const input = { channel: "console", text: "agent-made" };
    await putProposal({ id: "p-own", tool: "channel_post", agentId: "scout", input, state: "executing" });
    await assert.rejects(call("channel_post", { agentId: "scout", input, proposalId: "p-own", idempotencyKey: "p-own" }, "scout"), refused("PROPOSAL_REQUIRED"));
    // governance, even for an AUTO tool, runs nothing without the proposal executing this very call
    await assert.rejects(call("count_up", { agentId: "scout", input: {} }, CALLERS.governance), refused("PROPOSAL_REQUIRED"));
    await assert.rejects(call("count_up", { input: {} }, CALLERS.governance), refused("MESSAGE_INVALID"));
  });

  it("the same idempotency key runs a tool once; the repeat gets the recorded output", async () => {
    const before = runs.count_up;
    const first = await call("count_up", { agentId: "scout", input: { by: 5 }, idempotencyKey: "once" });
    const second = await call("count_up", { agentId: "scout", input: { by: 5 }, idempotencyKey: "once" });
    assert.equal(runs.count_up, before + 5, "the handler ran once");
    assert.equal(first.replayed, false);
    assert.equal(second.replayed, true);
    assert.deepEqual(second.output, first.output);
  });

  it("an idempotency key is the calling agent's own: another agent reusing it runs its own call, never gets the first one's output", async () => {
    const before = runs.count_up;
    const scouts = await call("count_up", { agentId: "scout", input: { by: 7 }, idempotencyKey: "scout-key" });
    // atlas may call count_up too; with scout's key it gets a run of its own, not scout's recorded output
    const atlas = await call("count_up", { agentId: "atlas", input: { by: 11 }, idempotencyKey: "scout-key" });
    assert.equal(atlas.replayed, false);
    assert.deepEqual(atlas.output, { n: before + 7 + 11 });
    assert.equal(runs.count_up, before + 18, "both calls ran");
    // each agent's repeat still replays its own run
    assert.deepEqual((await call("count_up", { agentId: "scout", input: { by: 7 }, idempotencyKey: "scout-key" })).output, scouts.output);
    assert.deepEqual((await call("count_up", { agentId: "atlas", input: { by: 11 }, idempotencyKey: "scout-key" })).output, atlas.output);
    assert.equal(runs.count_up, before + 18, "the repeats ran nothing");
    assert.notEqual(toolRunKey("count_up", "run", "scout-key", { agent: "scout" }), toolRunKey("count_up", "run", "scout-key", { agent: "atlas" }));
    // governance's runs stay keyed by the proposal id alone, as they were before agents' keys were scoped
    assert.equal(toolRunKey("count_up", "run", "p-1", "governance"), `count_up.run.${createHash("sha256").update("p-1").digest("hex").slice(0, 32)}`);
    assert.notEqual(toolRunKey("count_up", "run", "p-1", "governance"), toolRunKey("count_up", "run", "p-1", { agent: "scout" }));
  });

  it("a run still under way answers TOOL_IN_PROGRESS; one that never finished answers TOOL_OUTCOME_UNKNOWN and never runs", async () => {
    const first = call("gate", { agentId: "scout", input: {}, idempotencyKey: "gated" });
    await waitFor("the first call to claim its key", async () => (await kv.toolruns.get(toolRunKey("gate", "run", "gated", { agent: "scout" }))) !== null);
    await assert.rejects(call("gate", { agentId: "scout", input: {}, idempotencyKey: "gated" }), (err: unknown) => {
      assert.ok(err instanceof FleetError && err.code === "TOOL_IN_PROGRESS" && err.retryable);
      assert.ok((err.retryAfterMs ?? 0) > 0);
      return true;
    });
    openGate();
    assert.equal((await first).output, "through");

    const before = runs.count_up;
    const startedAt = Date.now() - 120_000;
    await kv.toolruns.put(toolRunKey("count_up", "run", "crashed", { agent: "scout" }), encode({ state: "started", host: "gone", startedAt, until: startedAt + 30_000 }, "msgpack"));
    await assert.rejects(call("count_up", { agentId: "scout", input: {}, idempotencyKey: "crashed" }), refused("TOOL_OUTCOME_UNKNOWN"));
    assert.equal(runs.count_up, before, "not run: its first run may have had its effect");
  });

  it("a failed run may run again under the same key; a handler error is TOOL_FAILED, retryable", async () => {
    await assert.rejects(call("flaky", { agentId: "scout", input: {}, idempotencyKey: "flaky-1" }), (err: unknown) => err instanceof FleetError && err.code === "TOOL_FAILED" && err.retryable && /first time fails/.test(err.message));
    assert.equal((await call("flaky", { agentId: "scout", input: {}, idempotencyKey: "flaky-1" })).output, "second time works");
  });

  it("a handler that ignores its signal: the caller hears TOOL_OUTCOME_UNKNOWN, the late result is still recorded", async () => {
    await assert.rejects(call("hang", { agentId: "scout", input: { ms: 2_600 }, idempotencyKey: "slow" }), refused("TOOL_OUTCOME_UNKNOWN"));
    const done = await waitFor("the late run to be recorded", async () => {
      const replay = await call("hang", { agentId: "scout", input: { ms: 2_600 }, idempotencyKey: "slow" }).catch(() => undefined);
      return replay?.replayed ? replay : undefined;
    }, 10_000);
    assert.equal(done.output, "late");
  });

  it("invalid tool input is MESSAGE_INVALID with details; malformed bytes get a typed error reply and a dead letter", async () => {
    await assert.rejects(call("http_check", { agentId: "scout", input: { url: "not a url" } }), (err: unknown) => {
      assert.ok(err instanceof FleetError && err.code === "MESSAGE_INVALID");
      assert.deepEqual(err.details?.map((d) => d.path), ["url"]);
      return true;
    });
    const raw = async (data: Uint8Array) => {
      const reply = await nc.request(names.tool("count_up", "scout"), data, { timeout: 5_000 });
      const decoded = decode(replySchema(ToolCallResult), reply.data);
      assert.ok(decoded.ok && "error" in decoded.value);
      return ErrorPayload.parse(decoded.value.error);
    };
    assert.equal((await raw(new Uint8Array([0xc1, 0x00, 0xff]))).code, "MESSAGE_MALFORMED");
    assert.equal((await raw(encode({ input: {}, mode: "sideways" }))).code, "MESSAGE_INVALID", "no such mode");
    const jsm = await jetstreamManager(nc);
    const dead = await waitFor("two dead letters", async () => {
      const info = await jsm.streams.info(names.stream("DLQ"));
      return info.state.messages >= 2 ? info : undefined;
    });
    const last = await jsm.streams.getMessage(names.stream("DLQ"), { seq: dead.state.last_seq });
    assert.equal(last?.subject, names.dlq("tool"));
    assert.equal(last?.header.get(HEADERS.dlqCode), "MESSAGE_INVALID");
    assert.equal(last?.header.get(HEADERS.dlqSubject), names.tool("count_up", "scout"));
    // the host is still serving
    assert.ok(await call("count_up", { agentId: "scout", input: {} }));
  });

  it("`fleet audit` lists the calls and `fleet audit verify` checks the chain, failing once a record is deleted", async () => {
    // let late audit appends (the hung handler's reply was sent before its record) settle
    await waitFor("the audit chain to settle", () => host.busy === 0);
    const common = ["--config", configFile, "--nats", nats.url];
    const listed = await runFleet(["audit", "--agent", "scout", "--tool", "count_up", "--json", ...common]);
    assert.equal(listed.code, 0, listed.stderr);
    const out = z.object({ records: z.array(z.object({ agentId: z.string(), tool: z.string(), ok: z.boolean() })) }).parse(JSON.parse(listed.stdout));
    assert.ok(out.records.length >= 3 && out.records.every((r) => r.agentId === "scout" && r.tool === "count_up"));
    const table = await runFleet(["audit", "--limit", "3", ...common]);
    assert.equal(table.code, 0, table.stderr);
    assert.equal(table.stdout.trim().split("\n").length, 4, table.stdout);

    const intact = await runFleet(["audit", "verify", ...common]);
    assert.equal(intact.code, 0, intact.stdout + intact.stderr);
    const verified = await verifyAuditChain(js, names, "msgpack");
    assert.match(intact.stdout, new RegExp(`chain intact: ${verified.records} records`));

    await (await jetstreamManager(nc)).streams.deleteMessage(names.stream("AUDIT"), 2);
    const broken = await runFleet(["audit", "verify", ...common]);
    assert.equal(broken.code, 1);
    assert.match(broken.stdout, /AUDIT_CHAIN_BROKEN: 1 problem/);
    assert.match(broken.stdout, /seq 2: record 2 is missing/);
  });

  it("`fleet run tools` serves the reference catalogue in the same queue group", async () => {
    await host.stop();
    // the in-process test tools exist only in this process: a config for `fleet run tools` may name real tools only
    const cliConfig = join(dir, "fleet-cli.yaml");
    writeFileSync(cliConfig, fleetYaml().replace("[http_check, channel_post, count_up, gate, hang, flaky]", "[http_check, channel_post]"));
    const child = spawn(process.execPath, [CLI, "run", "tools", "--config", cliConfig, "--nats", nats.url], { stdio: ["ignore", "ignore", "pipe"] });
    children.push(child);
    let log = "";
    child.stderr?.on("data", (d: Buffer) => (log += d.toString()));
    await waitFor("the tool host to start", () => log.includes("tool host started") || child.exitCode !== null);
    assert.equal(child.exitCode, null, log);
    const result = await call("dns_lookup", { agentId: "atlas", input: { name: "localhost" } });
    assert.ok(z.object({ addresses: z.array(z.string()) }).parse(result.output).addresses.includes("127.0.0.1"));
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    assert.equal(await exited, 0);
  });
});
