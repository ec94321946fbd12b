import { dirname, resolve } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { routedBehaviour, type AgentBehaviour, type HostedAgent, type RuntimeDeps, type StepMemory } from "../actors/index.js";
import type { FleetConfig } from "../config/index.js";
import { AgentTools, referenceToolRisks, referenceTools, ToolCatalogue } from "../governance/index.js";
import type { RiskLevel } from "../protocol/index.js";
import { assembleContext, liveMemorySources, SessionLog, SkillFiles } from "../memory/index.js";
import { RouterClient } from "../router/index.js";
import { atlasBehaviour } from "./atlas.js";
import { governedStepTools } from "./step-tools.js";
import { withToolSteps } from "./tool-step.js";

/**
 * Which behaviour a configured agent runs: the orchestration layer is Atlas (rule-based delegation); everyone else
 * answers its tasks through the model router, with a prompt assembled from its memory and its allowed tools offered to
 * the model. Every agent also takes tasks that name a tool (tier 0: no model), within its allow list. Both ways go through
 * the same AgentTools, so a tool the model calls is governed like one a task names. One router client, one set of memory
 * sources and one tool catalogue per process, shared by the agents it hosts. `configFile` locates the skills and
 * knowledge directories.
 */
export function behaviourFor(config: FleetConfig, configFile: string) {
  let risks: ReadonlyMap<string, RiskLevel> | undefined;
  let shared: { router: RouterClient; memory: Promise<StepMemory>; catalogue: ToolCatalogue } | undefined;
  const roleBehaviour = (agent: HostedAgent, deps: RuntimeDeps, tools: AgentTools): AgentBehaviour => {
    const configured = config.agents.find((a) => a.id === agent.id);
    if (configured?.layer === "orchestration") return atlasBehaviour(agent, config.agents, deps);
    shared ??= {
      router: new RouterClient(deps.nc, deps.names, { codec: deps.codec, timeoutMs: 120_000 }),
      memory: stepMemory(config, configFile, deps),
      // only the descriptions and input schemas are used here (the tools run on a tool host); building the definitions
      // touches nothing
      catalogue: new ToolCatalogue(referenceTools({ js: deps.js, names: deps.names, codec: deps.codec, config })),
    };
    const { router, memory, catalogue } = shared;
    // the memory is wired asynchronously (it needs the JetStream manager); a step waits for it
    return routedBehaviour(
      agent,
      router,
      {
        prompt: async (a, task) => (await memory).prompt(a, task),
        record: async (entry) => (await memory).record(entry),
      },
      { tools: governedStepTools({ tools, catalogue }) },
    );
  };
  return (agent: HostedAgent, deps: RuntimeDeps): AgentBehaviour => {
    risks ??= new Map(Object.entries(referenceToolRisks()));
    const allowed = config.agents.find((a) => a.id === agent.id)?.tools ?? [];
    const tools = new AgentTools({ nc: deps.nc, js: deps.js, names: deps.names, codec: deps.codec, agentId: agent.id, allowed, risks, clock: () => deps.clock.now() });
    return withToolSteps(roleBehaviour(agent, deps, tools), tools);
  };
}

async function stepMemory(config: FleetConfig, configFile: string, deps: RuntimeDeps): Promise<StepMemory> {
  const base = dirname(resolve(configFile));
  const jsm = await jetstreamManager(deps.nc);
  const knowledgeDir = config.memory.knowledgeDir ? resolve(base, config.memory.knowledgeDir) : undefined;
  const sources = liveMemorySources({
    nc: deps.nc, js: deps.js, jsm, memoryKv: deps.kv.memory, names: deps.names, config, codec: deps.codec, knowledgeDir,
    clock: () => deps.clock.now(),
  });
  const skills = new SkillFiles({ dir: config.memory.skillsDir ? resolve(base, config.memory.skillsDir) : undefined });
  const log = new SessionLog({ js: deps.js, jsm, names: deps.names, timeZone: config.fleet.timeZone, codec: deps.codec, clock: () => deps.clock.now() });
  return {
    prompt: async (agent, task) => {
      const context = await assembleContext(
        { agent, task, budgets: config.memory.budgets, semanticTopK: config.memory.semanticTopK },
        sources,
        skills,
      );
      return context.messages;
    },
    record: (entry) => log.append(entry),
  };
}
