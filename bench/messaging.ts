import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { jetstream } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { pino } from "pino";
import { AgentRuntime, type HostedAgent, type RuntimeSettings } from "../actors/index.js";
import { offlineBehaviour } from "../behaviours/index.js";
import { encode, ensureFleetResources, FleetError, FleetNames, requestOperation, sendToInbox, wireHeaders, type Message } from "../protocol/index.js";
import { NatsServer } from "../harness/index.js";
import { startAgentProcess } from "./idle-agent-process.js";
import { figure, median, percentile, say, type Result } from "./report.js";

/**
 * Messaging benchmark: one nats-server started here, every figure measured against raw nats.js in the same run.
 *   1. A2A throughput: one-way inbox Messages (encode, publish, decode + zod, MESSAGE_RECEIVED) vs a counting subscriber.
 *   2. SendMessage latency: p50/p99 of the A2A request (Task to KV, assignment to JetStream) vs an immediate responder.
 *   3. RSS: the real CLI hosting one agent, and one process hosting 1,000 actors, vs a bare nats.js process.
 * Sender and receiver share this process but not a connection. The last line is the headline (throughput) as JSON.
 */

const here = dirname(fileURLToPath(import.meta.url));
const DIST = resolve(here, "..");
const CLI = join(DIST, "cli", "main.js");
const IDLE_AGENT = join(here, "idle-agent.js");
const LOCAL_FLEET = resolve(DIST, "..", "config", "fleets", "local.yaml");

const THROUGHPUT_N = 100_000;
const THROUGHPUT_WARMUP = 10_000;
const THROUGHPUT_ROUNDS = 5;
/** the sender flushes every BATCH messages, so neither side buffers the whole run (same pacing for both) */
const BATCH = 1_000;
const LATENCY_N = 2_000;
const LATENCY_WARMUP = 200;
const SETTLE_MS = 3_000;
const MB = 1024 * 1024;
const result = (metric: string, value: number, baseline: number, unit: string, digits = 2): Result => figure("messaging", metric, value, baseline, unit, digits);



const TEXT =
  "Please look up the current pricing pages of our three main competitors and summarise any change since last week, " +
  "with links to the sources, the date each page was fetched and whether the change affects our starter plan.";

function agentMessage(seq: number): Message {
  return {
    messageId: `bench-${process.pid}-${seq}`,
    contextId: "bench-context-0001",
    role: "ROLE_AGENT",
    parts: [{ text: TEXT }],
    metadata: { from: "atlas", skill: "research", priority: "normal", sentAt: "2026-11-23T09:30:00.000Z" },
  };
}

function agent(id: string): HostedAgent {
  return {
    id,
    name: `Bench ${id}`,
    role: "benchmark receiver",
    defaultTier: "capable",
    cycleMinutes: 60,
    skills: [{ id: "research", name: "Research", description: "Looks a question up.", tags: ["research", "pricing"] }],
  };
}

function settings(url: string, prefix: string): RuntimeSettings {
  return {
    servers: url,
    prefix,
    codec: "msgpack",
    maxPayloadBytes: MB,
    tasks: { ackWaitSeconds: 30, maxDeliver: 5, backoffSeconds: [30, 60, 300], workingAckSeconds: 10 },
    // a benchmark must not pause for quiet hours (start = end: never quiet)
    quietHours: { start: "00:00", end: "00:00", timeZone: "UTC" },
    runId: `bench-${process.pid}`,
    processName: `bench-${prefix}`,
  };
}

const startRuntime = (url: string, prefix: string, id: string) =>
  AgentRuntime.start(settings(url, prefix), [agent(id)], (a) => offlineBehaviour(a), { log: pino({ level: "silent" }) });



// ---------------------------------------------------------------------------------------------------------------- 1

/**
 * Baseline: the same bytes, no headers, a subscriber that only counts. Messages/second until the last one arrives.
 * `withHeaders` (information only) adds the A2A headers and reads Content-Type on receipt, as the host does.
 */
