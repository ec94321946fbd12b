import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { jetstream } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import OpenAI from "openai";
import { parseFleetConfig, type FleetConfig } from "../config/index.js";
import { encode, ensureFleetResources, FleetError, FleetNames, type ChatMessage, type CompleteRequest, type RouteRequest } from "../protocol/index.js";
import { BudgetLedger, decideRoute, fleetDay, RouterClient, type PolicyInput } from "../router/index.js";
import { NatsServer } from "../test/helpers/nats-server.js";
import { OpenAIServer } from "../test/helpers/openai-server.js";
import { routerFleetYaml } from "../test/helpers/router-fleet.js";

/**
 * Router benchmark: one nats-server and one scripted OpenAI server (a real HTTP server on loopback) started here.
 *   1. The routing decision: `decideRoute` in-process vs a bare loop of the same `includes` tests.
 *   2. `complete` latency through the real router process (`fleet run router`) vs the `openai` SDK calling the same
 *      server directly: p50/p99, the overhead (router − direct) and the ratio (router / direct).
 *   3. Throughput with 1,000 requests in flight, router vs direct.
 * The last line is the headline (the p50 overhead) as JSON.
 */

const here = dirname(fileURLToPath(import.meta.url));
const CLI = join(resolve(here, ".."), "cli", "main.js");

const DECISION_BATCH = 20_000;
const DECISION_WARMUP_BATCHES = 5;
const DECISION_BATCHES = 30;
const LATENCY_WARMUP = 200;
const LATENCY_BLOCKS = 20;
const LATENCY_BLOCK = 100;
const INFO_N = 1_000;
const IN_FLIGHT = 1_000;
const THROUGHPUT_ROUNDS = 3;
const MAX_TOKENS = 64;
const MODEL = "m-capable";
const AGENTS = ["atlas", "scout", "ship"] as const;
const CLK_TCK = 100;

interface Result {
  bench: "router";
  metric: string;
  value: number;
  baseline: number;
  ratio: number;
  unit: string;
}

const say = (line: string) => process.stdout.write(line + "\n");
const round = (x: number, digits: number) => Number(x.toFixed(digits));
const result = (metric: string, value: number, baseline: number, unit: string, digits: number, ratio = value / baseline): Result => ({
  bench: "router",
  metric,
  value: round(value, digits),
  baseline: round(baseline, digits),
  ratio: round(ratio, 3),
  unit,
});

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}
const sorted = (xs: readonly number[]) => [...xs].sort((a, b) => a - b);
const median = (xs: readonly number[]) => percentile(sorted(xs), 50);
const ms = (x: number) => `${x.toFixed(3)} ms`;

const MESSAGES = [
  { role: "system" as const, content: "You are Scout, the fleet's research agent. Answer in two short paragraphs and cite your sources." },
  {
    role: "user" as const,
    content:
      "Please look up the current pricing pages of our three main competitors and summarise any change since last week, " +
      "with links to the sources, the date each page was fetched and whether the change affects our starter plan.",
  },
] satisfies ChatMessage[];

/** Ten rules, in the order a fleet might write them: cheap chores first, expensive judgement last. */
const RULES: ReadonlyArray<{ contains: string[]; tier: string }> = [
  { contains: ["triage", "classify"], tier: "nano" },
  { contains: ["health check", "ping"], tier: "nano" },
  { contains: ["summarise", "summarize"], tier: "capable" },
  { contains: ["translate"], tier: "capable" },
  { contains: ["draft email", "reply to"], tier: "workhorse" },
  { contains: ["research", "compare"], tier: "workhorse" },
  { contains: ["refactor", "code review"], tier: "power" },
  { contains: ["architecture", "design doc"], tier: "power" },
  { contains: ["incident", "postmortem"], tier: "power" },
  { contains: ["contract", "legal"], tier: "premium" },
];
const RULES_YAML = ["  rules:", ...RULES.map((r) => `    - { contains: [${r.contains.map((p) => JSON.stringify(p)).join(", ")}], tier: ${r.tier} }`)].join("\n");

