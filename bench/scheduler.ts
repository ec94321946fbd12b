import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { ActorHost, Plan, PlanInput } from "../actors/index.js";
import { figure, percentile, say, type Result } from "./report.js";
// only node built-ins (and erased types) at the top: the `--baseline` child loads nothing of ours, so its RSS is a bare
// node process; each mode imports what it needs

/**
 * Scheduler benchmark: one process hosting N (10,000) agents on 1-minute cycles, against a bare setTimeout loop.
 *   `--mode hosts` (default; Option A): a real nats-server and a real AgentRuntime hosting N synthetic agents, each
 *     ActorHost with its heartbeat, task consumer and subscriptions, its cycles on the runtime's one CycleScheduler, as
 *     in production.
 *   `--mode charts` (Option B): N agent charts in this process without NATS, each with what an ActorHost does: its
 *     AgentDiscipline, and a CycleScheduler entry at `nextCycleAt` (re-armed on reaching idle) whose check sends
 *     CYCLE_TICK. The scheduling cost of the design without the I/O.
 *   baseline (`--baseline`, its own child process, over the same window): N setTimeout chains on the same staggered
 *     schedule, each re-arming for +60 s from when it fired.
 * Agents never sleep (quiet hours start = end) and their plan returns `nothing`: an empty cycle, no model call. The chart
 * calls plan synchronously inside CYCLE_TICK, so the plan call is the tick. Lateness = when the tick ran − when it was
 * due; as in the chart (`nextCycleAt = tick's now + cycleMs`), the next due time is the tick's own time + 60 s. The
 * baseline re-arms the same way. The last line is the headline.
 */

const CYCLE_MS = 60_000;
/** ticks due before the end of the window may run a little after it; wait for them */
const GRACE_MS = 3_000;
const MB = 1024 * 1024;
/** the histogram records each sampling interval whole, so the delay is what exceeds this */
const LOOP_RESOLUTION_MS = 10;
const NEVER_QUIET = { start: "00:00", end: "00:00", timeZone: "UTC" };


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
  /** garbage-collection pauses over the window: their total and the longest, ms */
  gcMs: number;
  gcMaxMs: number;
}

/** A running fleet side: when each tick was due, and how to stop it. */
interface Side {
  ticks: Ticks;
  /** information for the report, read at the end of the window */
  info: () => string;
  stop: () => Promise<void>;
}

const result = (metric: string, value: number, baseline: number, unit: string, digits: number): Result => figure("scheduler", metric, value, baseline, unit, digits);
const agentId = (i: number) => `a${String(i).padStart(5, "0")}`;

/**
 * A copy of `staggerOf` in actors/stagger.ts (FNV-1a of the id, modulo the cycle), so the baseline child loads none of
 * our modules. `--mode hosts` checks every host's first due time against it, so the copy cannot drift unnoticed.
 */
function staggerOf(id: string, cycleMs: number): number {
  let hash = 2166136261;
  for (let i = 0; i < id.length; i++) hash = Math.imul(hash ^ id.charCodeAt(i), 16777619) >>> 0;
  return hash % Math.max(1, Math.floor(cycleMs));
}


function rssMbOf(pid: number | "self"): number {
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]) / 1024;
}

/** utime + stime of a process in ms (clock ticks of 10 ms) */
function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * Per agent, when its next tick is due; a tick records its lateness if it was due inside the window. Ticks whose due
 * time is the staggered first cycle are kept apart from later ones (due = previous tick + 60 s) for the report.
 */
class Ticks {
  readonly lateness: number[] = [];
  readonly first: number[] = [];
  readonly later: number[] = [];
  private readonly due = new Map<string, { at: number; first: boolean }>();
  end = Infinity;
  expect(id: string, at: number, first: boolean): void {
    this.due.set(id, { at, first });
  }
  /** `next` is the chart's new nextCycleAt (the tick's now + cycle) */
  tick(id: string, now: number, next: number): void {
    const was = this.due.get(id);
    if (was !== undefined && was.at < this.end) {
      this.lateness.push(now - was.at);
      (was.first ? this.first : this.later).push(now - was.at);
    }
    this.due.set(id, { at: next, first: false });
  }
  /** p50/p99 of first and later ticks, and how many later ticks missed a whole check (came a second or more late) */
  split(): string {
    const p = (xs: number[]) => {
      if (xs.length === 0) return "none";
      const sorted = [...xs].sort((a, b) => a - b);
      return `${xs.length} ticks, p50 ${percentile(sorted, 50)} ms, p99 ${percentile(sorted, 99)} ms`;
    };
    const slipped = this.later.filter((ms) => ms >= 1_000).length;
    return `first cycles: ${p(this.first)}; later cycles: ${p(this.later)}, ${slipped} of them ≥ 1 s late`;
  }
}