async function rawThroughput(url: string, payload: Uint8Array, n: number, withHeaders = false): Promise<number> {
  const pub = await connect({ servers: url, name: "bench-raw-pub" });
  const sub = await connect({ servers: url, name: "bench-raw-sub" });
  try {
    const subject = "bench.raw.inbox";
    let count = 0;
    let done!: () => void;
    const all = new Promise<void>((r) => (done = r));
    sub.subscribe(subject, {
      callback: (_err, msg) => {
        if (withHeaders) msg.headers?.get("Content-Type");
        if (++count === n) done();
      },
    });
    await sub.flush();
    const headers = withHeaders ? wireHeaders("msgpack") : undefined;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      pub.publish(subject, payload, headers ? { headers } : undefined);
      if ((i + 1) % BATCH === 0) await pub.flush();
    }
    await all;
    return n / ((performance.now() - t0) / 1000);
  } finally {
    await pub.close();
    await sub.close();
  }
}

/**
 * The project path: encode a typed Message per send, publish with A2A headers, the host decodes, validates and sends
 * MESSAGE_RECEIVED. Completion is a fence: a GetTask request after the N messages, on the same sender connection. NATS
 * keeps one publisher's order into one subscriber connection (inbox and operations share the host's connection), the
 * client dispatches callbacks in arrival order and the inbox callback delivers synchronously, so when the fence's reply
 * arrives every message before it has been delivered to the actor. The fence costs one KV read.
 */
async function a2aThroughput(pub: NatsConnection, runtime: AgentRuntime, names: FleetNames, agentId: string, n: number, seq0: number): Promise<number> {
  const inBefore = runtime.nc.stats().inMsgs;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    sendToInbox(pub, names, agentId, agentMessage(seq0 + i));
    if ((i + 1) % BATCH === 0) await pub.flush();
  }
  await requestOperation(pub, names, agentId, "GetTask", { id: "none" }, { timeoutMs: 60_000 }).then(
    () => {
      throw new Error("the fence found a task called 'none'");
    },
    (err: unknown) => {
      if (!(err instanceof FleetError && err.code === "TASK_NOT_FOUND")) throw err;
    },
  );
  const rate = n / ((performance.now() - t0) / 1000);
  // honesty checks: nothing was dropped on the way, and the actor holds the last message sent
  const arrived = runtime.nc.stats().inMsgs - inBefore;
  if (arrived < n + 1) throw new Error(`only ${arrived} of ${n + 1} messages reached the receiving connection`);
  const host = runtime.hosts[0];
  // bench-only peek at the host's private actor, to check delivery without adding a hook to the source
  const last = host?.["actor"].getSnapshot().context.inbox.at(-1)?.messageId;
  if (last !== agentMessage(seq0 + n - 1).messageId) throw new Error(`the actor's last message is ${last}, not the last one sent`);
  return rate;
}

async function throughput(url: string): Promise<Result> {
  const names = new FleetNames("benchtp");
  const agentId = "rx";
  const runtime = await startRuntime(url, names.prefix, agentId);
  const pub = await connect({ servers: url, name: "bench-a2a-pub" });
  const payload = encode(agentMessage(0), "msgpack");
  say(`A2A throughput: ${THROUGHPUT_N} one-way Messages of ${payload.length} B, sender and receiver in this process on separate connections`);
  try {
    let seq = 0;
    await rawThroughput(url, payload, THROUGHPUT_WARMUP);
    await a2aThroughput(pub, runtime, names, agentId, THROUGHPUT_WARMUP, seq);
    seq += THROUGHPUT_WARMUP;
    const raw: number[] = [];
    const a2a: number[] = [];
    for (let r = 0; r < THROUGHPUT_ROUNDS; r++) {
      raw.push(await rawThroughput(url, payload, THROUGHPUT_N));
      a2a.push(await a2aThroughput(pub, runtime, names, agentId, THROUGHPUT_N, seq));
      seq += THROUGHPUT_N;
      say(`  round ${r + 1}: raw nats.js ${Math.round(raw[r] ?? 0)} msg/s, A2A inbox ${Math.round(a2a[r] ?? 0)} msg/s`);
    }
    const headed = await rawThroughput(url, payload, THROUGHPUT_N, true);
    say(`  information: raw nats.js with the A2A headers (read on receipt) ${Math.round(headed)} msg/s`);
    const res = result("a2a_throughput", median(a2a), median(raw), "msg/s", 0);
    say(`  median: A2A ${res.value} msg/s vs raw ${res.baseline} msg/s, ratio ${res.ratio} (target >= 0.3)`);
    return res;
  } finally {
    await pub.close();
    await runtime.stop();
  }
}