/** Half match a rule (early, middle and late in the list), half fall through to the agent's default. */
const TITLES = [
  "Triage the new support tickets from the weekend",
  "Summarise the competitor pricing pages",
  "Reply to the partner about the API quota",
  "Compare the three hosting offers we received",
  "Code review of the billing service pull request",
  "Write the postmortem for Tuesday's outage",
  "Check the contract renewal terms with Acme",
  "Health check of the staging hosts",
  "Plan next week's content calendar",
  "Update the onboarding checklist for new customers",
  "Find a date for the quarterly planning meeting",
  "Collect the open questions from the last standup",
  "Prepare the monthly metrics dashboard",
  "Rename the old dashboards in the analytics tool",
  "Sort the backlog by customer impact",
  "Write release notes for version 2.4",
];

function benchYaml(baseUrl: string, prefix: string): string {
  // caps far above what the run spends, so no call is refused or downgraded; no cache, no classifier call
  return routerFleetYaml({ baseUrl, prefix, fleetCapUsd: 1_000, scoutCapUsd: 1_000, routing: `  classifier: false\n  cache: { enabled: false }\n${RULES_YAML}` });
}

// ---------------------------------------------------------------------------------------------------------------- 1

async function decision(): Promise<Result> {
  const config: FleetConfig = parseFleetConfig(benchYaml("http://127.0.0.1:9/v1", "benchdecide"), "bench-router.yaml");
  const agent = config.agents.find((a) => a.id === "scout");
  if (!agent) throw new Error("no scout in the bench fleet");
  const input: PolicyInput = { config, agent, budgetState: "normal" };
  const requests: RouteRequest[] = TITLES.map((title) => ({ agentId: "scout", title }));
  const phrases = RULES.map((r) => r.contains.map((p) => p.toLowerCase()));

  // the irreducible work: lower-case the title, test the phrases in order, stop at the first match (-1: default)
  const bare = (title: string): number => {
    const t = title.toLowerCase();
    for (let r = 0; r < phrases.length; r++) for (const p of phrases[r] ?? []) if (t.includes(p)) return r;
    return -1;
  };
  // honesty check: both see the same rules matching the same titles
  let matched = 0;
  for (const request of requests) {
    const d = await decideRoute(request, input);
    const r = bare(request.title);
    if ((d.reason === "rule") !== r >= 0 || (r >= 0 && d.tier !== RULES[r]?.tier)) throw new Error(`decideRoute and the bare loop disagree on "${request.title}"`);
    if (r >= 0) matched++;
  }
  say(`Routing decision: ${RULES.length} rules, ${TITLES.length} titles (${matched} match a rule, ${TITLES.length - matched} fall to the default), budget normal`);

  let sink = 0;
  const policyBatch = async () => {
    const t = performance.now();
    for (let i = 0; i < DECISION_BATCH; i++) sink += (await decideRoute(requests[i % requests.length] as RouteRequest, input)).fallbackChain.length;
    return ((performance.now() - t) * 1_000) / DECISION_BATCH;
  };
  const bareBatch = () => {
    const t = performance.now();
    for (let i = 0; i < DECISION_BATCH; i++) sink += bare(TITLES[i % TITLES.length] as string);
    return ((performance.now() - t) * 1_000) / DECISION_BATCH;
  };
  for (let b = 0; b < DECISION_WARMUP_BATCHES; b++) {
    await policyBatch();
    bareBatch();
  }
  const policy: number[] = [];
  const baseline: number[] = [];
  for (let b = 0; b < DECISION_BATCHES; b++) {
    policy.push(await policyBatch());
    baseline.push(bareBatch());
  }
  say(`  ${DECISION_BATCHES} batches of ${DECISION_BATCH} after ${DECISION_WARMUP_BATCHES} warm-up (checksum ${sink})`);
  const res = result("route_decision_us", median(policy), median(baseline), "µs", 3);
  say(`  median batch: decideRoute ${res.value} µs per decision vs bare includes loop ${res.baseline} µs, ratio ${res.ratio}`);
  return res;
}

