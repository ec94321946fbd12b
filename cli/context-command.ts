import { dirname, resolve } from "node:path";
import type { NatsConnection } from "@nats-io/nats-core";
import { agentById, type FleetConfig } from "../config/index.js";
import { assembleContext, SkillFiles, type AssembledContext, type ContextBudgets, type ContextSection, type MemorySources } from "../memory/index.js";
import { estimateInputTokens, FleetError } from "../protocol/index.js";
import { configPath, inspect, loadConfig, prefixOf, type CliOptions } from "./options.js";
import { printTable } from "./status.js";

/** Opens the real memory tiers for a config on a connection; `close` (when there is one) is called when the command ends. */
export type MemorySourcesFactory = (config: FleetConfig, nc: NatsConnection) => Promise<MemorySources & { close?(): Promise<void> }>;

/**
 * `fleet context <agent> <task...> [--json]`: the messages an agent's model call for this task would be given, built by
 * the same assembly the agent uses, from the fleet's live memory, with each section's tokens against its budget. Nothing
 * is sent and nothing is spent: it answers "what does the agent know when it does this?" and "where do the tokens go?".
 */
export async function contextCommand(
  positionals: string[],
  options: CliOptions,
  env: NodeJS.ProcessEnv,
  makeSources: MemorySourcesFactory,
): Promise<number> {
  const [agentId, ...words] = positionals;
  const task = words.join(" ").trim();
  if (!agentId || !task) {
    console.error('usage: fleet context <agent> "<task>" [--json]');
    return 2;
  }
  const loaded = loadConfig(options);
  const agent = agentById(loaded, agentId);
  if (!agent) throw new FleetError("CONFIG_INVALID", `no agent "${agentId}" in ${loaded.fleet.name}; agents: ${loaded.agents.map((a) => a.id).join(", ")}`);
  const prefix = prefixOf(options, loaded);
  // the sources name their subjects and buckets from the config, so a --prefix given here must reach them through it
  const config: FleetConfig = prefix === loaded.fleet.prefix ? loaded : { ...loaded, fleet: { ...loaded.fleet, prefix } };
  const memory = config.memory;
  const skillsDir = memory.skillsDir === undefined ? undefined : resolve(dirname(configPath(options)), memory.skillsDir);
  const { nc } = await inspect({ ...options, prefix }, env);
  try {
    const sources = await makeSources(config, nc);
    try {
      const context = await assembleContext(
        { agent, task, budgets: memory.budgets, semanticTopK: memory.semanticTopK },
        sources,
        new SkillFiles({ dir: skillsDir }),
      );
      if (options.json) {
        console.log(JSON.stringify({ agent: agent.id, ...context, inputTokens: estimateInputTokens(context.messages), budgets: memory.budgets }, null, 2));
      } else {
        print(agent.id, context, memory.budgets);
      }
      return 0;
    } finally {
      await sources.close?.();
    }
  } finally {
    await nc.close();
  }
}

function print(agentId: string, context: AssembledContext, budgets: ContextBudgets): void {
  const input = estimateInputTokens(context.messages);
  console.log(`fleet context ${agentId}: ${context.messages.length} messages, ~${context.totalTokens} tokens of text (${input} with message framing)`);
  for (const message of context.messages) {
    console.log();
    console.log(`── ${message.role}${message.name ? ` (${message.name})` : ""} ──`);
    console.log(message.content);
  }
  console.log();
  printTable(
    ["SECTION", "TOKENS", "BUDGET", "ITEMS", "NOTE"],
    [
      ...context.sections.map((s) => [s.name, String(s.tokens), budgetOf(s, budgets), String(s.items), note(s)]),
      ["total", String(context.totalTokens), "", "", `${input} with message framing`],
    ],
  );
}

function budgetOf(section: ContextSection, budgets: ContextBudgets): string {
  const name = section.name;
  return name === "agent" || name === "session" || name === "semantic" || name === "reference" || name === "skills" ? String(budgets[name]) : "-";
}

function note(section: ContextSection): string {
  const notes: string[] = [];
  // a skill whose file cannot be read is still there, as its description; any other tier with an error is absent
  if (section.error) notes.push(section.name === "skills" ? section.error : `left out: ${section.error}`);
  if (section.truncated) notes.push(section.name === "history" ? "older turns summarized" : "cut to budget");
  return notes.join("; ");
}
