import { hostname } from "node:os";
import { jetstream } from "@nats-io/jetstream";
import { connectNats, ensureFleetResources, FleetNames } from "../protocol/index.js";
import { CronScheduler, exitWhenParentDies, Lease, NightlyBackup } from "../supervisor/index.js";
import { loadConfig, natsUrl, rootLogger } from "./context.js";
import type { RunOptions } from "./run.js";

/**
 * `fleet run scheduler`: the config's cron jobs and the nightly backup, as a singleton (a second copy stands by for the
 * lease).
 */
export async function runScheduler(options: RunOptions, env: NodeJS.ProcessEnv): Promise<number> {
  const config = loadConfig(options);
  const log = rootLogger(options, env, "scheduler");
  const nc = await connectNats({ servers: natsUrl(options, env), name: "fleet-scheduler", logger: log });
  const names = new FleetNames(options.prefix ?? config.fleet.prefix);
  const { kv } = await ensureFleetResources(nc, names, { maxPayloadBytes: config.fleet.maxPayloadBytes });
  const lease = new Lease({ kv: kv.leases, role: "scheduler", holder: `${hostname()}:${process.pid}`, renewMs: 5_000, log });
  await lease.acquire();
  const scheduler = new CronScheduler({
    nc,
    js: jetstream(nc),
    kv,
    names,
    codec: config.fleet.codec,
    jobs: config.cron,
    timeZone: config.fleet.timeZone,
    clock: { now: () => Date.now() },
    log,
  });
  scheduler.start();
  const nightly = new NightlyBackup({
    nc,
    names,
    kv,
    codec: config.fleet.codec,
    dir: config.backups.dir,
    at: config.backups.at,
    timeZone: config.fleet.timeZone,
    keep: config.backups.keep,
    clock: { now: () => Date.now() },
    log,
  });
  const nightlyTimer = setInterval(() => void nightly.tick(), 30_000);
  void nightly.tick();
  log.info({ jobs: config.cron.map((j) => j.id) }, "scheduler started");
  return new Promise<number>((resolve) => {
    let stopping = false;
    const shutdown = (why: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ why }, "shutting down");
      scheduler.stop();
      clearInterval(nightlyTimer);
      void lease
        .release()
        .then(() => nc.drain())
        .then(
          () => resolve(why === "lease lost" ? 1 : 0),
          () => resolve(1),
        );
    };
    process.on("SIGTERM", () => shutdown("SIGTERM"));
    process.on("SIGINT", () => shutdown("SIGINT"));
    lease.onLost(() => shutdown("lease lost"));
    if (options.supervised) exitWhenParentDies(() => shutdown("parent exited"));
  });
}
