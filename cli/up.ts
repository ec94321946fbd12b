import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { checkGovernanceConfig, writeFleetCredentials, type FleetCredentials, type Identity } from "../governance/index.js";
import { connectNats, ensureFleetResources, FleetError, FleetNames, retryWhileServerAway, secrets } from "../protocol/index.js";
import { EmbeddedNats, localTargetNames, ProcessSupervisor, type ChildSpec } from "../supervisor/index.js";
import { configPath, CREDS_DIR, FLEET_DIR, loadConfig, natsCredentials, rootLogger, type CliOptions } from "./options.js";
import { childCreds, toolRisks } from "./creds.js";
import { humanLine } from "./log-lines.js";
import { startLocalCluster } from "./up-cluster.js";
import { dashboardToken, SUPERVISED_TOKEN_ENV } from "./dashboard.js";

const CLI = fileURLToPath(new URL("./main.js", import.meta.url));

/**
 * `fleet up`: the embedded default. Uses --nats / NATS_URL when a server answers there, otherwise starts a local
 * nats-server with its store under .fleet/, then runs every agent as its own OS process under the supervisor.
 * Ctrl-C stops in order: children drain and exit (stop intake, finish or hand back work, drain NATS), then the server.
 *
 * Secure by default: the embedded server admits only the fleet's identities (seeds in .fleet/creds/, regenerated
 * permissions each start), each child runs as its own identity, and `fleet` commands in this directory use the
 * operator's seed. On an external server it connects as --creds (none: an open server), and each child gets the seed of
 * its identity beside that file when there is one (`fleet creds <dir>` writes them).
 */
