import { hostname } from "node:os";
import type { Logger } from "pino";
import { jetstream } from "@nats-io/jetstream";
import { CycleScheduler, QuietHoursRunner } from "../actors/index.js";
import { LEASE_TTL_MS, electionSafeJetStream, connectNats, connectServing, drainConnections, encode, FleetNames, openFleetResources, QUIET_HOURS_KEY, systemClock, type QuietHoursRecord } from "../protocol/index.js";
import { AlertWatcher, CloseoutSweeper, CronScheduler, DutyScheduler, EventRouter, Lease, localTargetsIn, NightlyBackup, WeeklyReportJob } from "../supervisor/index.js";
import { startMemoryOwner } from "./memory-owner.js";
import { untilStopped } from "./until-stopped.js";
import { createsResources, FLEET_DIR, loadConfig, natsConnection, rootLogger } from "./options.js";
import type { RunOptions } from "./run.js";

/**
 * `fleet run scheduler`: the config's cron jobs, the agents' duties, the event router (`events.sources`) and the nightly
 * backup, as a singleton (a second copy stands by for the lease). Duties that name a local target (`{{local.demo-site}}`)
 * find it in the `.fleet/` of the directory it runs in, where `fleet up` records them.
 */
export async function runScheduler(options: RunOptions, env: NodeJS.ProcessEnv): Promise<number> {
  const config = loadConfig(options, env);
  const log = rootLogger(options, env, "scheduler");
  const connect = { ...natsConnection(options, env), name: "fleet-scheduler", logger: log };
  const nc = await connectNats(connect);
  const names = new FleetNames(options.prefix ?? config.fleet.prefix);
  const { kv, jsm } = await openFleetResources(nc, names, { maxPayloadBytes: config.fleet.maxPayloadBytes, replicas: config.fleet.replicas, create: createsResources(options), log });
  const lease = new Lease({ kv: kv.leases, role: "scheduler", holder: `${hostname()}:${process.pid}`, renewMs: 5_000, log, ...(config.fleet.replicas > 1 ? { ttlMs: LEASE_TTL_MS } : {}) });
  await lease.acquire();
  const scheduler = new CronScheduler({
    nc,
    js: electionSafeJetStream(jetstream(nc)),
    kv,
    names,
    codec: config.fleet.codec,
    jobs: config.cron,
    timeZone: config.fleet.timeZone,
    clock: systemClock,
    log,
  });
  scheduler.start();
  // events of the sources the config maps to an agent become its tasks directly (the rest are Atlas's to plan from)
  const events = new EventRouter({
    nc,
    js: electionSafeJetStream(jetstream(nc)),
    jsm,
    kv,
    names,
    codec: config.fleet.codec,
    routes: config.events.sources,
    clock: systemClock,
    log,
    lookbackMs: config.planning.lookbackHours * 3_600_000,
  });
  events.start();
  const duties = new DutyScheduler({
    nc,
    js: electionSafeJetStream(jetstream(nc)),
    kv,
    names,
    codec: config.fleet.codec,
    agents: config.agents,
    pipelines: config.pipelines,
    timeZone: config.fleet.timeZone,
    clock: systemClock,
    log,
    localTargets: localTargetsIn(FLEET_DIR),
  });
  duties.start();
  // the fleet's quiet-hours chart, running in the singleton so `fleet status` has one answer for the fleet; each agent
  // runtime runs its own copy for its cycles (the same chart on the same window and clock cannot disagree)
  const timers = new CycleScheduler({ log });
  const quietHours = new QuietHoursRunner({ window: { ...config.fleet.quietHours, timeZone: config.fleet.timeZone }, clock: systemClock, scheduler: timers, log: log.child({ component: "quiet-hours" }) });
  const publishQuietHours = () => {
    const record: QuietHoursRecord = { ...quietHours.view(), timeZone: config.fleet.timeZone, updatedAt: systemClock.now() };
    void kv.schedules.put(QUIET_HOURS_KEY, encode(record, config.fleet.codec)).catch((err: unknown) => log.warn({ err }, "quiet hours not recorded"));
  };
  quietHours.onChange(publishQuietHours);
  quietHours.start();
  publishQuietHours();
  const nightly = new NightlyBackup({
    nc,
    names,
    kv,
    codec: config.fleet.codec,
    dir: config.backups.dir,
    at: config.backups.at,
    timeZone: config.fleet.timeZone,
    keep: config.backups.keep,
    clock: systemClock,
    log,
  });
  const nightlyTimer = periodic("nightly backup", () => nightly.tick(), log);
  // the weekly cost report, when reports.weekly is configured: a built-in job with its own last-run record
  const weekly = config.reports.weekly
    ? new WeeklyReportJob({ js: electionSafeJetStream(jetstream(nc)), tasks: kv.tasks, schedules: kv.schedules, names, codec: config.fleet.codec, config, weekly: config.reports.weekly, clock: systemClock, log })
    : undefined;
  const weeklyTimer = weekly ? periodic("weekly report", () => weekly.tick(), log) : undefined;
  // alerts, when configured: notices through OUTBOX, so principals' quiet hours defer them
  const alerts = config.alerts ? new AlertWatcher({ js: electionSafeJetStream(jetstream(nc)), kv, names, codec: config.fleet.codec, config, alerts: config.alerts, clock: systemClock, log }) : undefined;
  alerts?.start();
  // the report-only closeout sweep, when configured
  const sweeper = config.sweeper ? new CloseoutSweeper({ js: electionSafeJetStream(jetstream(nc)), kv, names, codec: config.fleet.codec, sweeper: config.sweeper, timeZone: config.fleet.timeZone, clock: systemClock, log }) : undefined;
  const sweeperTimer = sweeper ? periodic("closeout sweep", () => sweeper.tick(), log) : undefined;
  // memory searches are served under the serving twin (replies only); everything else goes through nc
  const serveNc = await connectServing(connect, nc);
  const memory = await startMemoryOwner({ nc, serveNc, names, kv, config, env, log });
  log.info({ jobs: config.cron.map((j) => j.id), duties: config.agents.flatMap((a) => a.duties.map((d) => `${a.id}.${d.id}`)) }, "scheduler started");
  const running = untilStopped(async () => {
    scheduler.stop();
    await events.stop();
    duties.stop();
    quietHours.stop();
    timers.stop();
    clearInterval(nightlyTimer);
    clearInterval(weeklyTimer);
    alerts?.stop();
    clearInterval(sweeperTimer);
    await memory.stop();
    await lease.release();
    await drainConnections(nc, serveNc);
  }, { log, supervised: options.supervised });
  lease.onLost(() => running.shutdown("lease lost"));
  return running.exitCode;
}

/**
 * A job checked every 30 s, at once first. Its tick reads its last run from KV before anything else: while the server
 * is away that read times out, and the tick is tried again at the next interval instead of ending the process.
 */
function periodic(what: string, tick: () => Promise<unknown>, log: Logger): NodeJS.Timeout {
  const run = () => void tick().catch((err: unknown) => log.warn({ job: what, err }, "job check failed; trying again at the next"));
  run();
  return setInterval(run, 30_000);
}
