import { AgentRuntime } from "../actors/index.js";
import { LEASE_TTL_MS, FleetError } from "../protocol/index.js";
import { hostname } from "node:os";
import { behaviourFor } from "../behaviours/index.js";
import { loadFleetTools, peerClients } from "../governance/index.js";
import { Lease, runServerWatchdog } from "../supervisor/index.js";
import { configPath, createsResources, loadConfig, natsConnection, rootLogger, type CliOptions } from "./options.js";
import { runDemoSite } from "./demo.js";
import { runScheduler } from "./run-scheduler.js";
import { runWebhook } from "./run-webhook.js";
import { runGateway } from "./run-gateway.js";
import { runBridge } from "./run-bridge.js";
import { runRouter } from "./run-router.js";
import { runGovernance } from "./run-governance.js";
import { runStandin } from "./run-standin.js";
import { runTools } from "./run-tools.js";
import { untilStopped, type StopReason } from "./until-stopped.js";
import { startTelemetry } from "./telemetry.js";

/** Renewal interval of a singleton's lease; the leases bucket's TTL (protocol/resources.ts) is three times this. */
const LEASE_RENEW_MS = 5_000;

export interface RunOptions extends CliOptions {
  "run-id"?: string | undefined;
  supervised?: boolean | undefined;
}

/**
 * `fleet run agent <id>` (or `fleet run <id>`, or `fleet run agents a,b,c` for many actors in one process): hosts agents
 * from the config on any host that reaches NATS. Under `fleet up` (--supervised) it also exits when its parent dies.
 */
export async function run(positionals: string[], options: RunOptions, env: NodeJS.ProcessEnv): Promise<number> {
  const [role, idList] = positionals;
  if (role === "scheduler") return runScheduler(options, env);
  if (role === "webhook") return runWebhook(options, env);
  if (role === "gateway") return runGateway(options, env);
  if (role === "bridge") return runBridge(idList, options, env);
  if (role === "router") return runRouter(options, env);
  if (role === "tools") return runTools(options, env);
  if (role === "governance") return runGovernance(options, env);
  if (role === "standin") return runStandin(options, env);
  if (role === "demo-site") return runDemoSite(options, env);
  // fleet up's embedded server as a supervised child (the directory holds its config and store)
  if (role === "nats-server" && idList) return runServerWatchdog(idList, rootLogger(options, env, "nats-server"));
  const config = loadConfig(options, env);
  const ids = role === "agent" || role === "agents" ? (idList ?? "").split(",").filter(Boolean) : role ? [role] : [];
  if (ids.length === 0) throw new FleetError("CONFIG_INVALID", "usage: fleet run agent <id> | fleet run agents <id,id,...> | fleet run <id> | fleet run scheduler | fleet run webhook | fleet run gateway | fleet run bridge console|telegram|discord|email | fleet run router | fleet run tools | fleet run governance | fleet run standin | fleet run demo-site");
  const agents = ids.map((id) => {
    const agent = config.agents.find((a) => a.id === id);
    if (!agent) throw new FleetError("CONFIG_INVALID", `no agent "${id}" in ${config.fleet.name}; agents: ${config.agents.map((a) => a.id).join(", ")}`);
    return agent;
  });
  const log = rootLogger(options, env, ids.join(","));
  // GenAI spans of the agents' tasks and tool calls, when telemetry.otlp is set (nothing is made otherwise)
  const telemetry = startTelemetry(config.telemetry, { role: "agent", prefix: options.prefix ?? config.fleet.prefix, log, attributes: { "natsfleet.agent.ids": ids } });
  // the tool modules' descriptions and risks are part of what the agents offer their models and check their calls against
  const sources = await loadFleetTools(config, configPath(options));
  // orchestration agents are singletons: a second copy (another host, a second `fleet up`) stands by for the lease
  const singletons = agents.filter((a) => a.layer === "orchestration");
  const leases: Lease[] = [];
  // set once the runtime is up; a restart requested before that has nothing to stop yet
  let requestShutdown: (why: StopReason) => void = () => undefined;
  const { servers, ...credentials } = natsConnection(options, env);
  const runtime = await AgentRuntime.start(
    {
      servers,
      credentials,
      createResources: createsResources(options),
      prefix: options.prefix ?? config.fleet.prefix,
      codec: config.fleet.codec,
      maxPayloadBytes: config.fleet.maxPayloadBytes,
      replicas: config.fleet.replicas,
      tasks: config.tasks,
      quietHours: { start: config.fleet.quietHours.start, end: config.fleet.quietHours.end, timeZone: config.fleet.timeZone },
      modelWork: { urgent: config.fleet.quietHours.urgent, aliases: Object.fromEntries(Object.entries(config.routing.aliases).map(([alias, a]) => [alias, a.tier])) },
      runId: options["run-id"] ?? `run-${process.pid}-${Date.now()}`,
      processName: `fleet-agent-${ids.join(",")}`,
    },
    agents,
    behaviourFor(config, configPath(options), sources, { clients: peerClients(config, env, log) }),
    {
      log,
      // exit non-zero: a supervisor (fleet up, systemd) starts the process again
      onRestartRequested: () => requestShutdown("restart requested"),
      tracer: telemetry.tracer,
      beforeHosting: async (deps) => {
        for (const agent of singletons) {
          const lease = new Lease({ kv: deps.kv.leases, role: `agent.${agent.id}`, holder: `${hostname()}:${process.pid}`, renewMs: LEASE_RENEW_MS, log, ...(config.fleet.replicas > 1 ? { ttlMs: LEASE_TTL_MS } : {}) });
          await lease.acquire();
          leases.push(lease);
        }
      },
    },
  );
  const running = untilStopped(async () => {
    await runtime.stop();
    await Promise.all(leases.map((l) => l.release()));
    await telemetry.stop();
  }, { log, supervised: options.supervised });
  requestShutdown = running.shutdown;
  // another process holds the singleton now: stop working at once (the supervisor restarts us as a standby)
  for (const lease of leases) lease.onLost(() => running.shutdown("lease lost"));
  return running.exitCode;
}