// ---------------------------------------------------------------------------------------------------------------- 2, 3

/** A real router process, `fleet run router`, on its own prefix; resolves once it logs `router started`. */
async function startRouterProcess(url: string, baseUrl: string, prefix: string, dir: string): Promise<{ pid: number; stop: () => Promise<string> }> {
  const file = join(dir, `${prefix}.yaml`);
  writeFileSync(file, benchYaml(baseUrl, prefix));
  const child = spawn(process.execPath, [CLI, "run", "router", "--config", file, "--nats", url, "--log-level", "info"], { stdio: ["ignore", "ignore", "pipe"] });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  let seen = "";
  await new Promise<void>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`the router did not start in 30 s: ${seen.slice(-500)}`)), 30_000);
    child.stderr.on("data", (d: Buffer) => {
      seen = (seen + d.toString()).slice(-50_000);
      if (seen.includes('"msg":"router started"')) {
        clearTimeout(timer);
        ok();
      }
    });
    child.once("exit", (code) => fail(new Error(`the router exited with ${code}: ${seen.slice(-500)}`)));
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error("the router has no pid");
  return {
    pid,
    /** stops the router; returns what it logged after starting */
    stop: async () => {
      child.kill("SIGTERM");
      await exited;
      return seen.slice(seen.indexOf('"msg":"router started"'));
    },
  };
}

/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

function completeRequest(agentId: string): CompleteRequest {
  return { agentId, kind: "bench", title: "Summarise the competitor pricing pages", tier: "capable", messages: MESSAGES, maxOutputTokens: MAX_TOKENS };
}

function directClient(baseURL: string): OpenAI {
  return new OpenAI({ baseURL, apiKey: "x", maxRetries: 0, logLevel: "off" });
}

const directCall = (openai: OpenAI) => () => openai.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: MAX_TOKENS });

async function timeSequential(n: number, call: (i: number) => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await call(i);
    out.push(performance.now() - t);
  }
  return out;
}

