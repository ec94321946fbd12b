import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { jetstream, jetstreamManager, type JetStreamClient } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino } from "pino";
import { parseFleetConfig, type FleetConfig } from "../../config/index.js";
import { AgentTools, callTool, GovernanceService, McpToolSources, policyOf, ProposalStore, readAuditRecords, ToolDirectory, ToolHost } from "../../governance/index.js";
import {
  connectNats,
  decode,
  encode,
  ensureFleetResources,
  FleetError,
  FleetNames,
  requestTyped,
  ToolCallResult,
  ToolListing,
  type ApprovalDecision,
  type FleetResources,
  type ProposalState,
  type ToolCallRequest,
} from "../../protocol/index.js";
import { NatsServer } from "../helpers/nats-server.js";
import { waitFor } from "../helpers/wait.js";

/**
 * A real MCP server process (test/fixtures/mcp-server.ts, over stdio) served by a real tool host on a real nats-server,
 * with governance executing its proposals: the listing, the risks, the checks, the audit trail, a malformed result,
 * list_changed, and the server killed in the middle of an approved call.
 */

const PREFIX = "mcpt";
const FIXTURE = join(import.meta.dirname, "..", "fixtures", "mcp-server.js");

function fleetYaml(state: string): string {
  const tiers = ["nano", "workhorse", "capable", "power", "premium"].map((t) => `  ${t}: { model: offline-${t}, inputPerM: 1, outputPerM: 2 }`).join("\n");
  const agent = (id: string, layer: string, tools: string) =>
    `  - { id: ${id}, name: ${id}, role: r, layer: ${layer}, defaultTier: nano, cycleMinutes: 20, dailyCapUsd: 1, tools: ${tools}, skills: [{ id: s, name: S, description: s, tags: [s] }] }`;
  return `fleet: { name: mcpt, prefix: ${PREFIX}, timeZone: UTC, dailyCapUsd: 10 }
tiers:
${tiers}
agents:
${agent("atlas", "orchestration", '["*"]')}
${agent("scout", "execution", '["items.*"]')}
${agent("ship", "execution", '["items.read_*"]')}
governance:
  approvals: { channels: [console] }
  sentinel: { quietHoursForExternal: false }
bridges:
  telegram: { chatId: "-100", approvers: [4242] }
mcpServers:
  items:
    command: ${JSON.stringify(process.execPath)}
    args: [${JSON.stringify(FIXTURE)}, --state, ${JSON.stringify(state)}]
    timeoutSeconds: 5
`;
}

