import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import { localParts, nextDailyAt } from "../config/index.js";
import { LastRun } from "./last-run.js";
import type { Clock, CodecName, FleetNames } from "../protocol/index.js";
import { backupFleet } from "./backup.js";

export interface NightlyBackupOptions {
  nc: NatsConnection;
  names: FleetNames;
  kv: { schedules: KV };
  codec: CodecName;
  /** backups go to <dir>/<yyyy-mm-dd> */
  dir: string;
  /** local time in the fleet's time zone */
  at: string;
  timeZone: string;
  /** how many daily backups to keep */
  keep: number;
  clock: Clock;
  log: Logger;
}

const RECORD_KEY = "backup.nightly";

/**
 * The nightly backup (02:00 by default, inside quiet hours on purpose): writes the fleet's streams and buckets to a dated
 * directory and keeps the newest `keep`. Its last run is kept in KV like a cron job's, so a restarted scheduler does not
 * run it twice, and a night missed while down is made up once.
 */
export class NightlyBackup {
  private busy = false;
  private readonly log: Logger;
  private readonly lastRun: LastRun;

  constructor(private readonly options: NightlyBackupOptions) {
    this.log = options.log.child({ component: "nightly-backup" });
    this.lastRun = new LastRun(options.kv.schedules, RECORD_KEY, options.codec);
  }

  async tick(): Promise<string | undefined> {
    if (this.busy) return undefined;
    const now = this.options.clock.now();
    const last = await this.lastRun.get();
    if (last === undefined) {
      await this.lastRun.set(now);
      return undefined;
    }
    let due = nextDailyAt(this.options.at, this.options.timeZone, last);
    if (due > now) return undefined;
    for (let next = nextDailyAt(this.options.at, this.options.timeZone, due); next <= now; next = nextDailyAt(this.options.at, this.options.timeZone, next)) due = next;
    this.busy = true;
    try {
      const { year, month, day } = localParts(due, this.options.timeZone);
      const target = join(this.options.dir, `${year}-${String(month).padStart(2, "0")}-${String(day).padStart(2, "0")}`);
      mkdirSync(this.options.dir, { recursive: true });
      const manifest = await backupFleet(this.options.nc, this.options.names, target, this.log, { overwrite: true });
      await this.lastRun.set(due);
      this.prune();
      this.log.info({ dir: target, streams: manifest.streams.length }, "nightly backup written");
      return target;
    } catch (err) {
      this.log.error({ err }, "nightly backup failed; it will be retried");
      return undefined;
    } finally {
      this.busy = false;
    }
  }

  private prune(): void {
    const dated = readdirSync(this.options.dir).filter((d) => /^\d{4}-\d{2}-\d{2}$/.test(d)).sort();
    for (const old of dated.slice(0, Math.max(0, dated.length - this.options.keep))) rmSync(join(this.options.dir, old), { recursive: true, force: true });
  }
}
