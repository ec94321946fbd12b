import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { jetstream } from "@nats-io/jetstream";
import { NatsServer, routerFleetYaml } from "../harness/index.js";
import { connectNats, decode, encode, ensureFleetResources, FleetNames, Task, type TierName, type UsageRecord } from "../protocol/index.js";
import { readUsage } from "../router/index.js";
import { figure, median, say, type Result } from "./report.js";

/*
 * The dashboard against a big fleet: 10,000 tasks in KV `tasks` and 100,000 USAGE records over 30 days. The real
 * `fleet dashboard` process is started; each page's first render (the first GET after start) and its warm render are
 * timed end to end over HTTP, an update (a new Task, seen on /events and then on /tasks) is timed, and the process's
 * memory read from /proc. Baseline: what the tasks page read per load before (every Task in the bucket, keys then
 * gets, decoded), measured in this process on the same server.
 */

const BENCH = "dashboard";
const TASKS = Number(process.env.BENCH_TASKS ?? 10_000);
const USAGE = Number(process.env.BENCH_USAGE ?? 100_000);
const AGENTS = ["atlas", "closer", "plume", "scout", "mira", "ship", "sentinel"];
const TIERS: TierName[] = ["nano", "workhorse", "capable", "power", "premium"];
const TOKEN = "bench-dashboard-token-0123456789";
const here = dirname(fileURLToPath(import.meta.url));
/** `BENCH_CLI`: another build's CLI (the figures before a change, on the same machine and data) */
const CLI = process.env.BENCH_CLI ?? resolve(here, "..", "cli", "main.js");
const DAY = 86_400_000;

const results: Result[] = [];

