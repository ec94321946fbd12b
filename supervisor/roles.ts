import { routedBehaviour, type AgentBehaviour, type HostedAgent, type RuntimeDeps } from "../actors/index.js";
import type { AgentConfig } from "../config/index.js";
import { RouterClient } from "../router/index.js";
import { atlasBehaviour } from "./atlas.js";

/**
 * Which behaviour a configured agent runs: the orchestration layer is Atlas (rule-based delegation); everyone else
 * answers its tasks through the model router. One router client per process, shared by the agents it hosts.
 */
export function behaviourFor(fleet: readonly AgentConfig[]) {
  let router: RouterClient | undefined;
  return (agent: HostedAgent, deps: RuntimeDeps): AgentBehaviour => {
    const config = fleet.find((a) => a.id === agent.id);
    if (config?.layer === "orchestration") return atlasBehaviour(agent, fleet, deps);
    router ??= new RouterClient(deps.nc, deps.names, { codec: deps.codec, timeoutMs: 120_000 });
    return routedBehaviour(agent, router);
  };
}
