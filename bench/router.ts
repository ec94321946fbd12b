import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { jetstream } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import OpenAI from "openai";
import { z } from "zod";
import { fleetDay, parseFleetConfig, type FleetConfig } from "../config/index.js";
import { encode, ensureFleetResources, FleetError, FleetNames, openBuckets, type ChatMessage, type CompleteRequest, type RouteRequest } from "../protocol/index.js";
import { decideRoute, fleetBudgetLedger, LocalClassifier, readLabelFile, RouterClient, type PolicyInput } from "../router/index.js";
import { shippedLabelsPath } from "../config/index.js";
import { classifierSection } from "./router-classifier.js";
import { cacheReplaySection } from "./router-cache-replay.js";
import { NatsServer, OpenAIServer, routerFleetYaml } from "../harness/index.js";
import { ascending, figure, median, percentile, say, timeSequential, type Result } from "./report.js";
import { cpuSeconds, describeTally, natsPid, startRouterProcess } from "./router-process.js";

/**
 * Router benchmark: one nats-server and one scripted OpenAI server (a real HTTP server on loopback) started here.
 *   1. The routing decision: `decideRoute` in-process vs a bare loop of the same `includes` tests.
 *   2. `complete` latency through the real router process (`fleet run router`) vs the `openai` SDK calling the same
 *      server directly: p50/p99, the overhead (router − direct) and the ratio (router / direct).
 *   3. Throughput with 1,000 requests in flight, router vs direct.
 * The last line is the headline (the p50 overhead) as JSON.
 */


const DECISION_BATCH = 20_000;
const DECISION_WARMUP_BATCHES = 5;
const DECISION_BATCHES = 30;
const LATENCY_WARMUP = 200;
const LATENCY_BLOCKS = 10;
const LATENCY_BLOCK = 100;
const INFO_N = 1_000;
const IN_FLIGHT = 1_000;
const THROUGHPUT_ROUNDS = 3;
/** information: the router with fewer calls in flight, to show where the budget's CAS keys stop coping */
const THROUGHPUT_INFO_CONCURRENCY = [10, 100];
const THROUGHPUT_INFO_CALLS = 500;
const MAX_TOKENS = 64;
const MODEL = "m-capable";
const AGENTS = ["atlas", "scout", "ship"] as const;
/** USER_HZ: the unit of the CPU times in /proc/<pid>/stat on Linux */
const result = (metric: string, value: number, baseline: number, unit: string, digits: number, ratio = value / baseline): Result =>
  figure("router", metric, value, baseline, unit, digits, ratio);



const sorted = ascending;
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

/** the fleet's time zone, which names the budget day's keys */
const TIME_ZONE = parseFleetConfig(benchYaml("http://127.0.0.1:9/v1", "benchtz"), "bench-router.yaml").fleet.timeZone;

// ---------------------------------------------------------------------------------------------------------------- 1

async function decision(): Promise<Result[]> {
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

  // the same titles with the local classifier in the policy: the ones no rule matches are classified in-process
  const model = LocalClassifier.train(readLabelFile(shippedLabelsPath()));
  const withLocal: PolicyInput = { ...input, localClassify: (title) => model.classify(title) };
  const reasons = new Map<string, number>();
  for (const request of requests) {
    const d = await decideRoute(request, withLocal);
    reasons.set(d.reason, (reasons.get(d.reason) ?? 0) + 1);
  }
  const localBatch = async () => {
    const t = performance.now();
    for (let i = 0; i < DECISION_BATCH; i++) sink += (await decideRoute(requests[i % requests.length] as RouteRequest, withLocal)).fallbackChain.length;
    return ((performance.now() - t) * 1_000) / DECISION_BATCH;
  };
  for (let b = 0; b < DECISION_WARMUP_BATCHES; b++) await localBatch();
  const local: number[] = [];
  for (let b = 0; b < DECISION_BATCHES; b++) local.push(await localBatch());
  const withLocalRes = result("route_decision_with_local_classifier_us", median(local), median(policy), "µs", 3);
  say(`  with the local classifier (decisions by ${[...reasons].map(([r, n]) => `${r} ${n}`).join(", ")}): ${withLocalRes.value} µs per decision vs ${withLocalRes.baseline} µs with rules only`);
  return [res, withLocalRes];
}

// ---------------------------------------------------------------------------------------------------------------- 2, 3

function writeBenchConfig(dir: string, baseUrl: string, prefix: string): string {
  const file = join(dir, `${prefix}.yaml`);
  writeFileSync(file, benchYaml(baseUrl, prefix));
  return file;
}

