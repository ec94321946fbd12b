import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import { pino } from "pino";
import { AgentRuntime, type HostedAgent, type RuntimeSettings } from "../actors/index.js";
import { offlineBehaviour } from "../behaviours/index.js";
import { connectNats, decode, ensureFleetResources, FleetNames, requestOperation, TaskEvent } from "../protocol/index.js";
import { NatsCluster } from "../harness/index.js";
import { ascending, figure, percentile, say, type Result } from "./report.js";

/**
 * bench/cluster: task throughput on a three-node JetStream cluster with the fleet's streams and buckets at R3, against
 * the same fleet at R1 on the same cluster in the same run. Each task is a SendMessage (Task created in KV, assignment
 * published to TASKS), taken by an agent from its durable consumer, worked (offline behaviour: no model) and completed
 * (KV updates, ack); a task counts when its final status event arrives. The agents run in one AgentRuntime connected
 * to node 2 and 3, the client on node 1, so every write crosses a route as on separate hosts.
 *
 *   node dist/bench/cluster.js [--count 2000] [--window 64] [--agents 4]
 *
 * Two rounds in alternating order; the figures are the means.
 */

const { values } = parseArgs({ options: { count: { type: "string" }, window: { type: "string" }, agents: { type: "string" } } });
const COUNT = Number(values.count ?? 2000);
const WINDOW = Number(values.window ?? 64);
const AGENTS = Array.from({ length: Number(values.agents ?? 4) }, (_, k) => `worker${k}`);

function hosted(id: string): HostedAgent {
  return { id, name: id, role: "benchmark worker", defaultTier: "capable", cycleMinutes: 600, skills: [{ id: "work", name: "Work", description: "Works.", tags: ["work"] }] };
}

function settings(servers: string, prefix: string, replicas: number): RuntimeSettings {
  return {
    servers,
    prefix,
    codec: "msgpack",
    maxPayloadBytes: 1024 * 1024,
    replicas,
    tasks: { ackWaitSeconds: 30, maxDeliver: 5, backoffSeconds: [30, 60, 300], workingAckSeconds: 10 },
    quietHours: { start: "00:00", end: "00:00", timeZone: "UTC" },
    runId: `bench-${process.pid}`,
    processName: `bench-cluster-${prefix}`,
  };
}

interface Run {
  perSecond: number;
  p50: number;
  p99: number;
  completed: number;
}

async function tasksThrough(cluster: NatsCluster, replicas: number, count: number): Promise<Run> {
  const prefix = `bc${replicas}${randomUUID().slice(0, 4)}`;
  const names = new FleetNames(prefix);
  const [n1, n2, n3] = cluster.urls as [string, string, string];
  const nc = await connectNats({ servers: n1, name: "bench-cluster-client", longLived: false });
  await ensureFleetResources(nc, names, { replicas });
  const runtime = await AgentRuntime.start(settings(`${n2},${n3}`, prefix, replicas), AGENTS.map(hosted), (a) => offlineBehaviour(a), { log: pino({ level: "silent" }) });
  try {
    const done = new Set<string>();
    const sentAt = new Map<string, number>();
    const latencies: number[] = [];
    let wake: (() => void) | undefined;
    const sub = nc.subscribe(`${prefix}.agent.*.events`, {
      callback: (_err, msg) => {
        const d = decode(TaskEvent, msg.data);
        if (!d.ok || d.value.kind !== "status-update" || !d.value.final || done.has(d.value.taskId)) return;
        done.add(d.value.taskId);
        const at = sentAt.get(d.value.taskId);
        if (at !== undefined) latencies.push(performance.now() - at);
        wake?.();
      },
    });
    await nc.flush();
    const started = performance.now();
    let inFlight = 0;
    for (let k = 0; k < count; k++) {
      while (inFlight - done.size >= WINDOW) await new Promise<void>((r) => ((wake = r), setTimeout(r, 50)));
      inFlight++;
      const at = performance.now();
      void requestOperation(nc, names, AGENTS[k % AGENTS.length]!, "SendMessage", { message: { messageId: randomUUID(), role: "ROLE_USER", parts: [{ text: `task ${k}` }] } }, { timeoutMs: 30_000 }).then((task) => {
        if (!done.has(task.id)) sentAt.set(task.id, at);
      });
    }
    const deadline = Date.now() + 300_000;
    while (done.size < count && Date.now() < deadline) await new Promise<void>((r) => ((wake = r), setTimeout(r, 200)));
    const seconds = (performance.now() - started) / 1000;
    sub.unsubscribe();
    const sorted = ascending(latencies);
    return { perSecond: done.size / seconds, p50: percentile(sorted, 50), p99: percentile(sorted, 99), completed: done.size };
  } finally {
    await runtime.stop();
    await nc.close();
  }
}

async function main(): Promise<void> {
  const cluster = await NatsCluster.start();
  try {
    say(`bench/cluster: ${COUNT} tasks (offline behaviour), at most ${WINDOW} in flight, ${AGENTS.length} agents on nodes 2-3, client on node 1; three-node cluster ${cluster.urls.join(" ")}`);
    await tasksThrough(cluster, 1, Math.min(200, COUNT)); // warm-up: JIT, connections
    // alternating order (R1 R3, then R3 R1) so neither setting always runs on a warmer or quieter machine
    const runs: Record<1 | 3, Run[]> = { 1: [], 3: [] };
    for (const order of [[1, 3], [3, 1]] as const) {
      for (const replicas of order) {
        const run = await tasksThrough(cluster, replicas, COUNT);
        runs[replicas].push(run);
        say(`  R${replicas}: ${run.perSecond.toFixed(0)} tasks/s   send→completed p50 ${run.p50.toFixed(1)} ms p99 ${run.p99.toFixed(1)} ms   completed ${run.completed}/${COUNT}`);
      }
    }
    const mean = (xs: Run[], key: keyof Run) => xs.reduce((n, r) => n + r[key], 0) / xs.length;
    const r1 = { perSecond: mean(runs[1], "perSecond"), p50: mean(runs[1], "p50"), p99: mean(runs[1], "p99"), completed: Math.min(...runs[1].map((r) => r.completed)) };
    const r3 = { perSecond: mean(runs[3], "perSecond"), p50: mean(runs[3], "p50"), p99: mean(runs[3], "p99"), completed: Math.min(...runs[3].map((r) => r.completed)) };
    say(`  mean of two rounds: R1 ${r1.perSecond.toFixed(0)} tasks/s, R3 ${r3.perSecond.toFixed(0)} tasks/s`);
    const results: Result[] = [
      figure("cluster", "task p50 latency R3 vs R1", r3.p50, r1.p50, "ms", 1),
      figure("cluster", "task p99 latency R3 vs R1", r3.p99, r1.p99, "ms", 1),
      figure("cluster", "tasks completed R3 (fewest of the rounds)", r3.completed, COUNT, "count", 0),
      figure("cluster", "task throughput R3 vs R1", r3.perSecond, r1.perSecond, "tasks/s", 0),
    ];
    for (const r of results) say(JSON.stringify(r));
  } finally {
    await cluster.stop();
  }
}

await main();
