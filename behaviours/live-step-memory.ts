import { dirname, resolve } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import type { RuntimeDeps, StepMemory } from "../actors/index.js";
import type { FleetConfig } from "../config/index.js";
import { assembleContext, liveMemorySources, SessionLog, SkillFiles } from "../memory/index.js";

/**
 * The StepMemory a routed model step reads and writes in a running fleet: the prompt assembled from the memory tiers and
 * the skill files within their budgets, and the session log. `configFile` locates the skills and knowledge directories.
 */
export async function liveStepMemory(config: FleetConfig, configFile: string, deps: RuntimeDeps): Promise<StepMemory> {
  const base = dirname(resolve(configFile));
  const jsm = await jetstreamManager(deps.nc);
  const knowledgeDir = config.memory.knowledgeDir ? resolve(base, config.memory.knowledgeDir) : undefined;
  const sources = liveMemorySources({
    nc: deps.nc, js: deps.js, jsm, memoryKv: deps.kv.memory, names: deps.names, config, codec: deps.codec, knowledgeDir,
    clock: deps.clock,
  });
  const skills = new SkillFiles({ dir: config.memory.skillsDir ? resolve(base, config.memory.skillsDir) : undefined });
  const log = new SessionLog({ js: deps.js, jsm, names: deps.names, timeZone: config.fleet.timeZone, codec: deps.codec, clock: deps.clock });
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
