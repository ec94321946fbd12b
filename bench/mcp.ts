import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { jetstream } from "@nats-io/jetstream";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { pino } from "pino";
import { parseFleetConfig } from "../config/index.js";
import { AgentTools, McpToolSources, readAuditRecords, ToolDirectory, ToolHost } from "../governance/index.js";
import { connectNats, ensureFleetResources, FleetNames } from "../protocol/index.js";
import { NatsServer } from "../harness/index.js";
import { ascending, figure, percentile, say, type Result } from "./report.js";

/**
 * bench/mcp: one MCP tool call through the fleet — an agent's AgentTools call over NATS to a tool host (allow list,
 * input schema, the call to the MCP server over stdio, the audit record appended to the hash chain before the reply) —
 * against the same call made directly with the MCP SDK client to another process of the same server, in the same run.
 * Sequential calls (no queueing), in interleaved rounds so drift hits both alike; p50 and p99.
 *
 *   node dist/bench/mcp.js [--count 2000] [--warmup 200]
 *
 * The MCP server is the test fixture (test/fixtures/mcp-server.ts), started as a process by path; its read_item reads a
 * small JSON file, so what is timed is the path, not the tool.
 */

const { values } = parseArgs({ options: { count: { type: "string" }, warmup: { type: "string" } } });
const COUNT = Number(values.count ?? 2000);
const WARMUP = Number(values.warmup ?? 200);
const ROUND = 250;
const PREFIX = "bm";
const here = dirname(fileURLToPath(import.meta.url));
const FIXTURE = resolve(here, "..", "test", "fixtures", "mcp-server.js");

function fleetYaml(state: string): string {
  const tiers = ["nano", "workhorse", "capable", "power", "premium"].map((t) => `  ${t}: { model: offline-${t}, inputPerM: 1, outputPerM: 2 }`).join("\n");
  const agent = (id: string, layer: string, tools: string) =>
    `  - { id: ${id}, name: ${id}, role: r, layer: ${layer}, defaultTier: nano, cycleMinutes: 60, dailyCapUsd: 1, tools: ${tools}, skills: [{ id: s, name: S, description: s, tags: [s] }] }`;
  return `fleet: { name: bench, prefix: ${PREFIX}, timeZone: UTC, dailyCapUsd: 10 }
tiers:
${tiers}
agents:
${agent("atlas", "orchestration", '["*"]')}
${agent("scout", "execution", '["items.read_item"]')}
mcpServers:
  items: { command: ${JSON.stringify(process.execPath)}, args: [${JSON.stringify(FIXTURE)}, --state, ${JSON.stringify(state)}] }
`;
}

async function timed(n: number, call: () => Promise<unknown>, into: number[]): Promise<void> {
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await call();
    into.push(performance.now() - t);
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "bench-mcp-"));
  const nats = await NatsServer.start();
  const names = new FleetNames(PREFIX);
  const log = pino({ level: "warn" });
  const config = parseFleetConfig(fleetYaml(join(dir)), "bench-mcp.yaml");
  // the tool host on connections of its own (serving, and writing the audit chain), the agent on another
  const hostNc = await connectNats({ servers: nats.url, name: "bench-tools", longLived: false });
  const writerNc = await connectNats({ servers: nats.url, name: "bench-tools-writer", longLived: false });
  const agentNc = await connectNats({ servers: nats.url, name: "bench-agent", longLived: false });
  const direct = new Client({ name: "bench-direct", version: "1.0.0" });
  let host: ToolHost | undefined;
  let sources: McpToolSources | undefined;
  let directory: ToolDirectory | undefined;
  try {
    const { kv } = await ensureFleetResources(writerNc, names);
    host = new ToolHost({ nc: hostNc, js: jetstream(writerNc), names, codec: "msgpack", config, tools: [], kv, host: "bench", log });
    await host.start();
    sources = new McpToolSources({ host, hostName: "bench", config, env: process.env, log });
    await sources.start();
    directory = new ToolDirectory(kv.tools, "msgpack", ["mcp.items.*"], log);
    await directory.start();
    const risks = directory;
    const scout = new AgentTools({ nc: agentNc, js: jetstream(agentNc), names, codec: "msgpack", agentId: "scout", allowed: ["items.read_item"], risks: { get: (n) => risks.risk(n) } });
    await direct.connect(new StdioClientTransport({ command: process.execPath, args: [FIXTURE, "--state", join(dir)], stderr: "ignore" }));

    const viaFleet = () => scout.call("items.read_item", { id: "a" });
    const viaSdk = () => direct.callTool({ name: "read_item", arguments: { id: "a" } });
    const first = await viaFleet();
    if (JSON.stringify(first.output) !== JSON.stringify({ text: "alpha" })) throw new Error(`unexpected output ${JSON.stringify(first.output)}`);
    say(`bench/mcp: ${COUNT} sequential calls of read_item each way (after ${WARMUP} warm-up), interleaved in rounds of ${ROUND}; nats-server ${nats.url}`);
    await timed(WARMUP, viaFleet, []);
    await timed(WARMUP, viaSdk, []);
    const fleet: number[] = [];
    const sdk: number[] = [];
    for (let done = 0; done < COUNT; done += ROUND) {
      const n = Math.min(ROUND, COUNT - done);
      await timed(n, viaFleet, fleet);
      await timed(n, viaSdk, sdk);
    }
    const f = ascending(fleet);
    const s = ascending(sdk);
    const audited = await readAuditRecords(jetstream(agentNc), names, "msgpack", { agentId: "scout", limit: COUNT + WARMUP + 1 });
    say(`  through the fleet (agent → tool host → MCP server → reply, audited): p50 ${percentile(f, 50).toFixed(3)} ms   p99 ${percentile(f, 99).toFixed(3)} ms`);
    say(`  direct with the SDK client:                                         p50 ${percentile(s, 50).toFixed(3)} ms   p99 ${percentile(s, 99).toFixed(3)} ms`);
    say(`  overhead at p50: ${(percentile(f, 50) - percentile(s, 50)).toFixed(3)} ms (target ≤ 2 ms)   audit records written: ${audited.records.length}`);
    const results: Result[] = [
      figure("mcp", "p50 overhead of the fleet path", percentile(f, 50) - percentile(s, 50), 2, "ms", 3),
      figure("mcp", "p99 latency of an MCP tool call", percentile(f, 99), percentile(s, 99), "ms", 3),
      figure("mcp", "p50 latency of an MCP tool call", percentile(f, 50), percentile(s, 50), "ms", 3),
    ];
    for (const r of results) say(JSON.stringify(r));
  } finally {
    await direct.close().catch(() => undefined);
    await host?.stop();
    await sources?.stop();
    await directory?.stop();
    for (const nc of [agentNc, hostNc, writerNc]) await nc.close();
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
