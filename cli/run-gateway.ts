import { checkPeerTokens, Gateway } from "../bridges/index.js";
import { connectNats, connectServing, drainConnections, FleetError, FleetNames, systemClock } from "../protocol/index.js";
import { loadConfig, natsConnection, prefixOf, rootLogger } from "./options.js";
import type { RunOptions } from "./run.js";
import { untilStopped } from "./until-stopped.js";

/**
 * `fleet run gateway`: the A2A HTTP gateway of the config's `gateway:` section. The peers' tokens are read here, from the
 * variables their `tokenEnv` name (a peer whose variable is unset is refused at start, naming the field).
 */
export async function runGateway(options: RunOptions, env: NodeJS.ProcessEnv): Promise<number> {
  const config = loadConfig(options, env);
  if (!config.gateway) throw new FleetError("CONFIG_INVALID", "the config has no gateway: section (gateway: { port: 8420, peers: [...] })");
  const settings = config.gateway;
  const tokens = Object.fromEntries(settings.peers.map((p) => [p.tokenEnv, env[p.tokenEnv]]));
  checkPeerTokens(settings, tokens);
  const log = rootLogger(options, env, "gateway");
  const connect = { ...natsConnection(options, env), name: "fleet-gateway", logger: log };
  const nc = await connectNats(connect);
  // its serving twin answers NATS micro discovery (where it listens, whom it serves): `fleet status` finds it so
  const serveNc = await connectServing(connect, nc);
  let gateway: Gateway;
  try {
    gateway = await Gateway.start({ nc, serveNc, names: new FleetNames(prefixOf(options, config)), config, settings, tokens, clock: systemClock, log });
  } catch (err) {
    await drainConnections(nc, serveNc);
    throw err;
  }
  if (!options.supervised) console.log(`a2a gateway: ${gateway.baseUrl}/.well-known/agent-card.json (peers: ${settings.peers.map((p) => p.id).join(", ") || "none"})`);
  return untilStopped(async () => {
    await gateway.stop();
    await drainConnections(nc, serveNc);
  }, { log, supervised: options.supervised }).exitCode;
}
