import { rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { jetstreamManager } from "@nats-io/jetstream";
import type { Logger } from "pino";
import type { FleetConfig } from "../config/index.js";
import type { FleetCredentials } from "../governance/index.js";
import { connectNats, FleetError } from "../protocol/index.js";
import { EmbeddedNats, findNatsServer, localClusterNodes, ProcessSupervisor, routeSecret } from "../supervisor/index.js";

/**
 * `fleet up --cluster 3`: a local three-node JetStream cluster for trying the clustered fleet on one machine. Each node
 * is a supervised child (restarted on its store when it dies) admitting only the fleet's identities, routes
 * authenticated by the fleet's route secret; its store under `.fleet/cluster/<node>/`. Resolves once JetStream has a
 * leader, with every node's client URL.
 */
export async function startLocalCluster(
  fleetDir: string,
  size: number,
  config: FleetConfig,
  creds: FleetCredentials,
  log: Logger,
): Promise<{ urls: string[]; stop(): Promise<void> }> {
  if (config.fleet.replicas > size) throw new FleetError("CONFIG_INVALID", `fleet.replicas is ${config.fleet.replicas}: a ${size}-node cluster cannot hold that many copies`);
  if (config.fleet.replicas === 1) log.warn({ size }, "fleet.replicas is 1: each stream lives on one node only; set fleet.replicas: 3 to survive the loss of a node");
  const nodes = await localClusterNodes({
    dir: join(resolve(fleetDir), "cluster"),
    size,
    clusterName: config.fleet.name,
    authFile: creds.authFile,
    routePassword: routeSecret(creds.dir),
    maxPayload: config.fleet.maxPayloadBytes,
  });
  const binary = findNatsServer();
  const supervisor = new ProcessSupervisor(
    nodes.map((node) => ({ id: `nats-${node.spec.name}`, command: binary, args: ["-c", node.writeConfig()], restart: "permanent" as const, detached: true })),
    { intensity: config.supervisor.intensity, periodMs: config.supervisor.periodSeconds * 1000, shutdownTimeoutMs: config.supervisor.shutdownTimeoutSeconds * 1000, logger: log, stdio: "pipe", onChildOutput: () => undefined },
  );
  await supervisor.start();
  const urls = nodes.map((n) => n.url);
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const nc = await connectNats({ servers: urls, nkeySeedFile: creds.seedFile("operator"), name: "fleet-up-cluster", longLived: false });
      try {
        await (await jetstreamManager(nc, { timeout: 2_000 })).getAccountInfo();
      } finally {
        await nc.close();
      }
      break;
    } catch (err) {
      if (Date.now() > deadline) {
        await supervisor.stop();
        throw new FleetError("NATS_UNAVAILABLE", `the local cluster has no JetStream leader after 30 s`, { cause: err });
      }
      await sleep(250);
    }
  }
  log.info({ urls, store: join(resolve(fleetDir), "cluster") }, "local JetStream cluster started");
  // `fleet status` and the other commands in this directory find the fleet without flags, as with the embedded server
  const urlFile = EmbeddedNats.urlFile(fleetDir);
  writeFileSync(urlFile, urls.join(",") + "\n");
  return {
    urls,
    stop: async () => {
      await supervisor.stop();
      rmSync(urlFile, { force: true });
    },
  };
}