// ---------------------------------------------------------------------------------------------------------------- 2

async function timeSequential(n: number, call: (i: number) => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await call(i);
    out.push(performance.now() - t);
  }
  return out.sort((a, b) => a - b);
}

async function latency(url: string): Promise<Result[]> {
  // The agent is its own process, as in a fleet. Its worker is busy with a long task (work that waits, as a model call
  // does), so the requests measure what SendMessage itself costs: the Task persisted and assigned, then the reply. How
  // much an agent finishing 600 instant tasks a second in the same process adds is measured after, as information.
  const names = new FleetNames("benchlat");
  const agentId = "a0000";
  const agentProcess = await startAgentProcess(url, names.prefix, 3_600_000);
  const client = await connect({ servers: url, name: "bench-client" });
  const responderNc = await connect({ servers: url, name: "bench-responder" });
  try {
    const requestBytes = encode({ message: agentMessage(0) }, "msgpack");
    const sample = await requestOperation(client, names, agentId, "SendMessage", { message: agentMessage(-1) });
    const replyBytes = encode({ result: sample }, "msgpack");
    say(`SendMessage latency: ${LATENCY_N} sequential requests after ${LATENCY_WARMUP} warm-up; request ${requestBytes.length} B, reply ${replyBytes.length} B`);

    responderNc.subscribe("bench.raw.request", { callback: (_err, msg) => void msg.respond(replyBytes) });
    await responderNc.flush();
    const rawCall = () => client.request("bench.raw.request", requestBytes, { timeout: 5_000 });
    await timeSequential(LATENCY_WARMUP, rawCall);
    const raw = await timeSequential(LATENCY_N, rawCall);

    let seq = 1_000_000;
    const sendCall = () => requestOperation(client, names, agentId, "SendMessage", { message: agentMessage(seq++) });
    await timeSequential(LATENCY_WARMUP, sendCall);
    const a2a = await timeSequential(LATENCY_N, sendCall);

    // information: the same against an agent that works each task through at once, in the same process
    const instantNames = new FleetNames("benchlatinstant");
    const instantAgent = await startAgentProcess(url, instantNames.prefix, 0);
    try {
      const instantCall = () => requestOperation(client, instantNames, agentId, "SendMessage", { message: agentMessage(seq++) });
      await timeSequential(LATENCY_WARMUP, instantCall);
      const instant = await timeSequential(LATENCY_N, instantCall);
      say(`  information: with the agent working each task through at once in the same process, p50 ${percentile(instant, 50).toFixed(3)} ms, p99 ${percentile(instant, 99).toFixed(3)} ms`);
    } finally {
      await instantAgent.stop();
    }

    // information: what SendMessage cannot go below, its two JetStream writes (Task to KV, assignment to TASKS) in a row
    const floorNames = new FleetNames("benchfloor");
    const { kv } = await ensureFleetResources(client, floorNames, { maxPayloadBytes: MB });
    const js = jetstream(client);
    const taskBytes = new Uint8Array(replyBytes.length);
    const floorCall = async (i: number) => {
      await kv.tasks.create(floorNames.taskKey("svc", `t${i}`), taskBytes);
      await js.publish(floorNames.task("svc"), requestBytes, { msgID: `t${i}` });
    };
    await timeSequential(LATENCY_WARMUP, (i) => floorCall(-1 - i));
    const floor = await timeSequential(LATENCY_N, floorCall);
    say(`  information: KV create + JetStream publish alone, p50 ${percentile(floor, 50).toFixed(3)} ms, p99 ${percentile(floor, 99).toFixed(3)} ms`);

    const p50 = result("sendmessage_latency_p50", percentile(a2a, 50), percentile(raw, 50), "ms", 3);
    const p99 = result("sendmessage_latency_p99", percentile(a2a, 99), percentile(raw, 99), "ms", 3);
    say(`  p50: SendMessage ${p50.value} ms vs raw ${p50.baseline} ms, ratio ${p50.ratio} (target <= 3)`);
    say(`  p99: SendMessage ${p99.value} ms vs raw ${p99.baseline} ms, ratio ${p99.ratio}`);
    return [p50, p99];
  } finally {
    await client.close();
    await responderNc.close();
    await agentProcess.stop();
  }
}

