import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { pino } from "pino";
import { connectNats, decode, DutyRunRecord, ensureFleetResources, FleetNames } from "../protocol/index.js";
import { simulateFleet } from "../router/index.js";
import { ProcessSupervisor, type ChildSpec } from "../supervisor/index.js";
import { answerBySchema, NatsServer, OpenAIServer, usageRecords } from "../harness/index.js";
import { writeDayConfigs } from "./fleet-day-config.js";
import { FEED_NEWS, OUTAGES, scriptedFindingRate, startDaySites } from "./fleet-day-sites.js";
import { projectedByAgent, tallyDay } from "./fleet-day-tally.js";
import { figure, round, say } from "./report.js";

/*
 * bench/fleet-day: one day of the reference fleet (seven agents, their duties and cron jobs) run for real and compressed:
 * a nats-server, the router, tool host, governance, business stand-in and the seven agents as `fleet run` processes, the
 * scheduler in its own, the scripted OpenAI server as every tier's provider (its usage is billed at dcode-ops.yaml's
 * prices). Intervals and cycles are divided by FLEET_DAY_FACTOR (default 360: a day in 4 minutes). Two sites fail for a
 * while and a feed gains items three times (fleet-day-sites.ts). Printed: per agent and tier the calls, tokens and
 * dollars, the same calls at premium prices, the share of cycles and duty runs that cost $0, the findings, and
 * `fleet simulate`'s projection of the same day config. Headline: the day's cost against all-premium.
 */

const BENCH = "fleet-day";
const DIST = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const CLI = join(DIST, "cli", "main.js");
const factor = Number(process.env.FLEET_DAY_FACTOR ?? 360);
const dayMs = 86_400_000 / factor;
const startupMs = Number(process.env.FLEET_DAY_STARTUP_MS ?? 30_000);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const address = server.address();
  await new Promise<void>((r) => server.close(() => r()));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

function supervise(specs: ChildSpec[], output: string[]): ProcessSupervisor {
  return new ProcessSupervisor(specs, {
    intensity: 50,
    periodMs: 60_000,
    shutdownTimeoutMs: 10_000,
    restartDelayMs: 200,
    logger: pino({ level: "silent" }),
    stdio: "pipe",
    onChildOutput: (id: string, line: string) => void output.push(`${id}: ${line}`),
  });
}

const dir = mkdtempSync(join(tmpdir(), "fleet-day-"));
let t0 = Number.POSITIVE_INFINITY;
const sites = await startDaySites(() => Math.min(1, Math.max(0, (Date.now() - t0) / dayMs)));
const openai = await OpenAIServer.start();
openai.answerWith(answerBySchema);
const advisoriesFile = join(dir, "advisories.json");
writeFileSync(advisoriesFile, JSON.stringify({ advisories: [{ id: "GHSA-bench-0001", package: "left-pad", vulnerable: "<1.0.0", severity: "high" }] }));
const configs = writeDayConfigs(
  dir,
  { sites: sites.sites, feedUrl: sites.feedUrl, lockfile: resolve(DIST, "..", "package-lock.json"), advisoriesFile, diskPath: "/" },
  { factor, openaiBaseUrl: openai.baseUrl, businessUrl: `http://127.0.0.1:${await freePort()}` },
);
const config = configs.compressed;
const nats = await NatsServer.start();
const names = new FleetNames(config.fleet.prefix);
const nc = await connectNats({ servers: nats.url, name: "fleet-day", longLived: false });
await ensureFleetResources(nc, names, { maxPayloadBytes: config.fleet.maxPayloadBytes });

const env = { OPENROUTER_API_KEY: "bench-key" };
const spec = (id: string, args: string[]): ChildSpec => ({
  id,
  command: process.execPath,
  args: [CLI, "run", ...args, "--config", configs.compressedFile, "--nats", nats.url, "--supervised", "--log-level", "warn"],
  env,
  restart: "permanent",
});
const output: string[] = [];
const fleet = supervise(
  [spec("router", ["router"]), spec("tools", ["tools"]), spec("governance", ["governance"]), spec("standin", ["standin"]), ...config.agents.map((a) => spec(a.id, ["agent", a.id]))],
  output,
);
say(`fleet-day: dcode-ops (${config.agents.length} agents), a Monday compressed ${factor}× (${round(dayMs / 1000, 1)} s); starting ${config.agents.length + 4} processes`);
if (configs.dropped.length > 0) say(`not on a Monday, left out: ${configs.dropped.join(", ")}`);
await fleet.start();
await sleep(startupMs);