function completeRequest(agentId: string): CompleteRequest {
  return { agentId, kind: "bench", title: "Summarise the competitor pricing pages", tier: "capable", messages: MESSAGES, maxOutputTokens: MAX_TOKENS };
}

function directClient(baseURL: string): OpenAI {
  return new OpenAI({ baseURL, apiKey: "x", maxRetries: 0, logLevel: "off" });
}

const directCall = (openai: OpenAI) => () => openai.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: MAX_TOKENS });

/** Reads a budget record's live reservations and tombstones, to show what every CAS write carries. */
const BudgetShape = z.object({ reservations: z.record(z.string(), z.unknown()), settled: z.record(z.string(), z.unknown()).default({}) });

async function budgetRecords(budgets: KV, owners: readonly string[]): Promise<string> {
  const day = fleetDay(Date.now(), TIME_ZONE);
  const parts: string[] = [];
  for (const owner of owners) {
    const entry = await budgets.get(`${day}.${owner}`);
    const parsed = entry && entry.operation === "PUT" ? BudgetShape.safeParse(JSON.parse(new TextDecoder().decode(entry.value))) : undefined;
    const shape = parsed?.success ? `${Object.keys(parsed.data.reservations).length} live reservations, ${Object.keys(parsed.data.settled).length} tombstones` : "empty";
    parts.push(`${owner} ${(((entry?.value.length ?? 0) / 1024)).toFixed(1)} kB (${shape})`);
  }
  return parts.join("; ");
}

/** Starts the day afresh: the warm-up's tombstones would otherwise ride along in every write of the measured run. */
async function resetDay(budgets: KV): Promise<void> {
  const day = fleetDay(Date.now(), TIME_ZONE);
  for (const owner of ["fleet", ...AGENTS]) await budgets.purge(`${day}.${owner}`);
}

async function latency(nats: NatsServer, openaiServer: OpenAIServer, dir: string): Promise<Result[]> {
  const url = nats.url;
  const names = new FleetNames("benchrl");
  const routerProcess = await startRouterProcess(url, writeBenchConfig(dir, openaiServer.baseUrl, names.prefix));
  const nc = await connect({ servers: url, name: "bench-router-client" });
  const client = new RouterClient(nc, names, { timeoutMs: 60_000, retries: 0 });
  const openai = directClient(openaiServer.baseUrl);
  try {
    const budgets = (await openBuckets(nc, names)).budgets;
    const routerCall = () => client.complete(completeRequest("scout"));
    const direct = directCall(openai);
    // the two paths must get the same answer from the same server
    const viaRouter = await routerCall();
    const viaSdk = await direct();
    if (viaRouter.text !== `ok from ${MODEL}` || viaRouter.cacheHit || viaRouter.servedTier !== "capable") throw new Error(`unexpected router answer ${JSON.stringify(viaRouter)}`);
    if (viaSdk.choices[0]?.message.content !== viaRouter.text) throw new Error(`unexpected direct answer ${JSON.stringify(viaSdk)}`);
    const n = LATENCY_BLOCKS * LATENCY_BLOCK;
    say(`complete latency: ${LATENCY_BLOCKS} blocks of ${LATENCY_BLOCK} sequential calls per path, alternating, after ${LATENCY_WARMUP} warm-up each; router in its own process; the budget day is emptied after the warm-up`);

    await timeSequential(LATENCY_WARMUP, direct);
    await timeSequential(LATENCY_WARMUP, routerCall);
    await resetDay(budgets);
    const viaRouterMs: number[] = [];
    const directMs: number[] = [];
    const cpu0 = { router: cpuSeconds(routerProcess.pid), nats: cpuSeconds(natsPid(nats)), bench: process.cpuUsage() };
    let benchRouterCpu = 0;
    for (let b = 0; b < LATENCY_BLOCKS; b++) {
      directMs.push(...(await timeSequential(LATENCY_BLOCK, direct)));
      const c = process.cpuUsage();
      viaRouterMs.push(...(await timeSequential(LATENCY_BLOCK, routerCall)));
      const d = process.cpuUsage(c);
      benchRouterCpu += (d.user + d.system) / 1e6;
    }
    const routerCpu = (cpuSeconds(routerProcess.pid) - cpu0.router) / n;
    const natsCpu = (cpuSeconds(natsPid(nats)) - cpu0.nats) / n;
    const benchAll = process.cpuUsage(cpu0.bench);
    const benchDirectCpu = ((benchAll.user + benchAll.system) / 1e6 - benchRouterCpu) / n;
    const r = sorted(viaRouterMs);
    const d = sorted(directMs);
    say(`  direct openai SDK: p50 ${ms(percentile(d, 50))}, p99 ${ms(percentile(d, 99))}`);
    say(`  through the router: p50 ${ms(percentile(r, 50))}, p99 ${ms(percentile(r, 99))}`);
    const blockP50 = (b: number) => ms(median(viaRouterMs.slice(b * LATENCY_BLOCK, (b + 1) * LATENCY_BLOCK)));
    say(`  information: router p50 per block of ${LATENCY_BLOCK}: ${Array.from({ length: LATENCY_BLOCKS }, (_, b) => blockP50(b)).join(", ")}`);
    say(
      `  information: CPU per router call: router process ${ms(routerCpu * 1_000)}, nats-server ${ms(natsCpu * 1_000)}, ` +
        `this process ${ms((benchRouterCpu / n) * 1_000)} (client + HTTP server); per direct call, this process ${ms(benchDirectCpu * 1_000)} (SDK + HTTP server)`,
    );
    say(`  information: budget records after the ${n} calls: ${await budgetRecords(budgets, ["fleet", "scout"])}`);

    await whereTheTimeGoes(nc, url, viaRouter);

    const p50 = result("complete_overhead_p50_ms", percentile(r, 50) - percentile(d, 50), percentile(d, 50), "ms", 3, percentile(r, 50) / percentile(d, 50));
    const p99 = result("complete_overhead_p99_ms", percentile(r, 99) - percentile(d, 99), percentile(d, 99), "ms", 3, percentile(r, 99) / percentile(d, 99));
    say(`  p50: the router adds ${p50.value} ms to ${p50.baseline} ms direct, ratio router/direct ${p50.ratio}`);
    say(`  p99: the router adds ${p99.value} ms to ${p99.baseline} ms direct, ratio router/direct ${p99.ratio}`);
    return [p50, p99];
  } finally {
    await nc.close();
    say(`  information: the router's log after it started: ${describeTally(await routerProcess.stop())}`);
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
    const ledger = fleetBudgetLedger(config, kv.budgets);
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
    await resetDay(kv.budgets);
    for (let i = 0; i < INFO_N; i++) await ledgerCall(i, true);
    const slice = (from: number, to: number) => {
      const p = (xs: number[]) => median(xs.slice(from, to));
      const total = p(parts.view) + p(parts.reserve) + p(parts.settle);
      return `view ${ms(p(parts.view))}, reserve ${ms(p(parts.reserve))}, settle ${ms(p(parts.settle))}, sum ${ms(total)}`;
    };
    say(`  information: budget ledger alone, ${INFO_N} sequential view + reserve + settle from an empty day, p50s: first 100 calls ${slice(0, 100)}; last 100 ${slice(-100, INFO_N)}`);
    say(`  information: USAGE publish to JetStream alone, p50 ${ms(median(parts.publish))} (the router runs it alongside the settle)`);
  } finally {
    await responder.close();
  }
}

