import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { connectNats, ensureFleetResources, FleetNames } from "../protocol/index.js";
import { EmbeddedNats, ProcessSupervisor, type ChildSpec } from "../supervisor/index.js";
import { configPath, FLEET_DIR, loadConfig, rootLogger, type CliOptions } from "./context.js";
import { humanLine } from "./log-lines.js";

const CLI = fileURLToPath(new URL("./main.js", import.meta.url));

/**
 * `fleet up`: the embedded default. Uses --nats / NATS_URL when a server answers there, otherwise starts a local
 * nats-server with its store under .fleet/, then runs every agent as its own OS process under the supervisor.
 * Ctrl-C stops in order: children drain and exit (stop intake, finish or hand back work, drain NATS), then the server.
 */
export async function up(options: CliOptions, env: NodeJS.ProcessEnv): Promise<number> {
  const config = loadConfig(options);
  // the operator watches this terminal: the supervisor's own lines are printed like the children's
  const log = rootLogger(options, env, "fleet-up", { write: (line: string) => process.stdout.write(humanLine("fleet", line.trimEnd()) + "\n") });
  const prefix = options.prefix ?? config.fleet.prefix;

  let embedded: EmbeddedNats | undefined;
  let servers = options.nats ?? env.NATS_URL;
  if (servers && !(await answers(servers))) {
    log.warn({ servers }, "no NATS server answers there; starting the embedded one");
    servers = undefined;
  }
  if (!servers) {
    embedded = await EmbeddedNats.start(FLEET_DIR, log, { maxPayload: config.fleet.maxPayloadBytes });
    servers = embedded.url;
  }

  // create streams and buckets once, before the children race to do it
  const nc = await connectNats({ servers, name: "fleet-up", longLived: false });
  await ensureFleetResources(nc, new FleetNames(prefix), { maxPayloadBytes: config.fleet.maxPayloadBytes });
  await nc.close();

  const runId = randomUUID();
  const common = ["--config", configPath(options), "--nats", servers, "--prefix", prefix, "--run-id", runId, "--supervised"];
  if (options["log-level"]) common.push("--log-level", options["log-level"]);
  const specs: ChildSpec[] = config.agents.map((agent) => ({
    id: agent.id,
    command: process.execPath,
    args: [CLI, "run", "agent", agent.id, ...common],
    restart: "permanent",
  }));
  // the cron jobs and the nightly backup run in their own process
  // the router first: agents send their steps to it from their first task on
  specs.unshift({ id: "router", command: process.execPath, args: [CLI, "run", "router", ...common], restart: "permanent" });
  specs.push({ id: "scheduler", command: process.execPath, args: [CLI, "run", "scheduler", ...common], restart: "permanent" });
  // the console channel prints deliveries in this terminal; chat channels get their bridges with the governance issue
  const usesConsole = config.principals.some((p) => p.channel === "console") || config.cron.some((j) => j.delivery !== "none" && j.delivery.channel === "console");
  if (usesConsole) specs.push({ id: "console", command: process.execPath, args: [CLI, "run", "bridge", "console", ...common], restart: "permanent" });
  if (config.webhook) specs.push({ id: "webhook", command: process.execPath, args: [CLI, "run", "webhook", ...common], restart: "permanent" });
  const supervisor = new ProcessSupervisor(specs, {
    intensity: config.supervisor.intensity,
    periodMs: config.supervisor.periodSeconds * 1000,
    shutdownTimeoutMs: config.supervisor.shutdownTimeoutSeconds * 1000,
    logger: log,
    stdio: "pipe",
    onChildOutput: (id, line) => process.stdout.write(humanLine(id, line) + "\n"),
  });
  await supervisor.start();
  console.log(
    `fleet "${config.fleet.name}" is up: ${config.agents.length} agents, the router and the scheduler (${config.cron.length} cron jobs, backups at ${config.backups.at}) on ${servers}${embedded ? ` (embedded, store in ${FLEET_DIR}/)` : ""}\n` +
      `  in another terminal: npx fleet status | npx fleet send scout "check the competitors' pricing pages"\n` +
      `  Ctrl-C stops everything`,
  );

  let stopping: Promise<void> | undefined;
  const shutdown = (why: string) =>
    (stopping ??= (async () => {
      log.info({ why }, "stopping the fleet");
      await supervisor.stop();
      await embedded?.stop();
    })());
  process.on("SIGINT", () => void shutdown("SIGINT"));
  process.on("SIGTERM", () => void shutdown("SIGTERM"));

  const exit = await supervisor.done;
  await shutdown(exit.reason);
  if (exit.reason === "gave-up") {
    console.error(`fleet stopped: ${exit.error.message}`);
    return 1;
  }
  return 0;
}

async function answers(servers: string): Promise<boolean> {
  try {
    const nc = await connectNats({ servers, name: "fleet-probe", longLived: false });
    await nc.close();
    return true;
  } catch {
    return false;
  }
}
