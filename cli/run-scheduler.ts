import { hostname } from "node:os";
import { jetstream } from "@nats-io/jetstream";
import { connectNats, FleetNames, openFleetResources } from "../protocol/index.js";
import { CronScheduler, Lease, NightlyBackup } from "../supervisor/index.js";
import { startMemoryOwner } from "./memory-owner.js";
import { untilStopped } from "./until-stopped.js";
import { createsResources, loadConfig, natsConnection, rootLogger } from "./options.js";
import type { RunOptions } from "./run.js";

/**
 * `fleet run scheduler`: the config's cron jobs and the nightly backup, as a singleton (a second copy stands by for the
 * lease).
 */
export async function runScheduler(options: RunOptions, env: NodeJS.ProcessEnv): Promise<number> {
  const config = loadConfig(options);
  const log = rootLogger(options, env, "scheduler");
  const nc = await connectNats({ ...natsConnection(options, env), name: "fleet-scheduler", logger: log });
  const names = new FleetNames(options.prefix ?? config.fleet.prefix);
  const { kv } = await openFleetResources(nc, names, { maxPayloadBytes: config.fleet.maxPayloadBytes, create: createsResources(options) });
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
  const memory = await startMemoryOwner({ nc, names, kv, config, env, log });
  log.info({ jobs: config.cron.map((j) => j.id) }, "scheduler started");
  const running = untilStopped(async () => {
    scheduler.stop();
    clearInterval(nightlyTimer);
    await memory.stop();
    await lease.release();
    await nc.drain();
  }, { log, supervised: options.supervised });
  lease.onLost(() => running.shutdown("lease lost"));
  return running.exitCode;
}
