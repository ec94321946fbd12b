import { connectNats, ensureFleetResources, FleetError, FleetNames } from "../protocol/index.js";
import { loadConfig, natsConnection, prefixOf, rootLogger, type CliOptions } from "./options.js";

/**
 * `fleet init [--replicas 1|3]`: creates the fleet's streams and buckets on the server, as the operator, and exits.
 * `fleet up` does this itself before it starts its children; a fleet whose processes are started one by one (each with
 * its own seed, which may only open what exists: docker-compose.yml, several hosts) runs it once first. Safe to run
 * again: what exists is kept (its settings brought up to date).
 */
export async function init(options: CliOptions & { replicas?: string | undefined }, env: NodeJS.ProcessEnv): Promise<number> {
  const config = loadConfig(options, env);
  // the config's fleet.replicas unless --replicas says otherwise (the processes create and scale to the config's)
  const replicas = options.replicas === undefined ? config.fleet.replicas : Number(options.replicas);
  if (replicas !== 1 && replicas !== 3) throw new FleetError("CONFIG_INVALID", `--replicas ${options.replicas}: 1 (one server) or 3 (a three-node cluster)`);
  const { servers, ...credentials } = natsConnection(options, env);
  const names = new FleetNames(prefixOf(options, config));
  const nc = await connectNats({ servers, ...credentials, name: "fleet-init", longLived: false });
  try {
    await ensureFleetResources(nc, names, { maxPayloadBytes: config.fleet.maxPayloadBytes, replicas, log: rootLogger(options, env, "fleet-init") });
  } finally {
    await nc.close();
  }
  console.log(`fleet "${config.fleet.name}": streams and buckets of prefix "${names.prefix}" ready on ${servers} (${replicas} replica${replicas === 1 ? "" : "s"})`);
  return 0;
}