export async function up(options: CliOptions, env: NodeJS.ProcessEnv): Promise<number> {
  const config = loadConfig(options, env);
  // governance would refuse this config at its start and be restarted until the supervisor gave up on the whole fleet:
  // refuse it here, before anything runs, with the path of the field
  // the tool modules load here too, and a tool name no source provides is refused with its path and "did you mean"
  const risks = await toolRisks(config, options);
  checkGovernanceConfig(config, Object.entries(risks).map(([name, risk]) => ({ name, risk })));
  // the operator watches this terminal: the supervisor's own lines are printed like the children's
  const log = rootLogger(options, env, "fleet-up", { write: (line: string) => process.stdout.write(humanLine("fleet", line.trimEnd()) + "\n") });
  const prefix = options.prefix ?? config.fleet.prefix;

  let embedded: EmbeddedNats | undefined;
  let servers = options.nats ?? env.NATS_URL;
  if (servers && !(await answers(servers, natsCredentials(options, env)))) {
    log.warn({ servers }, "no NATS server answers there; starting the embedded one");
    servers = undefined;
  }
  let generated: FleetCredentials | undefined;
  // --cluster 3: a local three-node JetStream cluster instead of the single embedded server; children spread over it
  let cluster: Awaited<ReturnType<typeof startLocalCluster>> | undefined;
  if (options.cluster) {
    generated = writeFleetCredentials(CREDS_DIR, config, risks);
    cluster = await startLocalCluster(FLEET_DIR, Number(options.cluster), config, generated, log);
    servers = cluster.urls.join(",");
  }
  if (!servers) {
    generated = writeFleetCredentials(CREDS_DIR, config, risks);
    // its monitoring endpoint too: the default fleet's duties watch it ({{local.nats-monitor}})
    embedded = await EmbeddedNats.prepare(FLEET_DIR, log, { maxPayload: config.fleet.maxPayloadBytes, authFile: generated.authFile, monitor: true });
  }
  // the embedded server is the first child: restarted like any other when it dies, stopped after every other
  const supervisor = new ProcessSupervisor(embedded ? [serverSpec(embedded, options)] : [], {
    intensity: config.supervisor.intensity,
    periodMs: config.supervisor.periodSeconds * 1000,
    shutdownTimeoutMs: config.supervisor.shutdownTimeoutSeconds * 1000,
    logger: log,
    stdio: "pipe",
    // a child's line that did not come through its scrubbing logger (a crash trace, a runtime warning) is scrubbed here
    onChildOutput: (id, line) => process.stdout.write(humanLine(id, secrets.scrub(line)) + "\n"),
  });
  let stopping: Promise<void> | undefined;
  const shutdown = (why: string) =>
    (stopping ??= (async () => {
      log.info({ why }, "stopping the fleet");
      await supervisor.stop();
      embedded?.cleanup();
      await cluster?.stop();
    })());
  process.on("SIGINT", () => void shutdown("SIGINT"));
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  // read through a function: TypeScript would take `stopping` for undefined after a first check, but a signal sets it
  const interrupted = (): Promise<void> | undefined => stopping;
  /** A start step: when it fails the supervisor is stopped first; after a Ctrl-C its failure is only the stop's doing. */
  const step = async <T>(work: Promise<T>): Promise<T | undefined> => {
    try {
      return await work;
    } catch (err) {
      const stop = interrupted();
      if (stop) return void (await stop);
      await shutdown("start failed");
      throw err;
    }
  };
  await supervisor.start();
  if (embedded) servers = await step(embedded.ready({ failed: supervisor.done }));
  if (interrupted()) return (await interrupted(), 0);
  if (!servers) throw new FleetError("INTERNAL", "no NATS server"); // cannot happen: either one answered or ours did
  const own = generated ? { nkeySeedFile: generated.seedFile("operator") } : natsCredentials(options, env);
  const creds = (identity: Identity) => childCreds(identity, generated?.seedFile, options);

  // create streams and buckets once, before the children race to do it (as the operator: nobody else may); a server
  // that dies meanwhile is restarted by the supervisor, and this is tried again until it answers or the supervisor gives up
  const gaveUp = new AbortController();
  void supervisor.done.then(() => gaveUp.abort());
  const resourcesAt = servers;
  await step(
    retryWhileServerAway(
      "creating the fleet's streams and buckets",
      async () => {
        const nc = await connectNats({ servers: resourcesAt, ...own, name: "fleet-up", longLived: false });
        try {
          await ensureFleetResources(nc, new FleetNames(prefix), { maxPayloadBytes: config.fleet.maxPayloadBytes, replicas: config.fleet.replicas, log });
        } finally {
          await nc.close().catch(() => undefined);
        }
      },
      { log, signal: gaveUp.signal },
    ),
  );
  if (interrupted()) return (await interrupted(), 0);

  const runId = randomUUID();
  const common = ["--config", configPath(options), "--nats", servers, "--prefix", prefix, "--run-id", runId, "--supervised"];
  if (options["log-level"]) common.push("--log-level", options["log-level"]);
  const specs: ChildSpec[] = config.agents.map((agent) => ({
    id: agent.id,
    command: process.execPath,
    args: [CLI, "run", "agent", agent.id, ...common, ...creds(`agent:${agent.id}`)],
    restart: "permanent",
  }));
  // the cron jobs and the nightly backup run in their own process
  // the router first: agents send their steps to it from their first task on
  specs.unshift({ id: "router", command: process.execPath, args: [CLI, "run", "router", ...common, ...creds("router")], restart: "permanent" });
  specs.push({ id: "scheduler", command: process.execPath, args: [CLI, "run", "scheduler", ...common, ...creds("scheduler")], restart: "permanent" });
  // governance: a tool host here (tools run where the fleet runs) and the proposal executor with Sentinel
  specs.push({ id: "tools", command: process.execPath, args: [CLI, "run", "tools", ...common, ...creds("tools")], restart: "permanent" });
  specs.push({ id: "governance", command: process.execPath, args: [CLI, "run", "governance", ...common, ...creds("governance")], restart: "permanent" });
  // one bridge per channel in use: the console prints deliveries and approval requests in this terminal; a chat bridge
  // runs when its section is configured (its token is read from the environment by the bridge itself)
  const usesConsole =
    config.principals.some((p) => p.channel === "console") ||
    config.cron.some((j) => j.delivery !== "none" && j.delivery.channel === "console") ||
    config.agents.some((a) => a.duties.some((d) => d.delivery !== "none" && d.delivery.channel === "console")) ||
    [...config.governance.approvals.channels, ...config.governance.approvals.escalateTo].includes("console");
  if (usesConsole) specs.push({ id: "console", command: process.execPath, args: [CLI, "run", "bridge", "console", ...common, ...creds("bridge:console")], restart: "permanent" });
  const chatToken = { telegram: config.bridges.telegram?.tokenEnv, discord: config.bridges.discord?.botTokenEnv };
  for (const chat of ["telegram", "discord"] as const) {
    const tokenEnv = chatToken[chat];
    if (!tokenEnv) continue;
    // without its token the bridge could only crash and be restarted until the supervisor gives up on the whole fleet;
    // its requests wait in APPROVALS instead, and a bridge started later delivers them
    if (!env[tokenEnv]) log.warn({ bridge: chat, variable: tokenEnv }, "chat bridge not started: its token variable is not set");
    else specs.push({ id: chat, command: process.execPath, args: [CLI, "run", "bridge", chat, ...common, ...creds(`bridge:${chat}`)], restart: "permanent" });
  }
  // the business stand-in, when the config asks for it, before the agents' first business tool call
  if (config.business?.standin) specs.push({ id: "standin", command: process.execPath, args: [CLI, "run", "standin", ...common], restart: "permanent" });
  // the demo site the default fleet's duties watch, when a duty names it; it needs no NATS identity (it serves HTTP only)
  const demoSite = config.agents.some((a) => a.duties.some((d) => localTargetNames(d.input).includes("demo-site")));
  if (demoSite) specs.push({ id: "demo-site", command: process.execPath, args: [CLI, "run", "demo-site", ...common], restart: "permanent" });
  // the email bridge runs when bridges.email is configured; with a login, only once its password variable is set
  const email = config.bridges.email;
  if (email) {
    if (email.user !== undefined && !env[email.passwordEnv]) log.warn({ bridge: "email", variable: email.passwordEnv }, "email bridge not started: its password variable is not set");
    else specs.push({ id: "email", command: process.execPath, args: [CLI, "run", "bridge", "email", ...common, ...creds("bridge:email")], restart: "permanent" });
  }
  // the dashboard connects as the operator (it approves as `fleet approve` does); its token is printed below
  const board = config.dashboard.enabled ? dashboardToken(config, env) : undefined;
  if (board) {
    specs.push({
      id: "dashboard",
      command: process.execPath,
      args: [CLI, "dashboard", ...common, ...creds("operator")],
      env: { [SUPERVISED_TOKEN_ENV]: board.token },
      restart: "transient",
    });
  }
  if (config.webhook) specs.push({ id: "webhook", command: process.execPath, args: [CLI, "run", "webhook", ...common, ...creds("webhook")], restart: "permanent" });
  // the A2A gateway, when configured; like a chat bridge without its token, one whose peer tokens are unset stays down
  // (it would only crash until the supervisor gave up on the fleet) and says which variable is missing
  const unsetPeerTokens = (config.gateway?.peers ?? []).filter((p) => !env[p.tokenEnv]).map((p) => p.tokenEnv);
  if (config.gateway?.enabled && unsetPeerTokens.length > 0) log.warn({ variables: unsetPeerTokens }, "a2a gateway not started: peer token variables are not set");
  else if (config.gateway?.enabled) specs.push({ id: "gateway", command: process.execPath, args: [CLI, "run", "gateway", ...common, ...creds("gateway")], restart: "permanent" });
  for (const spec of specs) {
    // Ctrl-C while the fleet is still starting: the rest is not started
    if (interrupted()) break;
    await step(supervisor.startChild(spec));
  }
  if (interrupted()) return (await interrupted(), 0);
  const duties = config.agents.reduce((n, a) => n + a.duties.length, 0);
  console.log(
    `fleet "${config.fleet.name}" is up: ${config.agents.length} agents, the router, the scheduler, governance and a tool host (${duties} duties, ${config.cron.length} cron jobs, backups at ${config.backups.at}) on ${servers}${embedded ? ` (embedded, store in ${FLEET_DIR}/)` : ""}\n` +
      (demoSite ? `  the demo site the duties watch is served here: npx fleet demo break (it answers 503), npx fleet demo fix\n` : "") +
      (generated ? `  each process has its own NATS identity (${CREDS_DIR}/); fleet commands here use ${generated.seedFile("operator")}\n` : "") +
      (board
        ? `  dashboard: http://${config.dashboard.host}:${config.dashboard.port}/` +
          (board.from && board.from !== "fleet up" ? ` (log in with the token in $${board.from})\n` : `login?token=${board.token}\n  dashboard login token (this start only): ${board.token}\n`)
        : "") +
      `  in another terminal: npx fleet status | npx fleet send scout "check the competitors' pricing pages"\n` +
      `  Ctrl-C stops everything`,
  );

  const exit = await supervisor.done;
  await shutdown(exit.reason);
  if (exit.reason === "gave-up") {
    console.error(`fleet stopped: ${exit.error.message}`);
    return 1;
  }
  return 0;
}

/** The embedded server's watchdog (`fleet run nats-server <dir>`) as the supervisor's child. */
function serverSpec(server: EmbeddedNats, options: CliOptions): ChildSpec {
  const args = [CLI, "run", "nats-server", server.dir, ...(options["log-level"] ? ["--log-level", options["log-level"]] : [])];
  // a server that writes its store and closes its connections gets longer than an agent does; the watchdog kills it at 8 s
  return { id: "nats", command: process.execPath, args, restart: "permanent", shutdownTimeoutMs: 10_000 };
}

/** Whether a server is there; one that refuses our credentials is there (and the connect after this says why). */
async function answers(servers: string, credentials: { nkeySeedFile?: string; credsFile?: string }): Promise<boolean> {
  try {
    const nc = await connectNats({ servers, ...credentials, name: "fleet-probe", longLived: false });
    await nc.close();
    return true;
  } catch (err) {
    return err instanceof FleetError && err.code === "PERMISSION_DENIED";
  }
}