// the day: the scheduler runs duties and cron jobs from t0 for one compressed day, then stops; the agents finish. The
// day starts on the hour (of the compressed day): every interval of an hour or less, and the agents' cycles, are on the
// epoch's grid, so the scripted outages and news fall at the same place against them in every run
const scheduler = supervise([spec("scheduler", ["scheduler"])], output);
const hourMs = 3_600_000 / factor;
await sleep(hourMs - (Date.now() % hourMs));
t0 = Date.now();
await scheduler.start();
await sleep(dayMs);
await scheduler.stop();
const usageCount = async () => (await (await jetstreamManager(nc)).streams.info(names.stream("USAGE"))).state.messages;
let last = -1;
for (let i = 0; i < 30; i++) {
  const now = await usageCount();
  if (now === last) break;
  last = now;
  await sleep(3_000);
}
const windowMs = Date.now() - t0;

const usage = (await usageRecords(nc, names)).filter((r) => r.at >= t0);
const schedules = await new Kvm(nc).open(names.bucket("schedules"));
const duties: DutyRunRecord[] = [];
for await (const key of await schedules.keys("duty.>")) {
  const entry = await schedules.get(key);
  if (!entry || entry.operation !== "PUT") continue;
  const d = decode(DutyRunRecord, entry.value, { codec: config.fleet.codec });
  if (d.ok) duties.push(d.value);
}
const findingsByAgent = new Map<string, number>();
const jsm = await jetstreamManager(nc);
const findingsInfo = await jsm.streams.info(names.stream("FINDINGS"), { subjects_filter: ">" });
for (const [subject, n] of Object.entries(findingsInfo.state.subjects ?? {})) {
  const agent = subject.split(".").pop() ?? subject;
  findingsByAgent.set(agent, (findingsByAgent.get(agent) ?? 0) + n);
}
const stillRunning = duties.filter((d) => d.running).map((d) => `${d.agentId}/${d.dutyId}`);
const failed = duties.flatMap((d) => (d.counts.failed > 0 ? [`${d.agentId}/${d.dutyId} ×${d.counts.failed}${d.lastRun?.reason ? ` (${d.lastRun.reason.slice(0, 120)})` : ""}`] : []));

await fleet.stop();
await nc.close();
await nats.stop();
await openai.close();
const failedRequests = sites.failedRequests;
await sites.close();
rmSync(dir, { recursive: true, force: true });

const cycleMs = (id: string) => (config.agents.find((a) => a.id === id)?.cycleMinutes ?? 60) * 60_000;
const tally = tallyDay({ config, usage, duties, findingsByAgent, windowMs, cycleMs });
// the projection of the same day config: the scripted day sends the fleet no tasks (workShare 0), its watches find
// something new on the runs the script makes them (each outage's first run, the feed's first scan and each news), and the
// calls are given the scripted provider's sizes (its answers are a schema's smallest instance, far shorter than a
// model's), so the comparison is of the calls counted, their tiers and Atlas's plans
const findingRate = scriptedFindingRate(configs.day);
const simulation = simulateFleet(configs.day, { days: 1, assumptions: { workShare: 0, findingRate, cachedInputShare: tally.cachedShare, ...tally.shapes } });
const defaults = simulateFleet(configs.day, { days: 1 });
const projected = projectedByAgent(simulation);
// the measured window is a little longer than the day (the drain): scaled back to one day for the comparison
const perDay = dayMs / windowMs;

