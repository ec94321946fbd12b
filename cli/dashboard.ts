import { userInfo } from "node:os";
import { Dashboard, DashboardAuth } from "../bridges/index.js";
import type { FleetConfig } from "../config/index.js";
import { connectNats, FleetNames, openBuckets } from "../protocol/index.js";
import { loadConfig, natsConnection, prefixOf, rootLogger } from "./options.js";
import type { RunOptions } from "./run.js";
import { untilStopped } from "./until-stopped.js";

/** The variable `fleet up` hands its child the login token in (so the token it prints outlives a dashboard restart). */
export const SUPERVISED_TOKEN_ENV = "FLEET_DASHBOARD_SUPERVISED_TOKEN";

/** The login token: from the variable `dashboard.tokenEnv` names, else the one `fleet up` passed, else a random one. */
export function dashboardToken(config: FleetConfig, env: NodeJS.ProcessEnv): { token: string; from: string | undefined } {
  const named = config.dashboard.tokenEnv;
  if (named && env[named]) return { token: env[named], from: named };
  if (env[SUPERVISED_TOKEN_ENV]) return { token: env[SUPERVISED_TOKEN_ENV], from: "fleet up" };
  return { token: DashboardAuth.randomToken(), from: undefined };
}

/**
 * `fleet dashboard`: serves the dashboard and /metrics on `dashboard.host:port` (127.0.0.1:7070 by default), connected
 * as the operator like every `fleet` command, and prints the URL with the login token.
 */
export async function dashboard(options: RunOptions & { port?: string | undefined }, env: NodeJS.ProcessEnv): Promise<number> {
  const config = loadConfig(options, env);
  const log = rootLogger(options, env, "dashboard");
  const { token, from } = dashboardToken(config, env);
  const nc = await connectNats({ ...natsConnection(options, env), name: "fleet-dashboard", logger: log });
  const names = new FleetNames(prefixOf(options, config));
  let running: Dashboard;
  try {
    const kv = await openBuckets(nc, names);
    running = await Dashboard.start({
      nc,
      names,
      kv,
      config,
      settings: { ...config.dashboard, ...(options.port !== undefined ? { port: Number(options.port) } : {}) },
      token,
      operator: `dashboard:${userInfo().username}`,
      clock: { now: () => Date.now() },
      log,
    });
  } catch (err) {
    await nc.close();
    // under `fleet up` a taken port must not cost the fleet: restarting could only fail again until the supervisor gave
    // up on every process, so the dashboard says why and stays down (a transient child that exited cleanly)
    if (options.supervised && isAddressInUse(err)) {
      log.error({ host: config.dashboard.host, port: config.dashboard.port }, "dashboard not started: the port is taken (set dashboard.port)");
      return 0;
    }
    throw err;
  }
  // under `fleet up` the parent prints the URL and token once; a restarted child only logs where it listens
  if (!options.supervised) {
    console.log(
      from
        ? `dashboard: ${running.url}/ (log in with the token in $${from}; Prometheus: ${running.url}/metrics with Authorization: Bearer <token>)`
        : `dashboard: ${running.url}/login?token=${token}\n  login token (this start only): ${token}\n  Prometheus: ${running.url}/metrics with Authorization: Bearer <token>`,
    );
  }
  return untilStopped(async () => {
    await running.stop();
    await nc.drain();
  }, { log, supervised: options.supervised }).exitCode;
}

function isAddressInUse(err: unknown): boolean {
  return err instanceof Error && "code" in err && err.code === "EADDRINUSE";
}