async function latency(nats: NatsServer, openaiServer: OpenAIServer, dir: string): Promise<Result[]> {
  const url = nats.url;
  const names = new FleetNames("benchrl");
  const routerProcess = await startRouterProcess(url, openaiServer.baseUrl, names.prefix, dir);
  const nc = await connect({ servers: url, name: "bench-router-client" });
  const client = new RouterClient(nc, names, { timeoutMs: 60_000, retries: 0 });
  const openai = directClient(openaiServer.baseUrl);
  try {
    const routerCall = () => client.complete(completeRequest("scout"));
    const direct = directCall(openai);
    // the two paths must get the same answer from the same server
    const viaRouter = await routerCall();
    const viaSdk = await direct();
    if (viaRouter.text !== `ok from ${MODEL}` || viaRouter.cacheHit || viaRouter.servedTier !== "capable") throw new Error(`unexpected router answer ${JSON.stringify(viaRouter)}`);
    if (viaSdk.choices[0]?.message.content !== viaRouter.text) throw new Error(`unexpected direct answer ${JSON.stringify(viaSdk)}`);
    say(`complete latency: ${LATENCY_BLOCKS} blocks of ${LATENCY_BLOCK} sequential calls per path, alternating, after ${LATENCY_WARMUP} warm-up each; router in its own process`);

    await timeSequential(LATENCY_WARMUP, direct);
    await timeSequential(LATENCY_WARMUP, routerCall);
    const viaRouterMs: number[] = [];
    const directMs: number[] = [];
    const cpu0 = { router: cpuSeconds(routerProcess.pid), nats: cpuSeconds(nats["proc"]?.pid ?? 0), bench: process.cpuUsage() };
    let benchRouterCpu = 0;
    for (let b = 0; b < LATENCY_BLOCKS; b++) {
      directMs.push(...(await timeSequential(LATENCY_BLOCK, direct)));
      const c = process.cpuUsage();
      viaRouterMs.push(...(await timeSequential(LATENCY_BLOCK, routerCall)));
      const d = process.cpuUsage(c);
      benchRouterCpu += (d.user + d.system) / 1e6;
    }
    const n = LATENCY_BLOCKS * LATENCY_BLOCK;
    const routerCpu = (cpuSeconds(routerProcess.pid) - cpu0.router) / n;
    const natsCpu = (cpuSeconds(nats["proc"]?.pid ?? 0) - cpu0.nats) / n;
    const benchAll = process.cpuUsage(cpu0.bench);
    const benchDirectCpu = ((benchAll.user + benchAll.system) / 1e6 - benchRouterCpu) / n;
    const r = sorted(viaRouterMs);
    const d = sorted(directMs);
    say(`  direct openai SDK: p50 ${ms(percentile(d, 50))}, p99 ${ms(percentile(d, 99))}`);
    say(`  through the router: p50 ${ms(percentile(r, 50))}, p99 ${ms(percentile(r, 99))}`);
    const tenth = Math.floor(n / 10);
    say(`  information: router p50 of the first ${tenth} calls ${ms(median(viaRouterMs.slice(0, tenth)))}, of the last ${tenth} ${ms(median(viaRouterMs.slice(-tenth)))}`);
    say(
      `  information: CPU per call: router process ${ms(routerCpu * 1_000)}, nats-server ${ms(natsCpu * 1_000)} (router calls and direct calls together), ` +
        `this process ${ms((benchRouterCpu / n) * 1_000)} per router call (client + HTTP server) vs ${ms(benchDirectCpu * 1_000)} per direct call (SDK + HTTP server)`,
    );
    const budgets = (await ensureFleetResources(nc, names, { maxPayloadBytes: 1024 * 1024 })).kv.budgets;
    const day = fleetDay(Date.now(), "Europe/Berlin");
    const fleetKey = await budgets.get(`${day}.fleet`);
    const scoutKey = await budgets.get(`${day}.scout`);
    say(`  information: budget records after ${n + LATENCY_WARMUP + 1} calls: fleet ${((fleetKey?.value.length ?? 0) / 1024).toFixed(1)} kB (revision ${fleetKey?.revision}), scout ${((scoutKey?.value.length ?? 0) / 1024).toFixed(1)} kB`);

    await whereTheTimeGoes(nc, url, viaRouter);

    const p50 = result("complete_overhead_p50_ms", percentile(r, 50) - percentile(d, 50), percentile(d, 50), "ms", 3, percentile(r, 50) / percentile(d, 50));
    const p99 = result("complete_overhead_p99_ms", percentile(r, 99) - percentile(d, 99), percentile(d, 99), "ms", 3, percentile(r, 99) / percentile(d, 99));
    say(`  p50: the router adds ${p50.value} ms to ${p50.baseline} ms direct, ratio router/direct ${p50.ratio}`);
    say(`  p99: the router adds ${p99.value} ms to ${p99.baseline} ms direct, ratio router/direct ${p99.ratio}`);
    return [p50, p99];
  } finally {
    await nc.close();
    await routerProcess.stop();
  }
}

/**
 * Information only: the router's fixed costs measured alone against the same nats-server. A complete is one NATS
 * request to the router; inside it, a budget view (two KV gets in parallel), a reserve (get + CAS update on the agent's
 * key, then on the fleet's), the HTTP call, then a settle (the same two CAS writes) alongside a USAGE publish.
 */
