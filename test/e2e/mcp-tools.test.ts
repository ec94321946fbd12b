import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { loadFleetConfig } from "../../config/index.js";
import { callTool, readAuditRecords, referenceToolRisks, writeFleetCredentials, type FleetCredentials } from "../../governance/index.js";
import { connectNats, FleetError, FleetNames, ProposalRecord } from "../../protocol/index.js";
import type { ProcessSupervisor } from "../../supervisor/index.js";
import { FleetClient } from "../helpers/fleet-client.js";
import { startProcesses } from "../helpers/fleet-processes.js";
import { identitySpec } from "../helpers/governed-fleet.js";
import { MCP_FIXTURE, startHttpFixture } from "../helpers/mcp-fixture.js";
import { NatsServer } from "../helpers/nats-server.js";
import { OpenAIServer } from "../helpers/openai-server.js";
import { routerFleetYaml } from "../helpers/router-fleet.js";
import { runFleet } from "../helpers/run-cli.js";
import { waitFor } from "../helpers/wait.js";

/**
 * MCP servers' tools on a secured fleet, everything real: nats-server with the generated permissions, the router on a
 * scripted OpenAI server, a tool host connected to the fixture MCP server over stdio (`items`) and over streamable HTTP
 * with a bearer token (`notes`), governance, and scout, whose model step calls the tools by the names it is offered.
 */

const PREFIX = "mcpe2e";
const TOKEN = "notes-bearer-token-0123456789";

