import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { jetstream, jetstreamManager, type JetStreamClient } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino } from "pino";
import { z } from "zod";
import { parseFleetConfig } from "../config/index.js";
import { AgentTools, defineTool, GovernanceService, policyOf, ProposalStore, ToolHost } from "../governance/index.js";
import { connectNats, decode, encode, ensureFleetResources, FleetNames, openBuckets, ProposalEvent } from "../protocol/index.js";
import { NatsServer } from "../harness/index.js";
import { ascending, figure, percentile, say, type Result } from "./report.js";

/**
 * bench/proposals: proposals end to end — an agent submits, governance runs Sentinel's rules, executes an AUTO+ no-op
 * tool on a tool host (idempotency record, audit chain), and the proposal completes — against raw JetStream publishing
 * of the same payload on the same server in the same run. Sustained rate with a bounded number in flight, p50/p99
 * latency from submission to the `completed` event, and loss (every proposal must complete, once).
 *
 *   node dist/bench/proposals.js [--count 5000] [--window 256] [--one-process]
 *
 * Governance and the tool host run as processes of their own (this script with --role), as `fleet up` runs them; with
 * --one-process everything shares one node process (and one core).
 */

const { values } = parseArgs({
  options: {
    count: { type: "string" },
    window: { type: "string" },
    warmup: { type: "string" },
    /** governance and the tool host in this process too (by default each runs in a process of its own, as under fleet up) */
    "one-process": { type: "boolean" },
    /** internal: run one service for the parent benchmark */
    role: { type: "string" },
    nats: { type: "string" },
  },
});
const COUNT = Number(values.count ?? 5000);
const WINDOW = Number(values.window ?? 256);
const WARMUP = Number(values.warmup ?? 500);
const PREFIX = "bp";
/** a fleet of agents proposing at once (Sentinel's per-agent, per-cycle rules see each agent's share) */
const AGENTS = Array.from({ length: 20 }, (_, k) => `agent-${k}`);

function fleetYaml(): string {
  const tiers = ["nano", "workhorse", "capable", "power", "premium"].map((t) => `  ${t}: { model: offline-${t}, inputPerM: 1, outputPerM: 2 }`).join("\n");
  const agent = (id: string, layer: string, tools: string) =>
    `  - { id: ${id}, name: ${id}, role: r, layer: ${layer}, defaultTier: nano, cycleMinutes: 60, dailyCapUsd: 1, tools: ${tools}, skills: [{ id: s, name: S, description: s, tags: [s] }] }`;
  return `fleet: { name: bench, prefix: ${PREFIX}, timeZone: UTC, dailyCapUsd: 10 }
tiers:
${tiers}
agents:
${agent("atlas", "orchestration", '["*"]')}
${AGENTS.map((id) => agent(id, "execution", "[noop]")).join("\n")}
governance:
  sentinel: { rateLimits: { default: 100000 } }
`;
}

const noop = defineTool({ name: "noop", description: "an internal write that does nothing", risk: "AUTO+", input: z.object({ n: z.number() }), handler: async ({ n }) => ({ n }) });

/** Raw JetStream: `count` publishes of `payload` with at most `window` unacknowledged, as the submissions are sent. */
async function rawJetStream(js: JetStreamClient, subject: string, payload: Uint8Array, count: number, window: number): Promise<{ perSecond: number; p50: number; p99: number }> {
  const latencies: number[] = [];
  const inFlight = new Set<Promise<unknown>>();
  const started = performance.now();
  for (let k = 0; k < count; k++) {
    const t = performance.now();
    const p = js.publish(subject, payload).then(() => latencies.push(performance.now() - t));
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
    if (inFlight.size >= window) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  const seconds = (performance.now() - started) / 1000;
  const sorted = ascending(latencies);
  return { perSecond: count / seconds, p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

async function proposalsEndToEnd(nc: NatsConnection, agents: AgentTools[], names: FleetNames, count: number, window: number) {
  const submittedAt = new Map<string, number>();
  const latencies: number[] = [];
  let completed = 0;
  let duplicates = 0;
  const seen = new Set<string>();
  let wake: (() => void) | undefined;
  const Event = ProposalEvent;
  const sub = nc.subscribe(names.proposal("*", "completed"), {
    callback: (err, msg) => {
      if (err) return;
      const d = decode(Event, msg.data);
      if (!d.ok) return;
      const at = submittedAt.get(d.value.id);
      if (at === undefined) return;
      if (seen.has(d.value.id)) {
        duplicates++;
        return;
      }
      seen.add(d.value.id);
      latencies.push(performance.now() - at);
      completed++;
      wake?.();
    },
  });
  const started = performance.now();
  for (let k = 0; k < count; k++) {
    while (submittedAt.size - completed >= window) await new Promise<void>((r) => (wake = r));
    const id = randomUUID();
    submittedAt.set(id, performance.now());
    void agents[k % agents.length]!.propose({ id, tool: "noop", input: { n: k }, reason: "benchmark" });
  }
  const deadline = Date.now() + 120_000;
  while (completed < count && Date.now() < deadline) await new Promise<void>((r) => ((wake = r), setTimeout(r, 200)));
  const seconds = (performance.now() - started) / 1000;
  sub.unsubscribe();
  const sorted = ascending(latencies);
  return { ids: [...submittedAt.keys()], perSecond: completed / seconds, p50: percentile(sorted, 50), p99: percentile(sorted, 99), completed, duplicates };
}

/** One of the two services on its own connection; resolves with its stop function. */
async function startService(role: "tools" | "governance", url: string): Promise<() => Promise<void>> {
  const log = pino({ level: "warn" });
  const names = new FleetNames(PREFIX);
  const config = parseFleetConfig(fleetYaml(), "bench-proposals.yaml");
  const nc = await connectNats({ servers: url, name: `bench-${role}`, longLived: false });
  const kv = await openBuckets(nc, names);
  const service =
    role === "tools"
      ? new ToolHost({ nc, js: jetstream(nc), names, codec: "msgpack", config, tools: [noop], kv: { proposals: kv.proposals, toolruns: kv.toolruns }, host: "bench", log })
      : new GovernanceService({
          nc, js: jetstream(nc), jsm: await jetstreamManager(nc), names, codec: "msgpack", config, proposalsKv: kv.proposals, tools: [noop],
          policy: policyOf(config), budgetOf: async () => ({ spentUsd: 0, capUsd: 1 }), log, tickMs: 1000,
        });
  await service.start();
  return async () => {
    await service.stop();
    await nc.close();
  };
}

/** The service as a child process of this script, ready once it says so. */
async function spawnService(role: "tools" | "governance", url: string): Promise<() => Promise<void>> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), "--role", role, "--nats", url], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise<void>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`${role} exited with ${code}`)));
    child.stdout.on("data", (d: Buffer) => d.toString().includes("ready") && resolve());
  });
  return async () => {
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    await exited;
  };
}