async function whereTheTimeGoes(client: NatsConnection, url: string, sampleReply: unknown): Promise<void> {
  const responder = await connect({ servers: url, name: "bench-raw-responder" });
  try {
    const requestBytes = encode(completeRequest("scout"), "msgpack");
    const replyBytes = encode({ result: sampleReply }, "msgpack");
    responder.subscribe("bench.raw.complete", { callback: (_err, msg) => void msg.respond(replyBytes) });
    await responder.flush();
    const rawCall = () => client.request("bench.raw.complete", requestBytes, { timeout: 5_000 });
    await timeSequential(100, rawCall);
    const raw = sorted(await timeSequential(INFO_N, rawCall));
    say(`  information: raw nats.js request/reply of the same sizes (${requestBytes.length} B, ${replyBytes.length} B), immediate responder: p50 ${ms(percentile(raw, 50))}, p99 ${ms(percentile(raw, 99))}`);

    const names = new FleetNames("benchledger");
    const { kv } = await ensureFleetResources(client, names, { maxPayloadBytes: 1024 * 1024 });
    const config = parseFleetConfig(benchYaml("http://127.0.0.1:9/v1", names.prefix), "bench-router.yaml");
    const ledger = new BudgetLedger({
      kv: kv.budgets,
      timeZone: config.fleet.timeZone,
      fleetCapUsd: config.fleet.dailyCapUsd,
      agentCapsUsd: Object.fromEntries(config.agents.map((a) => [a.id, a.dailyCapUsd])),
      downgradeAt: config.routing.budget.downgradeAt,
      nanoGrace: config.routing.budget.nanoGrace,
      reservationTtlMs: config.routing.budget.reservationTtlSeconds * 1_000,
    });
    const js = jetstream(client);
    const usageBytes = new Uint8Array(360);
    const parts = { view: [] as number[], reserve: [] as number[], settle: [] as number[], publish: [] as number[] };
    const ledgerCall = async (i: number, keep: boolean) => {
      const t0 = performance.now();
      await ledger.view("scout");
      const t1 = performance.now();
      const reserved = await ledger.reserve("scout", "capable", 0.00004, `bench-${i}.0`);
      if (!reserved.ok) throw new Error("the ledger refused a reservation");
      const t2 = performance.now();
      await ledger.settle(reserved.reservation, 0.00002);
      const t3 = performance.now();
      await js.publish(names.usage("scout", "capable"), usageBytes, { msgID: `bench-${i}.0` });
      const t4 = performance.now();
      if (keep) {
        parts.view.push(t1 - t0);
        parts.reserve.push(t2 - t1);
        parts.settle.push(t3 - t2);
        parts.publish.push(t4 - t3);
      }
    };
    for (let i = 0; i < 100; i++) await ledgerCall(-1 - i, false);
    for (let i = 0; i < INFO_N; i++) await ledgerCall(i, true);
    const line = (label: string, xs: number[]) => `${label} p50 ${ms(median(xs))}`;
    const ledgerTotal = median(parts.view) + median(parts.reserve) + median(parts.settle);
    say(
      `  information: budget ledger alone, ${INFO_N} sequential calls: ${line("view", parts.view)}, ${line("reserve", parts.reserve)}, ` +
        `${line("settle", parts.settle)} (sum of p50s ${ms(ledgerTotal)}); USAGE publish alone ${ms(median(parts.publish))} (runs alongside settle)`,
    );
  } finally {
    await responder.close();
  }
}

interface Burst {
  ok: number;
  failed: Map<string, number>;
  seconds: number;
  latencies: number[];
}

async function burst(n: number, call: (i: number) => Promise<unknown>): Promise<Burst> {
  const failed = new Map<string, number>();
  const latencies: number[] = [];
  let ok = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      try {
        await call(i);
        ok++;
        latencies.push(performance.now() - t0);
      } catch (err) {
        const code = err instanceof FleetError ? err.code : err instanceof Error ? err.constructor.name : "unknown";
        failed.set(code, (failed.get(code) ?? 0) + 1);
      }
    }),
  );
  return { ok, failed, seconds: (performance.now() - t0) / 1_000, latencies: sorted(latencies) };
}