describe("an agent's model step calls MCP tools (secured fleet, processes)", () => {
  const dir = mkdtempSync(join(tmpdir(), "fleet-mcp-e2e-"));
  const itemsState = join(dir, "items");
  const notesState = join(dir, "notes");
  const names = new FleetNames(PREFIX);
  let nats: NatsServer;
  let openai: OpenAIServer;
  let notes: Awaited<ReturnType<typeof startHttpFixture>>;
  let creds: FleetCredentials;
  let processes: ProcessSupervisor;
  let client: FleetClient;
  let file: string;
  const cli = (...args: string[]) => runFleet([...args, "--config", file, "--nats", nats.url, "--creds", creds.seedFile("operator")], { timeoutMs: 30_000 });

  before(async () => {
    for (const d of [itemsState, notesState]) rmSync(d, { recursive: true, force: true });
    for (const d of [itemsState, notesState]) mkdirSync(d);
    openai = await OpenAIServer.start();
    notes = await startHttpFixture(notesState, TOKEN);
    file = join(dir, "fleet.yaml");
    writeFileSync(
      file,
      routerFleetYaml({ baseUrl: openai.baseUrl, prefix: PREFIX, routing: "  classifier: false\n  cache: { enabled: false }" })
        .replace("tools: [web_fetch]", "tools: [web_fetch, items.read_item, items.delete_item, notes.*]") +
        `memory: { dir: ${JSON.stringify(join(dir, "memory"))} }
backups: { dir: ${JSON.stringify(join(dir, "backups"))} }
governance:
  approvals: { channels: [console] }
  sentinel: { quietHoursForExternal: false }
mcpServers:
  items:
    command: ${JSON.stringify(process.execPath)}
    args: [${JSON.stringify(MCP_FIXTURE)}, --state, ${JSON.stringify(itemsState)}]
  notes:
    url: ${notes.url}
    tokenEnv: NOTES_TOKEN
    risk: { "delete_*": BLOCK }
`,
    );
    const config = loadFleetConfig(file);
    creds = writeFleetCredentials(join(dir, "creds"), config, referenceToolRisks());
    nats = await NatsServer.start({ config: readFileSync(creds.authFile, "utf8") });
    client = await FleetClient.connect(nats.url, PREFIX, { nkeySeedFile: creds.seedFile("operator") });
    processes = startProcesses([
      identitySpec(file, nats.url, creds, "router", ["router"], "router"),
      { ...identitySpec(file, nats.url, creds, "tools", ["tools"], "tools"), env: { NOTES_TOKEN: TOKEN } },
      identitySpec(file, nats.url, creds, "governance", ["governance"], "governance"),
      identitySpec(file, nats.url, creds, "scout", ["agent", "scout"], "agent:scout"),
    ]);
    await processes.start();
    await client.waitAlive(["scout"]);
    // both servers listed by the tool host
    await waitFor("both MCP servers listed", async () => {
      const keys: string[] = [];
      for await (const key of await client.resources.kv.tools.keys()) keys.push(key);
      return keys.some((k) => k.startsWith("mcp.items.")) && keys.some((k) => k.startsWith("mcp.notes."));
    }, 30_000);
  });

  after(async () => {
    await processes?.stop();
    await client?.close();
    await notes?.stop();
    await Promise.all([nats?.stop(), openai?.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it("the model is offered the MCP tools it may use; a read-only one runs (stdio and HTTP), the destructive one becomes a proposal", async () => {
    openai.script(
      "m-capable",
      {
        toolCalls: [
          { id: "c1", name: "items__read_item", arguments: { id: "a" } },
          { id: "c2", name: "notes__read_item", arguments: { id: "b" } },
          { id: "c3", name: "items__delete_item", arguments: { id: "c" } },
          { id: "c4", name: "items__broken_count", arguments: {} },
        ],
      },
      { content: "read two items, proposed a deletion" },
    );
    const sent = await client.send("scout", "research the items, please");
    const done = await client.waitState("scout", sent.id, "TASK_STATE_COMPLETED", 30_000);
    const data = done.artifacts?.[0]?.parts?.[1];
    const calls = data && "data" in data ? Object(data.data).toolCalls : undefined;
    assert.deepEqual(calls, [
      { name: "items.read_item", outcome: "ok" },
      { name: "notes.read_item", outcome: "ok" },
      { name: "items.delete_item", outcome: "proposed" },
      { name: "items.broken_count", outcome: "refused" },
    ]);

    const chats = openai.requests.filter((r) => r.path.endsWith("/chat/completions")).map((r) => Object(r.body));
    const offered = (chats[0].tools as { function: { name: string; description: string; parameters: { properties: object } } }[]).map((t) => t.function);
    // its allow list: two items tools, every notes tool but the BLOCK one, and its built-in web_fetch; the server's input
    // schema as it gave it
    assert.deepEqual(offered.map((f) => f.name).sort(), ["items__delete_item", "items__read_item", "notes__broken_count", "notes__read_item", "web_fetch"]);
    assert.deepEqual(offered.find((f) => f.name === "items__read_item")?.parameters.properties, { id: { type: "string", minLength: 1 } });
    assert.match(offered.find((f) => f.name === "items__delete_item")?.description ?? "", /CONFIRM/);
    const results = chats[1].messages.filter((m: { role: string }) => m.role === "tool").map((m: { content: string }) => m.content);
    assert.deepEqual(JSON.parse(results[0]), { text: "alpha" });
    assert.deepEqual(JSON.parse(results[1]), { text: "beta" }, "over HTTP, with the bearer token");
    assert.match(results[2], /^proposal \S+ submitted \(items.delete_item, CONFIRM\)/);
    assert.match(results[3], /^TOOL_NOT_ALLOWED/);

    const audit = await readAuditRecords(client.js, names, "msgpack", { agentId: "scout" });
    assert.deepEqual(
      audit.records.map((r) => [r.tool, r.ok, r.refusedBy ?? ""]),
      [["items.read_item", true, ""], ["notes.read_item", true, ""], ["items.broken_count", false, "agent-host"]],
    );
  });

  it("the destructive tool's proposal waits for a person and completes after approval, once", async () => {
    // the model step only submitted it: governance judges it on its own time
    const proposal = await waitFor("the deletion awaiting a human", async () => {
      const listed = await cli("proposals", "--json");
      const proposals = (JSON.parse(listed.stdout || "[]") as unknown[]).map((p) => ProposalRecord.parse(p));
      return proposals.find((p) => p.tool === "items.delete_item" && p.state === "awaiting_human");
    }, 20_000);
    assert.equal(existsSync(join(itemsState, "effects.jsonl")), false, "nothing ran before the approval");
    const approved = await cli("approve", proposal.id);
    assert.equal(approved.code, 0, approved.stderr + approved.stdout);
    await waitFor("completed", async () => JSON.parse((await cli("proposals", proposal.id, "--json")).stdout).state === "completed", 20_000);
    const effects = readFileSync(join(itemsState, "effects.jsonl"), "utf8").trim().split("\n");
    assert.equal(effects.length, 1);
    assert.equal(JSON.parse(effects[0]!).id, "c");
  });

  it("the broker refuses scout a tool outside its allow list, and a CONFIRM tool config rates so, even sent by hand", async () => {
    const scout = await connectNats({ servers: nats.url, nkeySeedFile: creds.seedFile("agent:scout"), name: "rogue-scout", longLived: false });
    try {
      await assert.rejects(
        callTool(scout, names, "items.broken_count", { agentId: "scout", input: {} }, { codec: "msgpack", timeoutMs: 5_000 }),
        (err: unknown) => err instanceof FleetError && err.code === "PERMISSION_DENIED",
      );
      // allowed by name, but a CONFIRM tool: the tool host refuses it outside a proposal (and records that)
      await assert.rejects(
        callTool(scout, names, "items.delete_item", { agentId: "scout", input: { id: "a" } }, { codec: "msgpack", timeoutMs: 5_000 }),
        (err: unknown) => err instanceof FleetError && err.code === "PROPOSAL_REQUIRED",
      );
    } finally {
      await scout.close();
    }
  });

  it("`fleet tools` lists every tool with its source, risk, the hosts serving it and the agents allowed", async () => {
    const out = await cli("tools", "--json");
    assert.equal(out.code, 0, out.stderr);
    const tools = JSON.parse(out.stdout) as { name: string; source: string; risk: string; hosts: string[]; agents: string[] }[];
    const read = tools.find((t) => t.name === "items.read_item");
    assert.equal(read?.source, "mcp:items");
    assert.equal(read?.risk, "AUTO");
    assert.equal(read?.hosts.length, 1);
    assert.deepEqual(read?.agents, ["atlas", "scout"]);
    assert.deepEqual(tools.find((t) => t.name === "notes.delete_item")?.risk, "BLOCK");
    assert.deepEqual(tools.find((t) => t.name === "items.broken_count")?.agents, ["atlas"]);
    const http = tools.find((t) => t.name === "http_check");
    assert.equal(http?.source, "built-in");
    assert.deepEqual(http?.agents, ["atlas", "ship"]);
    const text = await cli("tools");
    assert.match(text.stdout, /items\.delete_item\s+mcp:items\s+CONFIRM\s+\S+\s+atlas, scout/);
  });
});