// ---------------------------------------------------------------------------------------------------------------- 3

/** Starts a child, waits until `ready` matches its output, lets it settle, reads VmRSS, stops it. MB. */
async function rssOf(label: string, args: string[], ready: RegExp, readyTimeoutMs = 180_000): Promise<number> {
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  try {
    let seen = "";
    const started = performance.now();
    await new Promise<void>((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`${label} was not ready after ${readyTimeoutMs} ms: ${seen.slice(-500)}`)), readyTimeoutMs);
      const watch = (d: Buffer) => {
        seen = (seen + d.toString()).slice(-20_000);
        if (ready.test(seen)) {
          clearTimeout(timer);
          ok();
        }
      };
      child.stdout.on("data", watch);
      child.stderr.on("data", watch);
      child.once("exit", (code) => fail(new Error(`${label} exited with ${code}: ${seen.slice(-500)}`)));
    });
    const startup = performance.now() - started;
    await sleep(SETTLE_MS);
    const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
    const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]);
    const mb = kb / 1024;
    say(`  ${label}: ${mb.toFixed(1)} MB RSS (ready in ${(startup / 1000).toFixed(1)} s)`);
    return mb;
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      await exited;
      clearTimeout(killer);
    }
  }
}

async function memory(url: string): Promise<Result[]> {
  say(`Memory: VmRSS ${SETTLE_MS / 1000} s after each process is ready, no forced GC in any of them`);
  const bare = await rssOf("bare nats.js process (baseline)", [IDLE_AGENT, "--nats", url, "--count", "0"], /^ready$/m);
  const cli = await rssOf("fleet run agent scout (real CLI)", [CLI, "run", "agent", "scout", "--config", LOCAL_FLEET, "--nats", url], /"msg":"agent started"/);
  const one = await rssOf("idle-agent --count 1", [IDLE_AGENT, "--nats", url, "--count", "1", "--prefix", "benchmem1"], /^ready$/m);
  const many = await rssOf("idle-agent --count 1000", [IDLE_AGENT, "--nats", url, "--count", "1000", "--prefix", "benchmem1k"], /^ready$/m);
  say(`  per extra actor: ${(((many - one) / 999) * 1024).toFixed(1)} kB`);
  return [result("rss_idle_agent_cli", cli, bare, "MB", 1), result("rss_1000_actors", many, bare, "MB", 1)];
}

// -----------------------------------------------------------------------------------------------------------------

/** `--only throughput|latency|memory` runs one section (for profiling); its own figure is then the last line. */
async function main(): Promise<void> {
  const { values } = parseArgs({ options: { only: { type: "string" } } });
  const only = values.only;
  if (only !== undefined && !["throughput", "latency", "memory"].includes(only)) throw new TypeError(`--only ${only}: expected throughput, latency or memory`);
  const runs = (section: string) => only === undefined || only === section;
  const server = await NatsServer.start();
  say(`nats-server at ${server.url}; node ${process.version}`);
  try {
    const headline = runs("throughput") ? [await throughput(server.url)] : [];
    const others = [...(runs("latency") ? await latency(server.url) : []), ...(runs("memory") ? await memory(server.url) : [])];
    for (const r of [...others, ...headline]) say(JSON.stringify(r));
  } finally {
    await server.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