async function main(): Promise<void> {
  const server = await NatsServer.start();
  const dir = mkdtempSync(join(tmpdir(), "bench-dashboard-"));
  const nc = await connectNats({ servers: server.url, name: "bench-dashboard" });
  let child: ChildProcess | undefined;
  try {
    const names = new FleetNames("dbench");
    const { kv } = await ensureFleetResources(nc, names);
    const js = jetstream(nc);
    const now = Date.now();

    let t0 = performance.now();
    for (let i = 0; i < TASKS; i += 500) {
      await Promise.all(Array.from({ length: Math.min(500, TASKS - i) }, (_, j) => {
        const n = i + j;
        const agent = AGENTS[n % AGENTS.length]!;
        return kv.tasks.put(names.taskKey(agent, `t-${n}`), encode(taskOf(n, now - (TASKS - n) * 60_000), "msgpack"));
      }));
    }
    say(`seeded ${TASKS} tasks in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    t0 = performance.now();
    for (let i = 0; i < USAGE; i += 1_000) {
      await Promise.all(Array.from({ length: Math.min(1_000, USAGE - i) }, (_, j) => {
        const r = usageOf(i + j, now - 30 * DAY + Math.floor(((i + j) / USAGE) * 30 * DAY));
        return js.publish(names.usage(r.agentId, r.servedTier), encode(r, "msgpack"));
      }));
    }
    say(`seeded ${USAGE} USAGE records in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    // the baseline: the whole tasks bucket, read as each /tasks load read it before (keys, then a get per key)
    const bucketReads: number[] = [];
    for (let round = 0; round < 3; round++) {
      const start = performance.now();
      let n = 0;
      for await (const key of await kv.tasks.keys()) {
        const e = await kv.tasks.get(key);
        if (e && decode(Task, e.value, { codec: "msgpack" }).ok) n++;
      }
      bucketReads.push(performance.now() - start);
      if (n !== TASKS) throw new Error(`read ${n} tasks, expected ${TASKS}`);
    }
    const bucketMs = median(bucketReads);
    say(`baseline: the whole tasks bucket read and decoded: ${bucketMs.toFixed(0)} ms (median of 3)`);
    t0 = performance.now();
    const usageRead = await readUsage(js, names, now - 60 * DAY);
    const usageMs = performance.now() - t0;
    say(`information: the USAGE of 60 days read and decoded (what /costs reads per load): ${usageRead.records.length} records in ${usageMs.toFixed(0)} ms`);

    const config = join(dir, "fleet.yaml");
    writeFileSync(config, routerFleetYaml({ baseUrl: "http://127.0.0.1:9/v1", prefix: "dbench" }) + `memory: { dir: ${JSON.stringify(join(dir, "memory"))} }\n`);
    const started = performance.now();
    child = spawn(process.execPath, [CLI, "dashboard", "--config", config, "--nats", server.url, "--port", "0", "--log-level", "warn"], {
      env: { ...process.env, FLEET_DASHBOARD_SUPERVISED_TOKEN: TOKEN },
      stdio: ["ignore", "pipe", "inherit"],
    });
    const base = await listening(child);
    const startMs = performance.now() - started;
    const pid = child.pid!;
    say(`dashboard process listening at ${base} after ${startMs.toFixed(0)} ms; VmRSS ${rss(pid).toFixed(1)} MB`);

    const pages = ["/tasks", "/", "/costs", "/metrics", "/tasks?page=50", "/tasks?state=WORKING"];
    const first = new Map<string, number>();
    const warm = new Map<string, number>();
    for (const path of pages) {
      const cold = await get(base, path);
      first.set(path, cold.ms);
      const again: number[] = [];
      for (let i = 0; i < 5; i++) again.push((await get(base, path)).ms);
      warm.set(path, median(again));
      say(`${path.padEnd(22)} first render ${cold.ms.toFixed(0).padStart(6)} ms, warm ${median(again).toFixed(0).padStart(6)} ms (median of 5), ${(cold.bytes / 1024).toFixed(0)} KiB`);
    }

    // an update: a new Task appears; the browser hears of it on /events and loads /tasks again
    const events = await sse(base);
    const id = `t-new-${Date.now()}`;
    const putAt = performance.now();
    await kv.tasks.put(names.taskKey("scout", id), encode(taskOf(TASKS + 1, Date.now()), "msgpack"));
    await events.next("tasks");
    const signalMs = performance.now() - putAt;
    let page = await get(base, "/tasks");
    while (!page.body.includes(`t-${TASKS + 1}`)) page = await get(base, "/tasks");
    const updateMs = performance.now() - putAt;
    events.close();
    say(`update: new Task → refresh signal on /events ${signalMs.toFixed(0)} ms → /tasks shows it ${updateMs.toFixed(0)} ms`);

    const rssMb = rss(pid);
    const hwmMb = rss(pid, "VmHWM");
    say(`dashboard process after the loads: VmRSS ${rssMb.toFixed(1)} MB, peak (VmHWM) ${hwmMb.toFixed(1)} MB`);

    results.push(figure(BENCH, "startup_ms", startMs, bucketMs, "ms", 0));
    for (const path of pages.slice(1)) results.push(figure(BENCH, `first_render_ms ${path}`, first.get(path)!, bucketMs, "ms", 0));
    for (const path of pages) results.push(figure(BENCH, `warm_render_ms ${path}`, warm.get(path)!, bucketMs, "ms", 0));
    results.push(figure(BENCH, "update_ms", updateMs, bucketMs, "ms", 0));
    results.push(figure(BENCH, "rss_mb", rssMb, 0, "MB", 1, 0));
    results.push(figure(BENCH, "peak_rss_mb", hwmMb, 0, "MB", 1, 0));
    // the headline: the tasks page's first render against the whole-bucket read it used to make per load
    results.push(figure(BENCH, "first_render_ms /tasks", first.get("/tasks")!, bucketMs, "ms", 0));
  } finally {
    child?.kill("SIGTERM");
    await nc.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  for (const r of results) say(JSON.stringify(r));
}

function taskOf(n: number, at: number): Task {
  const state = n % 20 === 0 ? "TASK_STATE_WORKING" : n % 33 === 0 ? "TASK_STATE_FAILED" : n % 50 === 0 ? "TASK_STATE_SUBMITTED" : "TASK_STATE_COMPLETED";
  const done = state === "TASK_STATE_COMPLETED";
  return {
    id: `t-${n}`,
    contextId: `c-${n}`,
    status: { state, timestamp: new Date(at).toISOString() },
    history: [{ messageId: `m-${n}`, role: "ROLE_USER", parts: [{ text: `Check the competitor pricing pages of site ${n % 5} and report what changed since last week (${n})` }] }],
    ...(done ? { artifacts: [{ artifactId: `a-${n}`, parts: [{ text: "Two competitors changed their prices: the starter plan is now $19 (was $24), the team plan unchanged. ".repeat(2) }] }] } : {}),
    metadata: {
      work: { trigger: ["operator", "cron", "duty", "atlas"][n % 4] },
      estimate: { kind: "skill:research", points: 3, basis: "history", samples: 20 },
      ...(done ? { actual: { tokens: 2_000 + (n % 3_000), points: 2 + (n % 3_000) / 1_000 } } : {}),
    },
  };
}

function usageOf(n: number, at: number): UsageRecord {
  const tier = TIERS[n % TIERS.length]!;
  const inputTokens = 800 + (n % 1_500);
  const outputTokens = 100 + (n % 400);
  return {
    callId: `call-${n}`, agentId: AGENTS[n % AGENTS.length]!, taskId: `t-${n % TASKS}`, kind: "general", requestedTier: tier, servedTier: tier,
    model: `m-${tier}`, deploymentId: tier, inputTokens, outputTokens, cachedTokens: n % 3 === 0 ? 400 : 0,
    costUsd: (inputTokens + outputTokens) * 1e-6, latencyMs: 400 + (n % 900), cacheHit: n % 25 === 0, escalations: n % 40 === 0 ? 1 : 0,
    fallbacks: 0, simulated: false, decisionReason: "rule", ok: n % 100 !== 0, attempt: 0, at, trigger: "operator", title: `task ${n % TASKS}`,
  };
}

function listening(child: ChildProcess): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    let out = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const m = /dashboard: (http:\/\/[^/\s]+)\//.exec(out);
      if (m) resolvePromise(m[1]!);
    });
    child.on("exit", (code) => reject(new Error(`the dashboard exited (${code}) before listening: ${out}`)));
  });
}

