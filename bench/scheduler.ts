import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { parseArgs } from "node:util";
import type { ActorHost } from "../actors/index.js";
// only node built-ins (and erased types) at the top: the `--baseline` child loads nothing of ours, so its RSS is a bare node process

/**
 * Scheduler benchmark: one process hosting 10,000 agent actors on 1-minute cycles, against a bare setTimeout loop.
 *   fleet: a real nats-server and a real AgentRuntime hosting N synthetic agents (cycleMinutes 1, never quiet), each
 *     ActorHost with its own 1 s check loop, heartbeat and task consumer, as in production. The behaviour's plan returns
 *     `nothing` (an empty cycle, no model call) and records when it was called; the chart calls plan synchronously
 *     inside the CYCLE_TICK, so that is the moment of the tick.
 *   baseline (`--baseline`, its own child process, running over the same minutes): N setTimeout chains on the same
 *     staggered schedule, each re-arming for +60 s from when it fired.
 * Lateness of a tick = when it ran − when it was due. As in the chart (`nextCycleAt = tick's now + cycleMs`), the next
 * due time is the tick's own time + 60 s, so lateness does not accumulate into the figure. The last line is the headline.
 */

const CYCLE_MS = 60_000;
/** ticks due before the end of the window may run a little after it; wait for them */
const GRACE_MS = 3_000;
const MB = 1024 * 1024;
/** the histogram records each sampling interval whole, so the delay is what exceeds this */
const LOOP_RESOLUTION_MS = 10;

interface Result {
  bench: "scheduler";
  metric: string;
  value: number;
  baseline: number;
  ratio: number;
  unit: string;
}

/** What one side measured over its window. */
interface Summary {
  ticks: number;
  p50: number;
  p99: number;
  max: number;
  rssMb: number;
  /** event-loop delay over the window (monitorEventLoopDelay), ms */
  loopP50: number;
  loopP99: number;
  /** CPU time of the process over the window, as a share of one core */
  cpuShare: number;
}

const say = (line: string) => process.stdout.write(line + "\n");
const round = (x: number, digits: number) => Number(x.toFixed(digits));
const result = (metric: string, value: number, baseline: number, unit: string, digits = 1): Result => ({
  bench: "scheduler",
  metric,
  value: round(value, digits),
  baseline: round(baseline, digits),
  ratio: round(value / baseline, 3),
  unit,
});

const agentId = (i: number) => `a${String(i).padStart(5, "0")}`;

/**
 * A copy of `staggerOf` in actors/actor-host.ts (FNV-1a of the id, modulo the cycle), so the baseline child loads none of
 * our modules. The fleet side checks that every host's first due time matches it, so the copy cannot drift unnoticed.
 */
function staggerOf(id: string, cycleMs: number): number {
  let hash = 2166136261;
  for (let i = 0; i < id.length; i++) hash = Math.imul(hash ^ id.charCodeAt(i), 16777619) >>> 0;
  return hash % Math.max(1, Math.floor(cycleMs));
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

function rssMbOf(pid: number | "self"): number {
  const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);
  return kb / 1024;
}

/** utime + stime of a process, in ms (clock ticks of 10 ms on Linux) */
function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Starts the window's instruments; `finish` sorts the lateness samples and reads RSS at the end of the window. */
function startWindow() {
  const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  loop.enable();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  return (lateness: number[]): Summary => {
    loop.disable();
    const cpu = process.cpuUsage(cpu0);
    const sorted = [...lateness].sort((a, b) => a - b);
    return {
      ticks: sorted.length,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      max: sorted.at(-1) ?? NaN,
      rssMb: rssMbOf("self"),
      loopP50: Math.max(0, loop.percentile(50) / 1e6 - LOOP_RESOLUTION_MS),
      loopP99: Math.max(0, loop.percentile(99) / 1e6 - LOOP_RESOLUTION_MS),
      cpuShare: (cpu.user + cpu.system) / 1000 / (performance.now() - t0),
    };
  };
}

// ---------------------------------------------------------------------------------------------------------- baseline

