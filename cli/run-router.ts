import { connectNats, connectServing, drainConnections, retryWhileServerAway } from "../protocol/index.js";
import { startRouter } from "../router/index.js";
import { dirname, join } from "node:path";
import { configPath, createsResources, FLEET_DIR, loadConfig, natsConnection, rootLogger } from "./options.js";
import type { RunOptions } from "./run.js";
import { untilStopped } from "./until-stopped.js";
import { startTelemetry } from "./telemetry.js";

/**
 * `fleet run router`: one model router in the routers' queue group. Run as many as you like, on any host: requests are
 * shared among them, budgets are kept in KV so the caps hold across all of them, and one dying loses no request that
 * another can take (its callers retry on the TIMEOUT).
 */
export async function runRouter(options: RunOptions, env: NodeJS.ProcessEnv): Promise<number> {
  const config = loadConfig(options, env);
  const log = rootLogger(options, env, "router");
  // a GenAI chat span per model call, under the asking agent's span, when telemetry.otlp is set
  const telemetry = startTelemetry(config.telemetry, { role: "router", prefix: options.prefix ?? config.fleet.prefix, log });
  const connect = { ...natsConnection(options, env), name: `fleet-router-${process.pid}`, logger: log };
  const nc = await connectNats(connect);
  const serveNc = await connectServing(connect, nc);
  // a server that goes away while the router starts (its classifier reads the learned labels) is waited for, not exited on
  const router = await retryWhileServerAway(
    "router start",
    () =>
      startRouter({
        nc, serveNc, config, env, log, createResources: createsResources(options), configDir: dirname(configPath(options)),
        // USAGE records of calls answered while the server is away wait here (beside the fleet's other local state)
        spoolDir: join(FLEET_DIR, "usage-spool"),
        ...(options.prefix ? { prefix: options.prefix } : {}),
        tracer: telemetry.tracer,
      }),
    { log },
  );
  const running = untilStopped(
    async () => {
      await router.stop();
      await drainConnections(nc, serveNc);
      await telemetry.stop();
    },
    { log, supervised: options.supervised },
  );
  return running.exitCode;
}
