import { offlineBehaviour, type AgentBehaviour, type HostedAgent, type RuntimeDeps } from "../actors/index.js";
import type { AgentConfig } from "../config/index.js";
import { atlasBehaviour } from "./atlas.js";

/** Which behaviour a configured agent runs: the orchestration layer is Atlas; everyone else works offline until the router. */
export function behaviourFor(fleet: readonly AgentConfig[]) {
  return (agent: HostedAgent, deps: RuntimeDeps): AgentBehaviour => {
    const config = fleet.find((a) => a.id === agent.id);
    if (config?.layer === "orchestration") return atlasBehaviour(agent, fleet, deps);
    return offlineBehaviour(agent);
  };
}