const usd = (x: number) => `$${x.toFixed(4)}`;
say("");
say(`scripted day: outages ${OUTAGES.map((o) => `${o.site} ${o.status} at ${(o.from * 24).toFixed(1)}-${(o.to * 24).toFixed(1)} h`).join(", ")}; feed news at ${FEED_NEWS.map((f) => `${(f * 24).toFixed(1)} h`).join(", ")}; ${failedRequests} requests answered with an outage`);
say(`measured window ${round(windowMs / 1000, 1)} s (day ${round(dayMs / 1000, 1)} s + drain)`);
say("");
say("AGENT      TIER       CALLS   IN TOKENS  OUT TOKENS        COST   ALL-PREMIUM");
for (const r of tally.rows) say(`${r.agentId.padEnd(10)} ${r.tier.padEnd(9)} ${String(r.calls).padStart(6)} ${String(r.inputTokens).padStart(11)} ${String(r.outputTokens).padStart(11)} ${usd(r.usd).padStart(11)} ${usd(r.premiumUsd).padStart(13)}`);
say(`${"total".padEnd(20)} ${String(tally.totals.calls).padStart(6)} ${String(tally.totals.inputTokens).padStart(11)} ${String(tally.totals.outputTokens).padStart(11)} ${usd(tally.totals.usd).padStart(11)} ${usd(tally.totals.premiumUsd).padStart(13)}`);
say("");
say("AGENT      CYCLES ($0)   DUTY RUNS ($0)  CRON$  FOUND RUNS  FINDINGS        COST   PROJECTED (calls)");
for (const a of tally.agents) {
  const p = projected.get(a.agentId) ?? { calls: 0, usd: 0 };
  say(`${a.agentId.padEnd(10)} ${`${a.cycles} (${a.cycles - a.costlyCycles})`.padStart(11)} ${`${a.dutyRuns} (${a.dutyRuns - a.costlyDutyRuns})`.padStart(16)} ${String(a.cronRuns).padStart(5)} ${String(a.findingRuns).padStart(11)} ${String(a.findings).padStart(9)} ${usd(a.usd).padStart(11)} ${`${usd(p.usd)} (${round(p.calls, 1)})`.padStart(19)}`);
}
if (stillRunning.length > 0) say(`still running when read: ${stillRunning.join(", ")}`);
if (failed.length > 0) say(`failed runs: ${failed.join("; ")}`);
const measuredDay = tally.totals.usd * perDay;
const zeroShare = tally.totals.zeroUnits / tally.totals.units;
say("");
say(`the day: ${usd(measuredDay)} (scaled to 24 h) vs ${usd(tally.totals.premiumUsd * perDay)} all-premium: ${round((100 * tally.totals.usd) / tally.totals.premiumUsd, 2)} % (target ≤ 10 %)`);
say(`cycles and duty runs at $0: ${tally.totals.zeroUnits} of ${tally.totals.units} = ${round(100 * zeroShare, 1)} % (target ≥ 80 %)`);
say(`call sizes measured (in/out tokens): ${Object.entries(tally.shapes).map(([k, v]) => `${k} ${v.inputTokens}/${v.outputTokens}`).join(", ")}; cached share ${round(tally.cachedShare, 2)}`);
say(`fleet simulate with its default assumptions (30 % of cycles working, model-sized calls): ${usd(defaults.totals.usdPerDay)}/day, ${round(defaults.totals.callsPerDay, 1)} calls, ${round((100 * defaults.totals.usdPerDay) / defaults.baseline.usdPerDay, 1)} % of its all-premium`);
say(`fleet simulate (day config, finding rate ${round(100 * findingRate, 1)} % as scripted): ${usd(simulation.totals.usdPerDay)}/day, ${round(simulation.totals.callsPerDay, 1)} calls; measured ${usd(measuredDay)}, ${round(tally.totals.calls * perDay, 1)} calls: projection/measured ${round(simulation.totals.usdPerDay / measuredDay, 2)} (target 0.75-1.25)`);
for (const line of output.filter((l) => /"level":(50|60)/.test(l)).slice(0, 5)) say(`  error line: ${line.slice(0, 300)}`);

const results = [
  figure(BENCH, "zero-cost share of cycles and duty runs", zeroShare * 100, 80, "%", 1),
  figure(BENCH, "simulate projected calls vs measured", simulation.totals.callsPerDay, tally.totals.calls * perDay, "calls", 1),
  figure(BENCH, "simulate projection vs measured day", simulation.totals.usdPerDay, measuredDay, "usd", 4),
  figure(BENCH, "day cost vs all-premium", tally.totals.usd * perDay, tally.totals.premiumUsd * perDay, "usd", 4),
];
for (const r of results) say(JSON.stringify(r));
