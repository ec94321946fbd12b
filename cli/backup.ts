import { resolve } from "node:path";
import { connectNats, FleetNames } from "../protocol/index.js";
import { backupFleet, restoreFleet } from "../supervisor/index.js";
import { inspect, natsConnection, prefixOf, rootLogger, type CliOptions } from "./options.js";
import { printTable } from "./status.js";

export interface BackupCliOptions extends CliOptions {
  overwrite?: boolean | undefined;
}

export interface RestoreCliOptions extends CliOptions {
  force?: boolean | undefined;
}

/** `fleet backup <dir> [--overwrite]`: every stream and bucket that matters, as JSON Lines files plus a manifest. */
export async function backup(positionals: string[], options: BackupCliOptions, env: NodeJS.ProcessEnv): Promise<number> {
  const [dir] = positionals;
  if (!dir) {
    console.error("usage: fleet backup <dir> [--overwrite]");
    return 2;
  }
  const log = quietLogger(options, env, "fleet-backup");
  const { nc, names } = await inspect(options, env);
  try {
    const manifest = await backupFleet(nc, names, resolve(dir), log, { overwrite: options.overwrite ?? false });
    if (options.json) {
      console.log(JSON.stringify(manifest, null, 2));
      return 0;
    }
    const rows = manifest.streams.map((s) => [s.name, String(s.messages), s.messages ? `${s.firstSeq}..${s.lastSeq}` : "-", s.file, s.sha256.slice(0, 12)]);
    printTable(["STREAM", "MESSAGES", "SEQUENCES", "FILE", "SHA256"], rows);
    console.log(`\nbacked up ${manifest.streams.length} streams, ${total(manifest.streams)} messages of fleet "${names.prefix}" to ${resolve(dir)}`);
    return 0;
  } finally {
    await nc.close();
  }
}

/**
 * `fleet restore <dir> [--force]`: checks every file against the manifest, then recreates the streams and buckets. Meant
 * for a stopped fleet; the target server may be empty (no `fleet up` needed first).
 */
export async function restore(positionals: string[], options: RestoreCliOptions, env: NodeJS.ProcessEnv): Promise<number> {
  const [dir] = positionals;
  if (!dir) {
    console.error("usage: fleet restore <dir> [--force]");
    return 2;
  }
  const log = quietLogger(options, env, "fleet-restore");
  // not inspect(): it needs the fleet's buckets to exist, and restoring onto a fresh server is the point
  const nc = await connectNats({ ...natsConnection(options, env), name: "fleet-cli", longLived: false });
  try {
    const names = new FleetNames(prefixOf(options));
    const report = await restoreFleet(nc, names, resolve(dir), log, { force: options.force ?? false });
    if (options.json) {
      console.log(JSON.stringify(report, null, 2));
      return 0;
    }
    const rows = report.perStream.map((s) => [s.name, String(s.messages), String(s.duplicates), s.replaced ? "yes" : "no"]);
    printTable(["STREAM", "MESSAGES", "DUPLICATES", "REPLACED"], rows);
    console.log(`\nrestored ${report.streams} streams, ${report.messages} messages of fleet "${names.prefix}" from ${resolve(dir)}`);
    if (report.duplicates) console.log(`${report.duplicates} messages were dropped by the server as duplicates (same Nats-Msg-Id)`);
    return 0;
  } finally {
    await nc.close();
  }
}

function total(streams: Array<{ messages: number }>): number {
  return streams.reduce((n, s) => n + s.messages, 0);
}

/** Progress is in the table on stdout; the JSON log on stderr shows only warnings unless a level is asked for. */
function quietLogger(options: CliOptions, env: NodeJS.ProcessEnv, name: string) {
  return rootLogger({ ...options, "log-level": options["log-level"] ?? env.FLEET_LOG_LEVEL ?? "warn" }, env, name);
}
