import { existsSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { FleetConfig } from "../config/index.js";
import { AUTH_FILE, fleetToolRisks, loadFleetTools, seedFileName, writeFleetCredentials, type Identity } from "../governance/index.js";
import type { RiskLevel } from "../protocol/index.js";
import { clusterNodeConfig, routeSecret, type ClusterNodeSpec } from "../supervisor/index.js";
import { configPath, CREDS_DIR, loadConfig, type CliOptions } from "./options.js";

/**
 * The tools' risk levels the broker's permissions are built from (built-in tools and the config's tool modules, loaded
 * and checked: a config naming a tool no source provides is refused here): an agent gets the subject of an allowed tool
 * only when it is AUTO or AUTO+; PROPOSE and CONFIRM tools are governance's to call.
 */
export async function toolRisks(config: FleetConfig, options: CliOptions): Promise<Record<string, RiskLevel>> {
  return fleetToolRisks(await loadFleetTools(config, configPath(options)));
}

/**
 * `fleet creds [dir]`: the credentials for a fleet on an external NATS cluster: one nkey seed per process identity and
 * the authorization block for the servers. Existing seeds in the directory are kept, so running it again after a config
 * change only rewrites the permissions.
 */
export async function creds(positionals: string[], options: CliOptions): Promise<number> {
  const config = loadConfig(options);
  const dir = resolve(positionals[0] ?? CREDS_DIR);
  const written = writeFleetCredentials(dir, config, await toolRisks(config, options));
  const nodes = options.cluster ? writeClusterConfigs(dir, options.cluster, config, written.authFile) : [];
  const identities = written.users.map((u) => u.identity);
  if (options.json) {
    console.log(JSON.stringify({ dir, authFile: written.authFile, clusterConfigs: nodes, identities: written.users.map((u) => ({ identity: u.identity, publicKey: u.publicKey, seedFile: written.seedFile(u.identity) })) }, null, 2));
    return 0;
  }
  const seed = (identity: Identity) => written.seedFile(identity);
  const firstAgent = config.agents[0]?.id ?? "<id>";
  console.log(
    [
      `wrote ${identities.length} identities to ${dir} (seeds mode 0600: keep them secret) and the servers' permissions to ${written.authFile}`,
      "",
      ...(nodes.length
        ? [
            `cluster: one config per node (${nodes.join(", ")}), routes authenticated with ${join(dir, "route.secret")}: on each host copy its`,
            "   nats-<node>.conf and auth.conf into one directory and run `nats-server -c nats-<node>.conf` (store /var/lib/nats/<node>);",
            "   set fleet.replicas: 3 in the config so the streams and buckets are spread over the three",
          ]
        : []),
      "1. on every nats-server of the cluster (a server without accounts of its own): copy auth.conf next to its config,",
      "   add the line below to the config and reload (nats-server resolves an include against the config's directory):",
      `     include "${AUTH_FILE}"`,
      "   (nats-server --signal reload; after a config change run `fleet creds` again, copy, and reload again)",
      "2. run each process with its own seed:",
      `     fleet run agent ${firstAgent} --creds ${seed(`agent:${firstAgent}`)}`,
      `     fleet run router --creds ${seed("router")}       fleet run scheduler --creds ${seed("scheduler")}`,
      `     (governance, tools, bridge-<channel>, webhook: ${dir}/<identity>.nk)`,
      "   a process that serves requests (agents, router, scheduler, governance, tools) serves them under the twin beside its",
      "   seed (<identity>.serve.nk), which may publish replies only: keep the two files together",
      "3. as the operator (creates the streams on first start, and everything else):",
      `     fleet up --nats <url> --creds ${seed("operator")}     fleet status --nats <url> --creds ${seed("operator")}`,
    ].join("\n"),
  );
  return 0;
}

/**
 * `--cluster host1,host2,host3` (or `n1=host1,...`): a nats-server config per node, clients on 4222 and routes on 6222 of
 * each host, every node routing to the others with the fleet's route secret, and the fleet's authorization included.
 */
function writeClusterConfigs(dir: string, hosts: string, config: FleetConfig, authFile: string): string[] {
  const specs: ClusterNodeSpec[] = hosts.split(",").map((h, i) => {
    const [name, host] = h.includes("=") ? (h.split("=", 2) as [string, string]) : [`n${i + 1}`, h];
    return { name: name.trim(), host: host.trim(), bind: "0.0.0.0", clientPort: 4222, clusterPort: 6222 };
  });
  const routePassword = routeSecret(dir);
  const files: string[] = [];
  for (const spec of specs) {
    const file = join(dir, `nats-${spec.name}.conf`);
    const text = clusterNodeConfig(spec, { clusterName: config.fleet.name, nodes: specs, storeDir: `/var/lib/nats/${spec.name}`, routeUser: "route", routePassword, authFile, configDir: dir, maxPayload: config.fleet.maxPayloadBytes });
    writeFileSync(file, text, { mode: 0o600 });
    files.push(file);
  }
  return files;
}

/**
 * The `--creds` a child of `fleet up` runs with. With generated credentials, its identity's seed; with the operator's
 * own `--creds <dir>/operator.nk` (an external fleet set up by `fleet creds <dir>`), the seed of the same name beside it,
 * or that same file when there is none; with no credentials, nothing.
 */
export function childCreds(identity: Identity, generated: ((identity: Identity) => string) | undefined, options: CliOptions): string[] {
  if (generated) return ["--creds", generated(identity)];
  if (!options.creds) return [];
  const sibling = join(dirname(resolve(options.creds)), seedFileName(identity));
  return ["--creds", options.creds.endsWith(".nk") && existsSync(sibling) ? sibling : options.creds];
}
