import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstream } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { AgentTools, ProposalStore } from "../../governance/index.js";
import { electionSafeJetStream } from "../../protocol/index.js";
import type { ChildSpec } from "../../supervisor/index.js";
import type { FleetClient } from "../helpers/fleet-client.js";
import { CLI, DIST } from "../helpers/fleet-processes.js";

/**
 * The fleet the cluster tests spread over three nodes: scout and ship answer tasks through the router (on a scripted
 * OpenAI server), governance executes proposals of the `tally` tool on a tool host, which appends each run to a file.
 * R3 streams and buckets; tasks redelivered after 2 s.
 */
export function writeClusterFleet(prefix: string, openaiBaseUrl: string): { file: string; tallyFile: string; dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "fleet-cluster-config-"));
  const file = join(dir, "fleet.yaml");
  const tier = (name: string) => `  ${name}: { model: m-${name}, inputPerM: 1, outputPerM: 2, baseUrl: ${openaiBaseUrl} }`;
  const agent = (id: string, layer: string, tools: string) =>
    `  - { id: ${id}, name: ${id}, role: r, layer: ${layer}, defaultTier: capable, cycleMinutes: 600, dailyCapUsd: 100, tools: ${tools}, skills: [{ id: s-${id}, name: S, description: s, tags: [s] }] }`;
  writeFileSync(
    file,
    `fleet: { name: cluster, prefix: ${prefix}, timeZone: UTC, dailyCapUsd: 1000, replicas: 3, quietHours: { start: "00:00", end: "00:00" } }
tiers:
${["nano", "workhorse", "capable", "power", "premium"].map(tier).join("\n")}
routing:
  classifier: false
  cache: { enabled: false }
agents:
${agent("atlas", "orchestration", '["*"]')}
${agent("scout", "execution", "[web_fetch]")}
${agent("ship", "execution", "[http_check]")}
governance:
  approvals: { channels: [console] }
  sentinel: { rateLimits: { default: 100000 } }
toolModules: [${JSON.stringify(join(DIST, "test", "fixtures", "cluster-tools.js"))}]
memory: { dir: ${JSON.stringify(join(dir, "memory"))} }
backups: { dir: ${JSON.stringify(join(dir, "backups"))} }
tasks: { maxDeliver: 10, ackWaitSeconds: 2, backoffSeconds: [2, 2, 2], workingAckSeconds: 0.5 }
supervisor: { intensity: 20, periodSeconds: 60, shutdownTimeoutSeconds: 5 }
`,
  );
  return { file, tallyFile: join(dir, "tally.txt"), dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** `fleet run <role…>` connected to one node only (it learns the others from the cluster, as a real host's process would). */
export function roleOn(id: string, role: string[], config: string, node: string, logLevel = "warn"): ChildSpec {
  return { id, command: process.execPath, args: [CLI, "run", ...role, "--config", config, "--nats", node, "--run-id", randomUUID(), "--supervised", "--log-level", logLevel], restart: "permanent" };
}

/** The counts in the tally file: n → how many times the tool ran for it. */
export function tallies(file: string): Map<number, number> {
  const counts = new Map<number, number>();
  if (!existsSync(file)) return counts;
  for (const line of readFileSync(file, "utf8").split("\n")) if (line) counts.set(Number(line), (counts.get(Number(line)) ?? 0) + 1);
  return counts;
}

/** Proposals of `tally` as atlas would submit them (through the same election-safe publish the agents use). */
export function proposer(client: FleetClient, proposalsKv: KV = client.resources.kv.proposals): { propose(n: number, file: string): Promise<string>; state(id: string): Promise<string | undefined> } {
  const js = electionSafeJetStream(jetstream(client.nc));
  const tools = new AgentTools({ nc: client.nc, js, names: client.names, codec: "msgpack", agentId: "atlas", allowed: ["tally"], risks: new Map([["tally", "AUTO+"]]) });
  const store = new ProposalStore(proposalsKv, js, client.names, "msgpack");
  return {
    propose: (n, file) => tools.propose({ id: `tally-${n}-${randomUUID().slice(0, 8)}`, tool: "tally", input: { n, file }, reason: "cluster test" }),
    state: async (id) => (await store.get(id))?.record.state,
  };
}

/** The task item a provider request was for ("item N" in its last message). */
export function itemOf(body: unknown): string | undefined {
  return /item (\d+)\b/.exec(JSON.stringify(Object(body).messages?.at(-1)))?.[1];
}