/** N setTimeout chains, first due at start + stagger, then +60 s from each firing. Prints its Summary as JSON. */
async function baseline(count: number, windowMs: number): Promise<void> {
  const finish = startWindow();
  const t0 = Date.now();
  const end = t0 + windowMs;
  const lateness: number[] = [];
  const arm = (due: number) => {
    setTimeout(() => {
      const now = Date.now();
      lateness.push(now - due);
      if (now + CYCLE_MS < end) arm(now + CYCLE_MS);
    }, due - Date.now());
  };
  for (let i = 0; i < count; i++) arm(t0 + staggerOf(agentId(i), CYCLE_MS));
  await sleep(windowMs + GRACE_MS);
  say(JSON.stringify(finish(lateness)));
}

function startBaselineChild(count: number, windowMs: number): Promise<Summary> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), "--baseline", "--count", String(count), "--window-ms", String(windowMs)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((ok, fail) => {
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.once("exit", (code) => {
      const last = out.trim().split("\n").at(-1);
      if (code !== 0 || !last) return fail(new Error(`baseline child exited with ${code}: ${out.slice(-500)}`));
      ok(JSON.parse(last) as Summary);
    });
  });
}

// ------------------------------------------------------------------------------------------------------------- fleet

async function fleet(count: number, windowMs: number, baselineAlone: boolean): Promise<Result[]> {
  const { AgentRuntime } = await import("../actors/index.js");
  const { NatsServer } = await import("../test/helpers/nats-server.js");
  const { pino } = await import("pino");

  const server = await NatsServer.start();
  say(`nats-server at ${server.url}; node ${process.version}; ${count} agents on ${CYCLE_MS / 1000} s cycles, window ${windowMs / 1000} s`);
  const hosts = new Map<string, ActorHost>();
  const createdAt = new Map<string, number>();
  /** per agent, when its next tick is due: the staggered first cycle, then the last tick's time + cycle */
  const due = new Map<string, number>();
  const lateness: number[] = [];
  /** agents that ticked before every host had started: their due time is not in the chart any more */
  const tickedEarly = new Set<string>();
  let end = Infinity;
  /** a tick is the plan call: the chart invokes plan synchronously inside CYCLE_TICK */
  const onCycle = (id: string) => {
    const now = Date.now();
    const host = hosts.get(id);
    if (!host) {
      tickedEarly.add(id);
      return;
    }
    // bench-only peek at the host's private actor (as messaging.ts does): the chart has just set nextCycleAt = now + cycle
    const next = host["actor"].getSnapshot().context.nextCycleAt;
    const was = due.get(id);
    if (was !== undefined && was < end) lateness.push(now - was);
    due.set(id, next);
  };

  const agents = Array.from({ length: count }, (_, i) => ({
    id: agentId(i),
    name: `Agent ${agentId(i)}`,
    role: "synthetic agent for the scheduler benchmark",
    defaultTier: "nano",
    cycleMinutes: CYCLE_MS / 60_000,
    skills: [{ id: "research", name: "Research", description: "Looks a question up.", tags: ["research"] }],
  }));
  const nats = server["proc"]?.pid;
  const startedAt = Date.now();
  const runtime = await AgentRuntime.start(
    {
      servers: server.url,
      prefix: "benchsched",
      codec: "msgpack",
      maxPayloadBytes: MB,
      tasks: { ackWaitSeconds: 30, maxDeliver: 5, backoffSeconds: [30, 60, 300], workingAckSeconds: 10 },
      // a benchmark must not pause for quiet hours (start = end: never quiet)
      quietHours: { start: "00:00", end: "00:00", timeZone: "UTC" },
      runId: `bench-${process.pid}`,
      processName: "bench-scheduler",
    },
    agents,
    (agent) => {
      // called just before that agent's host starts; its first cycle is due at (start + stagger)
      createdAt.set(agent.id, Date.now());
      return {
        plan: async (input) => {
          if (input.trigger === "cycle") onCycle(input.agentId);
          return { kind: "nothing" };
        },
        act: async () => ({ ok: false, reason: "the scheduler benchmark does no work" }),
      };
    },
    { log: pino({ level: "silent" }) },
  );
  const ready = Date.now();
  say(`  ${count} hosts started in ${((ready - startedAt) / 1000).toFixed(1)} s (sequential AgentRuntime.start; ${tickedEarly.size} agents ticked during startup, not counted)`);
  say(`  RSS when ready: ${rssMbOf("self").toFixed(1)} MB`);

  // the window starts now; every host's next due time is in its chart
  let unchecked = 0;
  const ids = agents.map((a) => a.id);
  for (const [i, host] of runtime.hosts.entries()) {
    const snap = host["actor"].getSnapshot();
    if (snap.value !== "idle") throw new Error(`${host.agentId} is ${String(snap.value)}, not idle, at the start of the window`);
    hosts.set(host.agentId, host);
    due.set(host.agentId, snap.context.nextCycleAt);
    // not ticked yet: its due time is still (its start + stagger), and that start lies between its factory call and the next one
    const from = createdAt.get(host.agentId) ?? NaN;
    const to = createdAt.get(ids[i + 1] ?? "") ?? ready;
    const start = snap.context.nextCycleAt - staggerOf(host.agentId, CYCLE_MS);
    if (!tickedEarly.has(host.agentId) && !(start >= from && start <= to)) unchecked++;
  }
  if (unchecked > 0) throw new Error(`${unchecked} hosts' first cycle does not match staggerOf: the bench's copy has drifted`);

  end = Date.now() + windowMs;
  const natsCpu0 = nats ? cpuMsOf(nats) : NaN;
  const finish = startWindow();
  const baselineRun = baselineAlone ? undefined : startBaselineChild(count, windowMs);
  say(`  measuring for ${windowMs / 1000} s${baselineAlone ? "" : "; the baseline child runs over the same window"}`);
  await sleep(windowMs + GRACE_MS);
  const natsCpu = nats ? (cpuMsOf(nats) - natsCpu0) / (windowMs + GRACE_MS) : NaN;
  const mine = finish(lateness);
  say(`  fleet: ${mine.ticks} ticks, lateness p50 ${mine.p50} ms, p99 ${mine.p99} ms, max ${mine.max} ms; RSS ${mine.rssMb.toFixed(1)} MB`);
  say(`    event-loop delay p50 ${mine.loopP50.toFixed(1)} ms, p99 ${mine.loopP99.toFixed(1)} ms; CPU ${(mine.cpuShare * 100).toFixed(0)} % of a core (nats-server ${(natsCpu * 100).toFixed(0)} %)`);
  const stopping = Date.now();
  await runtime.stop();
  await server.stop();
  say(`  stopped in ${((Date.now() - stopping) / 1000).toFixed(1)} s`);

  if (baselineAlone) say(`  baseline: running alone for ${windowMs / 1000} s now that the fleet has stopped`);
  const base = await (baselineRun ?? startBaselineChild(count, windowMs));
  say(`  baseline (setTimeout chains, own process${baselineAlone ? ", alone" : ", same window"}): ${base.ticks} ticks, lateness p50 ${base.p50} ms, p99 ${base.p99} ms, max ${base.max} ms; RSS ${base.rssMb.toFixed(1)} MB`);
  say(`    event-loop delay p50 ${base.loopP50.toFixed(1)} ms, p99 ${base.loopP99.toFixed(1)} ms; CPU ${(base.cpuShare * 100).toFixed(1)} % of a core`);
  // a zero baseline (all ticks on time to the ms) would make the ratio infinite; 1 ms is Date.now()'s resolution
  const floor = (ms: number) => Math.max(ms, 1);
  return [
    result("cycle_tick_lateness_p50", mine.p50, floor(base.p50), "ms", 0),
    result(`rss_${count}_actors`, mine.rssMb, base.rssMb, "MB", 1),
    result("cycle_tick_lateness_p99", mine.p99, floor(base.p99), "ms", 0),
  ];
}

// -------------------------------------------------------------------------------------------------------------------

/** `--minutes N` sets the window (default 3: three cycles per agent); `--baseline-alone` runs the baseline after the fleet. */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      baseline: { type: "boolean", default: false },
      "baseline-alone": { type: "boolean", default: false },
      minutes: { type: "string", default: "3" },
      count: { type: "string", default: "10000" },
      "window-ms": { type: "string" },
    },
  });
  const count = Number(values.count);
  if (!Number.isInteger(count) || count < 1) throw new TypeError(`--count must be a positive whole number, not ${values.count}`);
  const windowMs = values["window-ms"] !== undefined ? Number(values["window-ms"]) : Number(values.minutes) * 60_000;
  if (!(windowMs > 0)) throw new TypeError(`--minutes must be positive, not ${values.minutes}`);
  if (values.baseline) return baseline(count, windowMs);
  const results = await fleet(count, windowMs, values["baseline-alone"] ?? false);
  for (const r of results) say(JSON.stringify(r));
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
