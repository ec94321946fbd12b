import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { consoleSender, OutboxDispatcher } from "../bridges/index.js";
import { connectNats, ensureFleetResources, FleetError, FleetNames } from "../protocol/index.js";
import { loadConfig, natsUrl, rootLogger } from "./context.js";
import type { RunOptions } from "./run.js";
import { untilStopped } from "./until-stopped.js";

/** `fleet run bridge <channel>`: delivers that channel's OUTBOX messages. Only `console` exists until the chat bridges. */
export async function runBridge(channel: string | undefined, options: RunOptions, env: NodeJS.ProcessEnv): Promise<number> {
  if (channel !== "console") {
    throw new FleetError("UNSUPPORTED_OPERATION", `no bridge for channel "${channel ?? ""}" yet: the console bridge exists; Telegram, Discord and Slack come with the governance issue`);
  }
  const config = loadConfig(options);
  const log = rootLogger(options, env, `bridge-${channel}`);
  const nc = await connectNats({ servers: natsUrl(options, env), name: `fleet-bridge-${channel}`, logger: log });
  const names = new FleetNames(options.prefix ?? config.fleet.prefix);
  await ensureFleetResources(nc, names, { maxPayloadBytes: config.fleet.maxPayloadBytes });
  const dispatcher = new OutboxDispatcher({
    js: jetstream(nc),
    jsm: await jetstreamManager(nc),
    names,
    sender: consoleSender((line) => process.stdout.write(line + "\n")),
    principals: config.principals,
    timeZone: config.fleet.timeZone,
    clock: { now: () => Date.now() },
    log,
  });
  await dispatcher.start();
  return untilStopped(async () => {
    await dispatcher.stop();
    await nc.drain();
  }, { log, supervised: options.supervised }).exitCode;
}
