import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { pino, destination, type Logger } from "pino";
import { connectNats, FleetNames, openBuckets, FleetError, secretEnvNames, secrets } from "../protocol/index.js";
import { loadFleetConfig, shippedFleetPath, type FleetConfig } from "../config/index.js";

/*
 * The fleet CLI's options and what they resolve to: the NATS URL and credentials, the config and prefix, the root logger,
 * the connection an inspection command opens. (The `fleet context` command is cli/context-command.ts.)
 */

/** Where the CLI's settings come from, read once here: flags first, then the environment, then the running fleet. */
export interface CliOptions {
  nats?: string | undefined;
  prefix?: string | undefined;
  config?: string | undefined;
  json?: boolean | undefined;
  "log-level"?: string | undefined;
  /** a `.nk` nkey seed (as `fleet up` / `fleet creds` write them) or a `.creds` JWT credentials file */
  creds?: string | undefined;
  /** `fleet up --cluster 3`: a local JetStream cluster of that many nodes */
  cluster?: string | undefined;
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

/** Where `fleet up` keeps the generated credentials: one seed per process identity and the server's auth.conf. */
export const CREDS_DIR = join(FLEET_DIR, "creds");

/**
 * Who this process is to NATS: --creds (`.nk`: an nkey seed, `.creds`: JWT credentials); else, for the fleet a `fleet up`
 * in this directory runs (its URL read from .fleet/nats.url), the operator's seed it wrote, so a second terminal needs no
 * flags; else nobody (an open server).
 */
export function natsCredentials(options: CliOptions, env: NodeJS.ProcessEnv): { nkeySeedFile?: string; credsFile?: string } {
  const file = options.creds;
  if (file) {
    if (file.endsWith(".nk")) return { nkeySeedFile: file };
    if (file.endsWith(".creds")) return { credsFile: file };
    throw new FleetError("CONFIG_INVALID", `--creds ${file}: expected an nkey seed (.nk) or a JWT credentials file (.creds)`);
  }
  const operator = join(CREDS_DIR, "operator.nk");
  if (!options.nats && !env.NATS_URL && existsSync(join(FLEET_DIR, "nats.url")) && existsSync(operator)) return { nkeySeedFile: operator };
  return {};
}

/** Where and as whom to connect: spread into connectNats. */
export function natsConnection(options: CliOptions, env: NodeJS.ProcessEnv): { servers: string; nkeySeedFile?: string; credsFile?: string } {
  return { servers: natsUrl(options, env), ...natsCredentials(options, env) };
}

/**
 * Whether this process creates the fleet's streams and buckets at start. One given credentials runs on a secured fleet,
 * where that is the operator's job (`fleet up` does it), so it only opens them.
 */
export function createsResources(options: CliOptions): boolean {
  return !options.creds;
}

export function configPath(options: CliOptions): string {
  return options.config ?? shippedFleetPath(DEFAULT_FLEET);
}

/** The fleet config; given the environment, the secrets it names are registered with the scrubber as well. */
export function loadConfig(options: CliOptions, env?: NodeJS.ProcessEnv): FleetConfig {
  const config = loadFleetConfig(configPath(options));
  if (env) guardSecrets(env, config);
  return config;
}

/** --prefix, then the prefix of the fleet named with --config, then "fleet". */
export function prefixOf(options: CliOptions, config?: FleetConfig): string {
  if (options.prefix) return options.prefix;
  if (config) return config.fleet.prefix;
  return options.config ? loadConfig(options).fleet.prefix : "fleet";
}

/**
 * Registers the secrets this process can see with the scrubber: the variables the config names for them (`apiKeyEnv`,
 * `tokenEnv`, …) and any whose name says it is one. Called by rootLogger and again once the config is loaded.
 */
export function guardSecrets(env: NodeJS.ProcessEnv, config?: FleetConfig): void {
  const names = new Set(secretEnvNames(env));
  if (config) for (const name of configuredSecretEnvNames(config)) names.add(name);
  secrets.add(...[...names].map((name) => env[name]));
}

/** Every `…KeyEnv` / `…TokenEnv` / `…SecretEnv` the config names: the variables holding its secrets. */
function configuredSecretEnvNames(value: unknown, out: string[] = [], depth = 0): string[] {
  if (value === null || typeof value !== "object" || depth > 12) return out;
  for (const [key, item] of Object.entries(value)) {
    if (typeof item === "string" && /(key|token|secret|password)Env$/i.test(key)) out.push(item);
    else configuredSecretEnvNames(item, out, depth + 1);
  }
  return out;
}

/**
 * Known secret fields are censored by path; every line is also run through the process's scrubber just before it is
 * written, so a secret quoted inside a message, an error's text or stack, or a nested object is replaced as well.
 */
export const REDACT_PATHS = [
  "apiKey", "*.apiKey", "token", "*.token", "password", "*.password", "authorization", "*.authorization",
  "headers.authorization", "*.headers.authorization", "*.headers.Authorization", "seed", "*.seed", "botToken", "*.botToken",
];

/** One root logger per process, JSON to stderr, secrets redacted; components take children of it. */
export function rootLogger(options: CliOptions, env: NodeJS.ProcessEnv, name: string, stream?: { write(line: string): void }): Logger {
  guardSecrets(env);
  return pino(
    {
      name,
      level: options["log-level"] ?? env.FLEET_LOG_LEVEL ?? "info",
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      hooks: { streamWrite: (line) => secrets.scrub(line) },
    },
    stream ?? destination(2),
  );
}

/** A short-lived connection for the inspection commands: fails fast when nothing answers. */
export async function inspect(options: CliOptions, env: NodeJS.ProcessEnv) {
  const { servers, ...credentials } = natsConnection(options, env);
  const nc = await connectNats({ servers, ...credentials, name: "fleet-cli", longLived: false });
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