/** Starts the window's instruments; `finish` summarises the lateness samples and reads RSS at the end of the window. */
function startWindow(): (lateness: number[]) => Summary {
  const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  loop.enable();
  let gcMs = 0;
  let gcMaxMs = 0;
  const gc = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gcMs += e.duration;
      gcMaxMs = Math.max(gcMaxMs, e.duration);
    }
  });
  gc.observe({ entryTypes: ["gc"] });
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  return (lateness) => {
    loop.disable();
    gc.disconnect();
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
      gcMs,
      gcMaxMs,
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
      // the same rule as the fleet's: ticks due inside the window count
      if (due < end) lateness.push(now - due);
      if (now + CYCLE_MS < end) arm(now + CYCLE_MS);
    }, due - Date.now());
  };
  for (let i = 0; i < count; i++) arm(t0 + staggerOf(agentId(i), CYCLE_MS));
  await sleep(windowMs + GRACE_MS);
  say(JSON.stringify(finish(lateness)));
}

function runBaselineChild(count: number, windowMs: number): Promise<Summary> {
  const args = [fileURLToPath(import.meta.url), "--baseline", "--count", String(count), "--window-ms", String(windowMs)];
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
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

// ------------------------------------------------------------------------------------------------ Option B: charts

/** N agent charts with the host's per-second loop, no NATS: the scheduling cost of the design without I/O noise. */
async function charts(count: number): Promise<Side> {
  const { AgentDiscipline, CycleScheduler, QuietHoursRunner, agentMachine } = await import("../actors/index.js");
  const { createActor, fromPromise } = await import("xstate");
  const { pino } = await import("pino");
  const log = pino({ level: "silent" });
  const ticks = new Ticks();
  /** what the host would write to KV `agents` (putRecord): on every breaker notification and on reaching idle/acting */
  let recordWrites = 0;
  const scheduler = new CycleScheduler({ log });
  // one running quiet-hours chart for the process, as AgentRuntime has
  const quietHours = new QuietHoursRunner({ window: NEVER_QUIET, clock: { now: () => Date.now() }, scheduler, log }).start();
  const stops: (() => void)[] = [];
  const t0 = Date.now();
  for (let i = 0; i < count; i++) {
    const id = agentId(i);
    const discipline = new AgentDiscipline({ quietHours, now: () => Date.now(), log, restored: undefined, onChange: () => recordWrites++ });
    // one provided machine per agent, as ActorHost.createAgentActor does: most of each agent's memory (see README)
    const machine = agentMachine.provide({
      actors: {
        plan: fromPromise<Plan, PlanInput>(async ({ input }) => {
          if (input.trigger === "cycle") ticks.tick(id, Date.now(), actor.getSnapshot().context.nextCycleAt);
          return { kind: "nothing" };
        }),
      },
    });
    // the input ActorHost.createAgentActor gives a fresh chart
    const now = Date.now();
    const firstCycleAt = now + staggerOf(id, CYCLE_MS);
    const actor = createActor(machine, { input: { agentId: id, cycleMs: CYCLE_MS, now, firstCycleAt } });
    // ActorHost's check, reduced to a never-quiet fleet with a closed breaker
    const check = () => {
      const now = Date.now();
      const snap = actor.getSnapshot();
      if (snap.value !== "idle") return;
      if (now < snap.context.nextCycleAt) return scheduler.schedule(id, snap.context.nextCycleAt, check);
      if (discipline.cycleAllowedAt(now) === now) actor.send({ type: "CYCLE_TICK", now });
    };
    let last = "";
    actor.subscribe((s) => {
      const value = String(s.value);
      if (value !== last && (value === "idle" || value === "acting")) recordWrites++;
      if (value === "idle" && last !== "idle") scheduler.schedule(id, s.context.nextCycleAt, check);
      last = value;
    });
    actor.start();
    ticks.expect(id, firstCycleAt, true);
    check();
    stops.push(() => {
      actor.stop();
      discipline.stop();
    });
  }
  say(`  ${count} charts created in ${((Date.now() - t0) / 1000).toFixed(1)} s; RSS ${rssMbOf("self").toFixed(1)} MB`);
  const writes0 = recordWrites;
  const since = Date.now();
  return {
    ticks,
    info: () => `record writes the ActorHost would send to KV: ${Math.round(((recordWrites - writes0) * 1000) / (Date.now() - since))}/s`,
    stop: async () => {
      quietHours.stop();
      scheduler.stop();
      for (const stop of stops) stop();
    },
  };
}

// ------------------------------------------------------------------------------------------------- Option A: hosts

/** A real AgentRuntime over a real nats-server. Gives up (and says how far it got) after `startupLimitMs`. */
async function hosts(count: number, startupLimitMs: number): Promise<Side> {
  const { AgentRuntime } = await import("../actors/index.js");
  const { NatsServer } = await import("../harness/index.js");
  const { pino } = await import("pino");
  const server = await NatsServer.start();
  say(`  nats-server at ${server.url}`);
  const ticks = new Ticks();
  const byId = new Map<string, ActorHost>();
  /** when each agent's factory was called: just before its host starts, which fixes its first due time */
  const createdAt = new Map<string, number>();
  const tickedEarly = new Set<string>();
  const agents = Array.from({ length: count }, (_, i) => ({
    id: agentId(i),
    name: `Agent ${agentId(i)}`,
    role: "synthetic agent for the scheduler benchmark",
    defaultTier: "nano",
    cycleMinutes: CYCLE_MS / 60_000,
    skills: [{ id: "research", name: "Research", description: "Looks a question up.", tags: ["research"] }],
  }));
  const t0 = Date.now();
  let progress = t0;
  const starting = AgentRuntime.start(
    {
      servers: server.url,
      prefix: "benchsched",
      codec: "msgpack",
      maxPayloadBytes: MB,
      tasks: { ackWaitSeconds: 30, maxDeliver: 5, backoffSeconds: [30, 60, 300], workingAckSeconds: 10 },
      // a benchmark must not pause for quiet hours (start = end: never quiet)
      quietHours: NEVER_QUIET,
      runId: `bench-${process.pid}`,
      processName: "bench-scheduler",
    },
    agents,
    (agent) => {
      createdAt.set(agent.id, Date.now());
      if (createdAt.size % 1_000 === 0 && Date.now() - progress > 5_000) {
        progress = Date.now();
        say(`    ${createdAt.size} hosts starting after ${((progress - t0) / 1000).toFixed(0)} s`);
      }
      return {
        plan: async (input) => {
          const host = byId.get(input.agentId);
          // bench-only peek at the host's private actor (as messaging.ts does): the chart has just set nextCycleAt
          if (!host) tickedEarly.add(input.agentId);
          else if (input.trigger === "cycle") ticks.tick(input.agentId, Date.now(), host["actor"].getSnapshot().context.nextCycleAt);
          return { kind: "nothing" };
        },
        act: async () => ({ ok: false, reason: "the scheduler benchmark does no work" }),
      };
    },
    { log: pino({ level: "silent" }) },
  );
  starting.catch(() => undefined);
  const limit = sleep(startupLimitMs).then(() => undefined);
  const runtime = await Promise.race([starting, limit]);
  if (!runtime) {
    await server.stop();
    throw new Error(`only ${createdAt.size} of ${count} hosts had started after ${startupLimitMs / 1000} s; try --mode charts or a smaller --count`);
  }
  const ready = Date.now();
  say(`  ${count} hosts started in ${((ready - t0) / 1000).toFixed(1)} s (AgentRuntime.start, one host after another); RSS ${rssMbOf("self").toFixed(1)} MB`);
  say(`    ${tickedEarly.size} agents ticked during startup: those ticks are not counted`);

  const ids = agents.map((a) => a.id);
  let mismatched = 0;
  for (const [i, host] of runtime.hosts.entries()) {
    const snap = host["actor"].getSnapshot();
    if (snap.value !== "idle") throw new Error(`${host.agentId} is ${String(snap.value)}, not idle, at the start of the window`);
    byId.set(host.agentId, host);
    ticks.expect(host.agentId, snap.context.nextCycleAt, !tickedEarly.has(host.agentId));
    // not ticked yet: due at (its start + stagger), and its start lies between its factory call and the next agent's
    const start = snap.context.nextCycleAt - staggerOf(host.agentId, CYCLE_MS);
    const from = createdAt.get(host.agentId) ?? NaN;
    const to = createdAt.get(ids[i + 1] ?? "") ?? ready;
    if (!tickedEarly.has(host.agentId) && !(start >= from && start <= to)) mismatched++;
  }
  if (mismatched > 0) throw new Error(`${mismatched} hosts' first cycle does not match staggerOf: the bench's copy has drifted`);

  const nats = server["proc"]?.pid;
  const natsCpu0 = nats ? cpuMsOf(nats) : NaN;
  const stats0 = runtime.nc.stats();
  const since = Date.now();
  return {
    ticks,
    info: () => {
      const s = (Date.now() - since) / 1000;
      const stats = runtime.nc.stats();
      const natsCpu = nats ? (cpuMsOf(nats) - natsCpu0) / 10 / s : NaN;
      return `NATS messages out ${Math.round((stats.outMsgs - stats0.outMsgs) / s)}/s, in ${Math.round((stats.inMsgs - stats0.inMsgs) / s)}/s; nats-server CPU ${natsCpu.toFixed(0)} % of a core`;
    },
    stop: async () => {
      await runtime.stop();
      await server.stop();
    },
  };
}

// -------------------------------------------------------------------------------------------------------------------

async function run(mode: "charts" | "hosts", count: number, windowMs: number, baselineAlone: boolean, startupLimitMs: number): Promise<Result[]> {
  say(`${count} agents on ${CYCLE_MS / 1000} s cycles, ${mode === "charts" ? "charts in this process, no NATS (Option B)" : "real AgentRuntime over nats-server (Option A)"}; node ${process.version}`);
  const side = mode === "charts" ? await charts(count) : await hosts(count, startupLimitMs);
  side.ticks.end = Date.now() + windowMs;
  const finish = startWindow();
  const concurrent = baselineAlone ? undefined : runBaselineChild(count, windowMs);
  say(`  measuring for ${windowMs / 1000} s${baselineAlone ? "" : "; the baseline child runs over the same window"}`);
  await sleep(windowMs + GRACE_MS);
  const info = side.info();
  const mine = finish(side.ticks.lateness);
  say(`  fleet: ${mine.ticks} ticks, lateness p50 ${mine.p50} ms, p99 ${mine.p99} ms, max ${mine.max} ms; RSS ${mine.rssMb.toFixed(1)} MB`);
  say(`    ${side.ticks.split()}`);
  say(`    event-loop delay p50 ${mine.loopP50.toFixed(1)} ms, p99 ${mine.loopP99.toFixed(1)} ms; GC pauses ${(mine.gcMs / 1000).toFixed(1)} s in all, longest ${mine.gcMaxMs.toFixed(0)} ms`);
  say(`    CPU ${(mine.cpuShare * 100).toFixed(0)} % of a core; ${info}`);
  const stopping = Date.now();
  await side.stop();
  say(`  stopped in ${((Date.now() - stopping) / 1000).toFixed(1)} s`);
  if (baselineAlone) say(`  baseline: running alone for ${windowMs / 1000} s now that the fleet has stopped`);
  const base = await (concurrent ?? runBaselineChild(count, windowMs));
  say(`  baseline (setTimeout chains, own process${baselineAlone ? ", alone" : ", same window"}): ${base.ticks} ticks, lateness p50 ${base.p50} ms, p99 ${base.p99} ms, max ${base.max} ms; RSS ${base.rssMb.toFixed(1)} MB`);
  say(`    event-loop delay p50 ${base.loopP50.toFixed(1)} ms, p99 ${base.loopP99.toFixed(1)} ms; GC pauses longest ${base.gcMaxMs.toFixed(0)} ms; CPU ${(base.cpuShare * 100).toFixed(1)} % of a core`);
  // Date.now() has 1 ms resolution: a baseline of 0 ms is "within the clock's resolution", counted as 1 for the ratio
  const atLeast1 = (ms: number) => Math.max(ms, 1);
  return [
    result("cycle_tick_lateness_p50", mine.p50, atLeast1(base.p50), "ms", 0),
    result(`rss_${count}_actors`, mine.rssMb, base.rssMb, "MB", 1),
    result("cycle_tick_lateness_p99", mine.p99, atLeast1(base.p99), "ms", 0),
  ];
}

/**
 * `--minutes N` sets the window (default 3: three cycles per agent), `--count N` the agents (default 10,000), `--mode
 * charts` the charts without NATS, `--baseline-alone` runs the baseline after the fleet instead of alongside it.
 */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      mode: { type: "string", default: "hosts" },
      count: { type: "string", default: "10000" },
      minutes: { type: "string", default: "3" },
      "baseline-alone": { type: "boolean", default: false },
      "startup-limit-s": { type: "string", default: "300" },
      baseline: { type: "boolean", default: false },
      "window-ms": { type: "string" },
    },
  });
  const count = Number(values.count);
  if (!Number.isInteger(count) || count < 1) throw new TypeError(`--count must be a positive whole number, not ${values.count}`);
  const windowMs = values["window-ms"] !== undefined ? Number(values["window-ms"]) : Number(values.minutes) * 60_000;
  if (!(windowMs > 0)) throw new TypeError(`--minutes must be positive, not ${values.minutes}`);
  if (values.baseline) return baseline(count, windowMs);
  const mode = values.mode;
  if (mode !== "charts" && mode !== "hosts") throw new TypeError(`--mode ${mode}: expected charts or hosts`);
  const startupLimitMs = Number(values["startup-limit-s"]) * 1000;
  for (const r of await run(mode, count, windowMs, values["baseline-alone"] ?? false, startupLimitMs)) say(JSON.stringify(r));
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