async function serveRole(role: string, url: string): Promise<void> {
  if (role !== "tools" && role !== "governance") throw new Error(`--role tools|governance, not ${role}`);
  const stop = await startService(role, url);
  process.stdout.write("ready\n");
  process.once("SIGTERM", () => void stop().then(() => process.exit(0)));
}

async function main(): Promise<void> {
  const nats = await NatsServer.start();
  const names = new FleetNames(PREFIX);
  const agentNc = await connectNats({ servers: nats.url, name: "bench-agents", longLived: false });
  const oneProcess = values["one-process"] ?? false;
  try {
    const { kv } = await ensureFleetResources(agentNc, names);
    const stops = await Promise.all((["tools", "governance"] as const).map((role) => (oneProcess ? startService(role, nats.url) : spawnService(role, nats.url))));
    const agents = AGENTS.map((agentId) => new AgentTools({ nc: agentNc, js: jetstream(agentNc), names, codec: "msgpack", agentId, allowed: ["noop"], risks: new Map([["noop", "AUTO+"]]) }));

    const sample = encode({ id: randomUUID(), agentId: "agent-0", tool: "noop", input: { n: 1 }, reason: "benchmark", submittedAt: Date.now() });
    say(`bench/proposals: ${COUNT} proposals (AUTO+ no-op) from ${AGENTS.length} agents, at most ${WINDOW} in flight, ${sample.length}-byte submissions; governance and tool host ${oneProcess ? "in this process" : "in processes of their own"}; nats-server ${nats.url}`);
    await proposalsEndToEnd(agentNc, agents, names, WARMUP, WINDOW);
    const raw = await rawJetStream(jetstream(agentNc), `${PREFIX}.audit.rawbaseline`, sample, COUNT, WINDOW);
    say(`  raw JetStream publish:   ${raw.perSecond.toFixed(0)}/s   p50 ${raw.p50.toFixed(2)} ms   p99 ${raw.p99.toFixed(2)} ms`);
    const run = await proposalsEndToEnd(agentNc, agents, names, COUNT, WINDOW);
    say(`  proposals end to end:    ${run.perSecond.toFixed(0)}/s   p50 ${run.p50.toFixed(2)} ms   p99 ${run.p99.toFixed(2)} ms   completed ${run.completed}/${COUNT}, duplicate completions ${run.duplicates}`);
    // latency without queueing: one proposal at a time, against one JetStream publish at a time
    const single = await proposalsEndToEnd(agentNc, agents, names, 300, 1);
    const rawSingle = await rawJetStream(jetstream(agentNc), `${PREFIX}.audit.rawbaseline`, sample, 300, 1);
    say(`  one at a time:           proposal p50 ${single.p50.toFixed(2)} ms p99 ${single.p99.toFixed(2)} ms   raw publish p50 ${rawSingle.p50.toFixed(2)} ms p99 ${rawSingle.p99.toFixed(2)} ms`);

    // loss is checked against the store, not the events: every proposal must be completed in KV, with one tool run
    const store = new ProposalStore(kv.proposals, jetstream(agentNc), names, "msgpack");
    let inKv = 0;
    for (const id of [...run.ids, ...single.ids]) if ((await store.get(id))?.record.state === "completed") inKv++;
    const total = COUNT + 300;
    say(`  completed in KV: ${inKv}/${total}   lost: ${total - inKv}`);

    await Promise.all(stops.map((stop) => stop()));
    const results: Result[] = [
      figure("proposals", "one-at-a-time p50 latency", single.p50, rawSingle.p50, "ms", 2),
      figure("proposals", "one-at-a-time p99 latency", single.p99, rawSingle.p99, "ms", 2),
      figure("proposals", "sustained p50 latency", run.p50, raw.p50, "ms", 2),
      figure("proposals", "sustained p99 latency", run.p99, raw.p99, "ms", 2),
      figure("proposals", "lost proposals", total - inKv, 0, "count", 0, 0),
      figure("proposals", "proposals per second (sustained)", run.perSecond, raw.perSecond, "per s", 0),
    ];
    for (const r of results) say(JSON.stringify(r));
  } finally {
    await agentNc.close();
    await nats.stop();
  }
}

if (values.role) await serveRole(values.role, values.nats ?? "");
else await main();