describe("MCP server as a tool source (stdio, real processes)", () => {
  const dir = mkdtempSync(join(tmpdir(), "fleet-mcp-"));
  const names = new FleetNames(PREFIX);
  const log = pino({ level: "silent" });
  let nats: NatsServer;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let resources: FleetResources;
  let config: FleetConfig;
  let host: ToolHost;
  let sources: McpToolSources;
  let governance: GovernanceService;
  let directory: ToolDirectory;
  let store: ProposalStore;

  const call = (tool: string, request: ToolCallRequest, as = request.agentId ?? "") =>
    requestTyped(nc, names.tool(tool, as), request, ToolCallResult, { codec: "msgpack", timeoutMs: 10_000 });
  const refused = (code: string) => (err: unknown) => {
    assert.ok(err instanceof FleetError, String(err));
    assert.equal(err.code, code, err.message);
    return true;
  };
  const effects = () => (existsSync(join(dir, "effects.jsonl")) ? readFileSync(join(dir, "effects.jsonl"), "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as { id: string; key?: string }) : []);
  const listing = async () => {
    const entry = await resources.kv.tools.get("mcp.items.test-host");
    if (entry?.operation !== "PUT") return undefined;
    const decoded = decode(ToolListing, entry.value, { codec: "msgpack" });
    return decoded.ok ? decoded.value : undefined;
  };
  const until = async (id: string, state: ProposalState) =>
    waitFor(`proposal ${id} to reach ${state}`, async () => {
      const record = (await store.get(id))?.record;
      return record?.state === state ? record : undefined;
    }, 20_000);

  before(async () => {
    nats = await NatsServer.start();
    nc = await connectNats({ servers: nats.url, name: "mcp-test", longLived: false });
    js = jetstream(nc);
    resources = await ensureFleetResources(nc, names);
    config = parseFleetConfig(fleetYaml(dir), join(dir, "fleet.yaml"));
    host = new ToolHost({ nc, js, names, codec: "msgpack", config, tools: [], kv: resources.kv, host: "test-host", log, timeoutMs: 5_000 });
    await host.start();
    sources = new McpToolSources({ host, hostName: "test-host", config, env: process.env, log, restartMs: [100, 200] });
    await sources.start();
    directory = new ToolDirectory(resources.kv.tools, "msgpack", ["mcp.>"], log);
    await directory.start();
    governance = new GovernanceService({
      nc, js, jsm: await jetstreamManager(nc), names, codec: "msgpack", config, proposalsKv: resources.kv.proposals, tools: [], liveTools: directory,
      policy: policyOf(config), budgetOf: async () => ({ spentUsd: 0, capUsd: 1 }), log, tickMs: 0, toolTimeoutMs: 10_000,
    });
    await governance.start();
    store = new ProposalStore(resources.kv.proposals, js, names, "msgpack");
  });

  after(async () => {
    await governance?.stop();
    await host?.stop();
    await sources?.stop();
    await directory?.stop();
    await nc?.close();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("lists the server's tools as <server>.<tool> with their risks, in KV tools", async () => {
    const listed = await listing();
    assert.ok(listed, "the tool host listed the server");
    const risks = Object.fromEntries(listed.tools.map((t) => [t.name, t.risk]));
    // read-only → AUTO, destructive → CONFIRM: from the annotations, with nothing in config
    assert.deepEqual(risks, { "items.read_item": "AUTO", "items.delete_item": "CONFIRM", "items.broken_count": "AUTO" });
    assert.equal(listed.source, "mcp:items");
    assert.equal(listed.available, true);
    const read = listed.tools.find((t) => t.name === "items.read_item");
    assert.deepEqual(read?.inputSchema, { type: "object", properties: { id: { type: "string", minLength: 1 } }, required: ["id"], additionalProperties: false });
    assert.equal(directory.risk("items.delete_item"), "CONFIRM");
  });

  it("an allowed read-only call runs on the server and is audited; the input is checked against the server's schema first", async () => {
    const result = await call("items.read_item", { agentId: "ship", input: { id: "a" } });
    assert.deepEqual(result.output, { text: "alpha" });
    const trail = await readAuditRecords(js, names, "msgpack", { agentId: "ship", tool: "items.read_item" });
    assert.equal(trail.records.length, 1);
    assert.equal(trail.records[0]?.ok, true);
    assert.equal(trail.records[0]?.risk, "AUTO");
    await assert.rejects(call("items.read_item", { agentId: "ship", input: { id: 7 } }), refused("MESSAGE_INVALID"));
    await assert.rejects(call("items.read_item", { agentId: "ship", input: { id: "a", extra: true } }), refused("MESSAGE_INVALID"));
  });

  it("refuses a tool outside the allow list (glob), and a CONFIRM tool called directly", async () => {
    // ship has items.read_*: delete_item is not in it
    await assert.rejects(call("items.delete_item", { agentId: "ship", input: { id: "a" } }), refused("TOOL_NOT_ALLOWED"));
    // scout has items.*, but a CONFIRM tool runs only as an executing proposal
    await assert.rejects(call("items.delete_item", { agentId: "scout", input: { id: "a" } }), refused("PROPOSAL_REQUIRED"));
    assert.deepEqual(effects(), []);
  });

  it("a malformed tool result is TOOL_RESULT_INVALID, and the server keeps serving", async () => {
    await assert.rejects(call("items.broken_count", { agentId: "scout", input: {} }), refused("TOOL_RESULT_INVALID"));
    const trail = await readAuditRecords(js, names, "msgpack", { tool: "items.broken_count" });
    assert.equal(trail.records[0]?.error?.code, "TOOL_RESULT_INVALID");
    assert.deepEqual((await call("items.read_item", { agentId: "scout", input: { id: "b" } })).output, { text: "beta" });
  });

  it("the server's list_changed is picked up: a new tool is served and listed, a removed one stops", async () => {
    writeFileSync(join(dir, "extra-tool"), "");
    await waitFor("extra_tool listed", async () => (await listing())?.tools.some((t) => t.name === "items.extra_tool"));
    assert.deepEqual((await call("items.extra_tool", { agentId: "scout", input: {} })).output, { text: "extra" });
    unlinkSync(join(dir, "extra-tool"));
    await waitFor("extra_tool gone", async () => (await listing())?.tools.every((t) => t.name !== "items.extra_tool"));
    // nobody serves its subject any more
    await assert.rejects(callTool(nc, names, "items.extra_tool", { agentId: "scout", input: {} }, { codec: "msgpack", timeoutMs: 5_000 }), refused("TOOL_UNAVAILABLE"));
  });

  it("a destructive tool's proposal waits for a person; the server killed mid-call is restarted, the proposal completes once, without a second effect or a spent attempt", async () => {
    const scout = new AgentTools({ nc, js, names, codec: "msgpack", agentId: "scout", allowed: ["items.*"], risks: { get: (n) => directory.risk(n) } });
    const id = await scout.propose({ tool: "items.delete_item", input: { id: "c" }, reason: "clean up" });
    const waiting = await until(id, "awaiting_human");
    assert.equal(waiting.risk, "CONFIRM");
    assert.deepEqual(effects(), [], "nothing ran before the approval");

    assert.equal(sources.connection("items")?.connected, true);
    // the next delete deletes, then the server process exits before it answers
    writeFileSync(join(dir, "die-next"), "");
    await js.publish(names.approvalDecision("telegram", id), encode({ proposalId: id, decision: "approve", by: "4242", via: "telegram", at: Date.now() } satisfies ApprovalDecision));

    const done = await until(id, "completed");
    assert.equal(done.attempts, 1, "the restart cost the proposal no attempt");
    const deleted = effects().filter((e) => e.id === "c");
    assert.equal(deleted.length, 1, "one effect, although the call was made twice");
    assert.equal(deleted[0]?.key, id, "the server got the proposal's idempotency key");
    assert.equal(existsSync(join(dir, "die-next")), false, "the server really died on the first call");
    const trail = await readAuditRecords(js, names, "msgpack", { tool: "items.delete_item", agentId: "scout" });
    const codes = trail.records.filter((r) => r.proposalId === id).map((r) => (r.ok ? "ok" : r.error?.code));
    assert.equal(codes.at(-1), "ok");
    assert.ok(codes.includes("TOOL_SOURCE_UNAVAILABLE"), `the lost call is in the audit trail (${codes.join(", ")})`);
  });
});
