import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { pino, destination, type Logger } from "pino";
import { connectNats, FleetNames, openBuckets, FleetError } from "../protocol/index.js";
import { loadFleetConfig, shippedFleetPath, type FleetConfig } from "../config/index.js";

/** Where the CLI's settings come from, read once here: flags first, then the environment, then the running fleet. */
export interface CliOptions {
  nats?: string | undefined;
  prefix?: string | undefined;
  config?: string | undefined;
  json?: boolean | undefined;
  "log-level"?: string | undefined;
}

export const FLEET_DIR = ".fleet";
export const DEFAULT_FLEET = "local";

/** --nats, then NATS_URL, then the URL a `fleet up` in this directory wrote, then the NATS default port. */
export function natsUrl(options: CliOptions, env: NodeJS.ProcessEnv): string {
  if (options.nats) return options.nats;
  if (env.NATS_URL) return env.NATS_URL;
  const file = join(FLEET_DIR, "nats.url");
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  return "nats://127.0.0.1:4222";
}

export function configPath(options: CliOptions): string {
  return options.config ?? shippedFleetPath(DEFAULT_FLEET);
}

export function loadConfig(options: CliOptions): FleetConfig {
  return loadFleetConfig(configPath(options));
}

export function prefixOf(options: CliOptions, config?: FleetConfig): string {
  return options.prefix ?? config?.fleet.prefix ?? "fleet";
}

/** One root logger per process, JSON to stderr, secrets redacted; components take children of it. */
export function rootLogger(options: CliOptions, env: NodeJS.ProcessEnv, name: string, stream?: { write(line: string): void }): Logger {
  return pino(
    {
      name,
      level: options["log-level"] ?? env.FLEET_LOG_LEVEL ?? "info",
      redact: { paths: ["*.apiKey", "*.token", "*.password", "*.authorization"], censor: "[redacted]" },
    },
    stream ?? destination(2),
  );
}

/** A short-lived connection for the inspection commands: fails fast when nothing answers. */
export async function inspect(options: CliOptions, env: NodeJS.ProcessEnv) {
  const servers = natsUrl(options, env);
  const nc = await connectNats({ servers, name: "fleet-cli", longLived: false });
  const names = new FleetNames(prefixOf(options));
  try {
    // opening a bucket does not check that it exists; the fleet's task stream tells whether a fleet lives here
    await (await jetstreamManager(nc)).streams.info(names.stream("TASKS"));
    const kv = await openBuckets(nc, names);
    return { nc, names, kv, servers };
  } catch (cause) {
    await nc.close();
    throw new FleetError("AGENT_UNAVAILABLE", `no fleet "${names.prefix}" on ${servers} (start one with: npx fleet up)`, { cause });
  }
}