function describe(label: string, b: Burst): string {
  const failures = [...b.failed].map(([code, count]) => `${count} ${code}`).join(", ");
  return (
    `${label} ${Math.round(b.ok / b.seconds)} req/s (${b.ok} ok${failures ? `, failed: ${failures}` : ""} in ${b.seconds.toFixed(2)} s; ` +
    `answered by ${ms(percentile(b.latencies, 50))} p50, ${ms(percentile(b.latencies, 99))} p99)`
  );
}

async function throughput(url: string, openaiServer: OpenAIServer, dir: string): Promise<Result> {
  const names = new FleetNames("benchrt");
  const routerProcess = await startRouterProcess(url, openaiServer.baseUrl, names.prefix, dir);
  const nc = await connect({ servers: url, name: "bench-router-burst" });
  const client = new RouterClient(nc, names, { timeoutMs: 120_000, retries: 0 });
  const openai = directClient(openaiServer.baseUrl);
  let logged = "";
  try {
    say(`Throughput: ${IN_FLIGHT} calls in flight at once (Promise.all), spread over ${AGENTS.join(", ")}; ${THROUGHPUT_ROUNDS} rounds per path, alternating`);
    const routerCall = (i: number) => client.complete(completeRequest(AGENTS[i % AGENTS.length] as string));
    const direct = directCall(openai);
    await burst(100, direct);
    await burst(100, routerCall);
    const viaRouter: Burst[] = [];
    const viaSdk: Burst[] = [];
    for (let r = 0; r < THROUGHPUT_ROUNDS; r++) {
      const d = await burst(IN_FLIGHT, direct);
      const c = await burst(IN_FLIGHT, routerCall);
      viaSdk.push(d);
      viaRouter.push(c);
      say(`  round ${r + 1}: ${describe("direct", d)}`);
      say(`  round ${r + 1}: ${describe("router", c)}`);
    }
    const rate = (b: Burst) => b.ok / b.seconds;
    const res = result("router_throughput", median(viaRouter.map(rate)), median(viaSdk.map(rate)), "req/s", 0);
    say(`  median: router ${res.value} req/s vs direct ${res.baseline} req/s, ratio ${res.ratio} (successful calls only)`);
    return res;
  } finally {
    await nc.close();
    logged = await routerProcess.stop();
    const warnings = logged.split("\n").filter((l) => /"level":(40|50)/.test(l)).length;
    if (warnings > 0) say(`  information: the router logged ${warnings} warnings or errors during the bursts`);
  }
}

// -----------------------------------------------------------------------------------------------------------------

/** `--only decision|latency|throughput` runs one section; its own figure is then the last line. */
async function main(): Promise<void> {
  const { values } = parseArgs({ options: { only: { type: "string" } } });
  const only = values.only;
  if (only !== undefined && !["decision", "latency", "throughput"].includes(only)) throw new TypeError(`--only ${only}: expected decision, latency or throughput`);
  const runs = (section: string) => only === undefined || only === section;
  const results: Result[] = [];
  if (runs("decision")) results.push(await decision());
  if (!runs("latency") && !runs("throughput")) {
    for (const r of results) say(JSON.stringify(r));
    return;
  }
  const nats = await NatsServer.start();
  const openaiServer = await OpenAIServer.start();
  const dir = mkdtempSync(join(tmpdir(), "bench-router-"));
  say(`nats-server at ${nats.url}, OpenAI server at ${openaiServer.baseUrl}; node ${process.version}`);
  try {
    const overhead = runs("latency") ? await latency(nats, openaiServer, dir) : [];
    if (runs("throughput")) results.push(await throughput(nats.url, openaiServer, dir));
    // the headline, the p50 overhead, goes last
    for (const r of [...results, ...overhead.reverse()]) say(JSON.stringify(r));
  } finally {
    await openaiServer.close();
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