interface Load {
  ok: number;
  failed: Map<string, number>;
  seconds: number;
  /** when each successful call was answered, ms from the start */
  answeredAt: number[];
}

/** `total` calls, at most `concurrency` in flight (a pool of that many callers); `concurrency = total` is one burst. */
async function load(total: number, concurrency: number, call: (i: number) => Promise<unknown>): Promise<Load> {
  const failed = new Map<string, number>();
  const answeredAt: number[] = [];
  let ok = 0;
  let next = 0;
  const t0 = performance.now();
  const caller = async () => {
    while (next < total) {
      const i = next++;
      try {
        await call(i);
        ok++;
        answeredAt.push(performance.now() - t0);
      } catch (err) {
        // a CONFLICT names the budget key it lost on: `<day>.fleet` or `<day>.<agentId>`
        const key = err instanceof FleetError && err.code === "CONFLICT" ? /budget \S+\.(\S+):/.exec(err.message)?.[1] : undefined;
        const code = err instanceof FleetError ? `${err.code}${key ? ` on ${key === "fleet" ? "the fleet key" : "an agent key"}` : ""}` : err instanceof Error ? err.constructor.name : "unknown";
        failed.set(code, (failed.get(code) ?? 0) + 1);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, caller));
  return { ok, failed, seconds: (performance.now() - t0) / 1_000, answeredAt: sorted(answeredAt) };
}

const rate = (l: Load) => l.ok / l.seconds;

function describe(label: string, l: Load): string {
  const failures = [...l.failed].map(([code, count]) => `${count} ${code}`).join(", ");
  return (
    `${label} ${Math.round(rate(l))} req/s (${l.ok} ok${failures ? `, failed: ${failures}` : ""} in ${l.seconds.toFixed(2)} s; ` +
    `half answered by ${ms(percentile(l.answeredAt, 50))}, 99 % by ${ms(percentile(l.answeredAt, 99))})`
  );
}

async function throughput(nats: NatsServer, openaiServer: OpenAIServer, dir: string): Promise<Result> {
  const names = new FleetNames("benchrt");
  const routerProcess = await startRouterProcess(nats.url, writeBenchConfig(dir, openaiServer.baseUrl, names.prefix));
  const nc = await connect({ servers: nats.url, name: "bench-router-burst" });
  const client = new RouterClient(nc, names, { timeoutMs: 120_000, retries: 0 });
  const openai = directClient(openaiServer.baseUrl);
  try {
    const budgets = (await openBuckets(nc, names)).budgets;
    say(`Throughput: ${IN_FLIGHT} calls in flight at once (Promise.all), spread over ${AGENTS.join(", ")}; direct ${THROUGHPUT_ROUNDS} rounds, router one round from an empty budget day`);
    const routerCall = (i: number) => client.complete(completeRequest(AGENTS[i % AGENTS.length] as string));
    const direct = directCall(openai);
    await load(100, 100, direct);
    await load(100, 100, routerCall);

    const viaSdk: Load[] = [];
    for (let r = 0; r < THROUGHPUT_ROUNDS; r++) {
      viaSdk.push(await load(IN_FLIGHT, IN_FLIGHT, direct));
      say(`  round ${r + 1}: ${describe("direct", viaSdk[r] as Load)}`);
    }
    await resetDay(budgets);
    routerProcess.tally.clear();
    const served0 = openaiServer.requests.length;
    const cpu0 = { router: cpuSeconds(routerProcess.pid), nats: cpuSeconds(natsPid(nats)) };
    const viaRouter = await load(IN_FLIGHT, IN_FLIGHT, routerCall);
    const served = openaiServer.requests.length - served0;
    say(`  ${describe("router", viaRouter)}`);
    say(
      `  information: the model server got ${served} calls for the ${viaRouter.ok} answered; ` +
        `CPU in the burst: router process ${(cpuSeconds(routerProcess.pid) - cpu0.router).toFixed(1)} s, nats-server ${(cpuSeconds(natsPid(nats)) - cpu0.nats).toFixed(1)} s`,
    );
    say(`  information: the router's log during the burst: ${describeTally(routerProcess.tally)}`);
    say(`  information: budget records after the burst, all calls finished: ${await budgetRecords(budgets, ["fleet", ...AGENTS])}`);
    routerProcess.tally.clear();
    for (const concurrency of THROUGHPUT_INFO_CONCURRENCY) {
      await resetDay(budgets);
      say(`  information: ${describe(`router, ${THROUGHPUT_INFO_CALLS} calls with ${concurrency} in flight:`, await load(THROUGHPUT_INFO_CALLS, concurrency, routerCall))}`);
    }
    const res = result("router_throughput", rate(viaRouter), median(viaSdk.map(rate)), "req/s", 0);
    say(`  router ${res.value} req/s vs direct ${res.baseline} req/s (median round), ratio ${res.ratio} (successful calls only)`);
    return res;
  } finally {
    await nc.close();
    say(`  information: the router's log after that (the runs with fewer in flight): ${describeTally(await routerProcess.stop())}`);
  }
}

// -----------------------------------------------------------------------------------------------------------------

/** `--only decision|latency|throughput` runs one section; its own figure is then the last line. */
async function main(): Promise<void> {
  const { values } = parseArgs({ options: { only: { type: "string" } } });
  const only = values.only;
  if (only !== undefined && !["decision", "classifier", "cache", "latency", "throughput"].includes(only)) throw new TypeError(`--only ${only}: expected decision, classifier, cache, latency or throughput`);
  const runs = (section: string) => only === undefined || only === section;
  const results: Result[] = [];
  if (runs("decision")) results.push(...(await decision()));
  if (runs("classifier")) results.push(...classifierSection());
  if (!runs("latency") && !runs("throughput") && !runs("cache")) {
    for (const r of results) say(JSON.stringify(r));
    return;
  }
  const nats = await NatsServer.start();
  const openaiServer = await OpenAIServer.start();
  const dir = mkdtempSync(join(tmpdir(), "bench-router-"));
  say(`nats-server at ${nats.url}, OpenAI server at ${openaiServer.baseUrl}; node ${process.version}`);
  try {
    if (runs("cache")) {
      const nc = await connect({ servers: nats.url, name: "bench-cache-replay" });
      try {
        results.push(...(await cacheReplaySection(nc)));
      } finally {
        await nc.close();
      }
    }
    const overhead = runs("latency") ? await latency(nats, openaiServer, dir) : [];
    if (runs("throughput")) results.push(await throughput(nats, openaiServer, dir));
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
