import { WakeWebhook } from "../bridges/index.js";
import { jetstream } from "@nats-io/jetstream";
import { connectNats, FleetError, FleetNames, systemClock } from "../protocol/index.js";
import { loadConfig, natsConnection, rootLogger } from "./options.js";
import type { RunOptions } from "./run.js";
import { untilStopped } from "./until-stopped.js";

/** `fleet run webhook`: the wake-up and event endpoints of the config's `webhook:` section. */
export async function runWebhook(options: RunOptions, env: NodeJS.ProcessEnv): Promise<number> {
  const config = loadConfig(options, env);
  if (!config.webhook) throw new FleetError("CONFIG_INVALID", "the config has no webhook: section (webhook: { port: 8787 })");
  const token = config.webhook.tokenEnv ? env[config.webhook.tokenEnv] : undefined;
  if (config.webhook.tokenEnv && !token) throw new FleetError("CONFIG_INVALID", `webhook.tokenEnv names ${config.webhook.tokenEnv}, which is not set`);
  const log = rootLogger(options, env, "webhook");
  const nc = await connectNats({ ...natsConnection(options, env), name: "fleet-webhook", logger: log });
  const webhook = new WakeWebhook({
    nc,
    names: new FleetNames(options.prefix ?? config.fleet.prefix),
    agents: config.agents.map((a) => a.id),
    token,
    port: config.webhook.port,
    host: config.webhook.host,
    log,
    js: jetstream(nc),
    codec: config.fleet.codec,
    clock: systemClock,
  });
  await webhook.start();
  return untilStopped(async () => {
    await webhook.stop();
    await nc.drain();
  }, { log, supervised: options.supervised }).exitCode;
}
