import { AgentRuntime } from "../actors/index.js";
import { FleetError } from "../protocol/index.js";
import { behaviourFor, exitWhenParentDies } from "../supervisor/index.js";
import { loadConfig, natsUrl, rootLogger, type CliOptions } from "./context.js";

export interface RunOptions extends CliOptions {
  "run-id"?: string | undefined;
  supervised?: boolean | undefined;
}

/**
 * `fleet run agent <id>` (or `fleet run <id>`, or `fleet run agents a,b,c` for many actors in one process): hosts agents
 * from the config on any host that reaches NATS. Under `fleet up` (--supervised) it also exits when its parent dies.
 */
export async function run(positionals: string[], options: RunOptions, env: NodeJS.ProcessEnv): Promise<number> {
  const config = loadConfig(options);
  const [role, idList] = positionals;
  const ids = role === "agent" || role === "agents" ? (idList ?? "").split(",").filter(Boolean) : role ? [role] : [];
  if (ids.length === 0) throw new FleetError("CONFIG_INVALID", "usage: fleet run agent <id> | fleet run agents <id,id,...> | fleet run <id>");
  const agents = ids.map((id) => {
    const agent = config.agents.find((a) => a.id === id);
    if (!agent) throw new FleetError("CONFIG_INVALID", `no agent "${id}" in ${config.fleet.name}; agents: ${config.agents.map((a) => a.id).join(", ")}`);
    return agent;
  });
  const log = rootLogger(options, env, ids.join(","));
  const runtime = await AgentRuntime.start(
    {
      servers: natsUrl(options, env),
      prefix: options.prefix ?? config.fleet.prefix,
      codec: config.fleet.codec,
      maxPayloadBytes: config.fleet.maxPayloadBytes,
      tasks: config.tasks,
      runId: options["run-id"] ?? `run-${process.pid}-${Date.now()}`,
      processName: `fleet-agent-${ids.join(",")}`,
    },
    agents,
    behaviourFor(config.agents),
    { log },
  );
  return new Promise<number>((resolve) => {
    let stopping = false;
    const shutdown = (why: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ why }, "shutting down");
      runtime.stop().then(
        () => resolve(0),
        () => resolve(1),
      );
    };
    // `on`, not `once`: Ctrl-C signals the whole process group and the supervisor's SIGTERM follows; both must drain
    process.on("SIGTERM", () => shutdown("SIGTERM"));
    process.on("SIGINT", () => shutdown("SIGINT"));
    if (options.supervised) exitWhenParentDies(() => shutdown("parent exited"));
  });
}