function get(base: string, path: string): Promise<{ ms: number; bytes: number; body: string }> {
  const start = performance.now();
  return new Promise((resolvePromise, reject) => {
    const req = request(`${base}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const body = Buffer.concat(chunks).toString();
        if (res.statusCode !== 200) return reject(new Error(`${path}: ${res.statusCode} ${body.slice(0, 200)}`));
        resolvePromise({ ms: performance.now() - start, bytes: body.length, body });
      });
    });
    req.on("error", reject);
    req.end();
  });
}

/** /events as a browser's EventSource reads it: `next(topic)` resolves at the first refresh naming the topic. */
async function sse(base: string): Promise<{ next(topic: string): Promise<void>; close(): void }> {
  const waiters: { topic: string; resolve: () => void }[] = [];
  let buffer = "";
  const req = request(`${base}/events`, { headers: { authorization: `Bearer ${TOKEN}`, accept: "text/event-stream" } });
  await new Promise<void>((resolvePromise, reject) => {
    req.on("response", (res) => {
      res.on("data", (c: Buffer) => {
        buffer += c.toString();
        let end: number;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          for (const w of [...waiters]) if (event.includes(`"${w.topic}"`)) (waiters.splice(waiters.indexOf(w), 1), w.resolve());
        }
      });
      resolvePromise();
    });
    req.on("error", reject);
    req.end();
  });
  return { next: (topic) => new Promise((r) => waiters.push({ topic, resolve: r })), close: () => req.destroy() };
}

function rss(pid: number, field = "VmRSS"): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1]) / 1024;
}

await main();
