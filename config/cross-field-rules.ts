import { z } from "zod";
import { TIER_NAMES } from "../protocol/index.js";
import { DEFAULT_ALIASES } from "./aliases.js";
import { Layer } from "./layer.js";
import { planningCrossRules } from "./planning-schema.js";
import { gatewayCrossRules } from "./gateway-schema.js";
import { closest } from "./strict-object.js";

/*
 * The fleet config's cross-field rules, in one refinement run on the whole config, so they are reported together with
 * the field errors and not only once the fields are fixed.
 */

/*
 * A tolerant view of a possibly broken config, used only by the cross-field rules: every field falls back to
 * "unknown" instead of failing, so the rules can still run (and report) while other fields are invalid.
 */
const maybe = <T extends z.ZodType>(schema: T) => schema.optional().catch(undefined);
const CrossView = z
  .object({
    fleet: z
      .object({
        dailyCapUsd: maybe(z.number()),
        quietHours: maybe(z.object({ urgent: maybe(z.object({ tiers: maybe(z.array(z.string())) })) })),
      })
      .catch({}),
    agents: z
      .array(
        z
          .object({
            id: maybe(z.string()),
            layer: maybe(Layer),
            dailyCapUsd: maybe(z.number()),
            tools: maybe(z.array(z.unknown())),
            skills: maybe(z.array(z.object({ id: maybe(z.string()), tier: maybe(z.string()) }).catch({}))),
            duties: maybe(z.array(z.object({ id: maybe(z.string()), pipeline: maybe(z.string()) }).catch({}))),
          })
          .catch({}),
      )
      .catch([]),
    tasks: z.object({ maxDeliver: maybe(z.number()), backoffSeconds: maybe(z.array(z.unknown())), ackWaitSeconds: maybe(z.number()), workingAckSeconds: maybe(z.number()) }).catch({}),
    cron: z.array(z.object({ id: maybe(z.string()), agent: maybe(z.string()), tool: maybe(z.string()), pipeline: maybe(z.string()) }).catch({})).catch([]),
    pipelines: z.record(z.string(), z.unknown()).catch({}),
    mcpServers: z.record(z.string(), z.unknown()).catch({}),
    peers: z.record(z.string(), z.object({ skills: z.record(z.string(), z.unknown()).catch({}) }).catch({ skills: {} })).catch({}),
    tiers: z.record(z.string(), z.object({ inputPerM: maybe(z.number()), outputPerM: maybe(z.number()) }).catch({})).catch({}),
    routing: z
      .object({
        fallback: z.record(z.string(), z.array(z.string()).catch([])).catch({}),
        aliases: z.record(z.string(), z.object({ tier: maybe(z.string()), chain: maybe(z.array(z.string())) }).catch({})).catch({}),
      })
      .catch({ fallback: {}, aliases: {} }),
  })
  .catch({ fleet: {}, agents: [], tasks: {}, cron: [], pipelines: {}, mcpServers: {}, peers: {}, tiers: {}, routing: { fallback: {}, aliases: {} } });

/** Just the tiers a pipeline's model steps name, read tolerantly (a broken step is reported by its own schema). */
const PipelineTiers = z.object({ steps: z.array(z.object({ model: maybe(z.object({ tier: maybe(z.string()) })) }).nullable().catch(null)) });

/** A chain after `start` must climb in price at every step: falling back must never buy a cheaper, weaker model. */
function checkChainClimbs(
  start: string,
  chain: string[],
  tiers: Record<string, { inputPerM?: number | undefined; outputPerM?: number | undefined }>,
  path: PropertyKey[],
  report: (path: PropertyKey[], message: string) => void,
): void {
  const price = (tier: string) => {
    const t = tiers[tier];
    return t?.inputPerM === undefined || t.outputPerM === undefined ? undefined : t.inputPerM + t.outputPerM;
  };
  let previous = start;
  chain.forEach((tier, k) => {
    const before = price(previous);
    const now = price(tier);
    if (before !== undefined && now !== undefined && now <= before) {
      report([...path, k], `"${tier}" ($${now}/M in+out) is not more expensive than "${previous}" ($${before}/M): a fallback may only climb in cost`);
    }
    previous = tier;
  });
}

export function crossFieldRules(value: unknown, ctx: z.RefinementCtx): void {
  const { fleet, agents, tasks, cron, pipelines, mcpServers, peers, tiers, routing } = CrossView.parse(value);
  const report = (path: PropertyKey[], message: string) => ctx.addIssue({ code: "custom", path, message });
  planningCrossRules(value, report);
  // a peer's tools and an MCP server's share one namespace (`<source>.<tool>`)
  for (const name of Object.keys(peers)) if (name in mcpServers) report(["peers", name], `"${name}" is also an MCP server in mcpServers: tool names <name>.<tool> would be ambiguous`);
  gatewayCrossRules(value, report);
  for (const [tier, chain] of Object.entries(routing.fallback)) checkChainClimbs(tier, chain, tiers, ["routing", "fallback", tier], report);
  for (const [alias, { tier, chain }] of Object.entries(routing.aliases)) {
    if (tier !== undefined && chain !== undefined) checkChainClimbs(tier, chain, tiers, ["routing", "aliases", alias, "chain"], report);
  }
  // an urgent tier is one the router knows: a tier name, a default alias or a configured one
  const knownTiers = new Set<string>([...TIER_NAMES, ...Object.keys(DEFAULT_ALIASES), ...Object.keys(routing.aliases)]);
  fleet.quietHours?.urgent?.tiers?.forEach((tier, k) => {
    if (!knownTiers.has(tier)) report(["fleet", "quietHours", "urgent", "tiers", k], `"${tier}" is neither a tier nor an alias (${[...knownTiers].join(", ")})`);
  });
  // a skill's tier is a tier or an alias (the defaults always exist); anything else would fail every one of its steps
  const tierOrAlias = new Set<string>([...TIER_NAMES, ...Object.keys(DEFAULT_ALIASES), ...Object.keys(routing.aliases)]);
  agents.forEach((agent, a) =>
    agent.skills?.forEach((skill, k) => {
      if (skill.tier !== undefined && !tierOrAlias.has(skill.tier)) {
        report(["agents", a, "skills", k, "tier"], `"${skill.tier}" is neither a tier nor an alias (known: ${[...tierOrAlias].join(", ")})`);
      }
    }),
  );
  const agentIds = new Set(agents.map((a) => a.id).filter(Boolean));
  const cronIds = new Set<string>();
  cron.forEach((job, i) => {
    if (job.agent !== undefined && !agentIds.has(job.agent)) report(["cron", i, "agent"], `no agent "${job.agent}" in this fleet`);
    if (job.pipeline !== undefined && !(job.pipeline in pipelines)) {
      report(["cron", i, "pipeline"], `no pipeline "${job.pipeline}" in this fleet (pipelines: ${Object.keys(pipelines).join(", ") || "none"})`);
    }
    // the agent's allow list is enforced when the job runs; refusing here says so at start instead of at 3 AM
    const tools = agents.find((a) => a.id === job.agent)?.tools;
    if (job.tool !== undefined && tools !== undefined && !tools.includes("*") && !tools.includes(job.tool)) {
      report(["cron", i, "tool"], `agent "${job.agent}" may not use "${job.tool}" (its tools: ${tools.join(", ") || "none"})`);
    }
    if (job.id !== undefined && cronIds.has(job.id)) report(["cron", i, "id"], `duplicate cron job id "${job.id}"`);
    if (job.id !== undefined) cronIds.add(job.id);
  });

  const firstIndexOfId = new Map<string, number>();
  agents.forEach((agent, i) => {
    if (agent.id !== undefined) {
      const first = firstIndexOfId.get(agent.id);
      if (first === undefined) firstIndexOfId.set(agent.id, i);
      else report(["agents", i, "id"], `duplicate agent id "${agent.id}" (also agents[${first}])`);
    }
    if (agent.tools?.includes("*") && agent.layer !== undefined && agent.layer !== "orchestration") {
      report(["agents", i, "tools"], `only the orchestration agent may have wildcard tools; list this ${agent.layer} agent's tools`);
    }
    // "<server>.<tool>" names an MCP server's tool: the server must be one of mcpServers (its tools are known only once
    // a tool host lists them, so the tool part is checked then)
    const servers = Object.keys(mcpServers);
    agent.tools?.forEach((tool, k) => {
      if (typeof tool !== "string" || !tool.includes(".")) return;
      const server = tool.slice(0, tool.indexOf("."));
      if (servers.includes(server)) return;
      // "<peer>.<skill>" names a peer's skill: granted in peers.<peer>.skills (known from config alone)
      const peer = peers[server];
      if (peer) {
        const skill = tool.slice(server.length + 1);
        const granted = Object.keys(peer.skills);
        if (skill !== "*" && !granted.includes(skill)) report(["agents", i, "tools", k], `peer "${server}" grants no skill "${skill}" (peers.${server}.skills: ${granted.join(", ") || "none"})`);
        return;
      }
      const guess = closest(server, servers);
      report(["agents", i, "tools", k], `no MCP server "${server}" in mcpServers${guess ? `, did you mean "${guess}.${tool.slice(server.length + 1)}"?` : ` (servers: ${servers.join(", ") || "none"})`}`);
    });
    if (agent.dailyCapUsd !== undefined && fleet.dailyCapUsd !== undefined && agent.dailyCapUsd > fleet.dailyCapUsd) {
      report(["agents", i, "dailyCapUsd"], `${agent.dailyCapUsd} is above the fleet's daily cap fleet.dailyCapUsd (${fleet.dailyCapUsd})`);
    }
    const dutyIds = new Set<string>();
    agent.duties?.forEach((duty, k) => {
      if (duty.pipeline !== undefined && !(duty.pipeline in pipelines)) {
        report(["agents", i, "duties", k, "pipeline"], `no pipeline "${duty.pipeline}" in this fleet (pipelines: ${Object.keys(pipelines).join(", ") || "none"})`);
      }
      if (duty.id !== undefined && dutyIds.has(duty.id)) report(["agents", i, "duties", k, "id"], `duplicate duty id "${duty.id}" in this agent`);
      if (duty.id !== undefined) dutyIds.add(duty.id);
    });
    const skillIds = new Set<string>();
    agent.skills?.forEach((skill, k) => {
      if (skill.id === undefined) return;
      if (skillIds.has(skill.id)) report(["agents", i, "skills", k, "id"], `duplicate skill id "${skill.id}" in this agent`);
      skillIds.add(skill.id);
    });
  });

  // a pipeline's model step asks for a tier or an alias by name: one the router does not know fails every run
  const tierNames = new Set<string>([...TIER_NAMES, ...Object.keys(routing.aliases)]);
  for (const [id, pipeline] of Object.entries(pipelines)) {
    const steps = PipelineTiers.safeParse(pipeline);
    if (!steps.success) continue;
    steps.data.steps.forEach((step, k) => {
      const tier = step?.model?.tier;
      if (tier !== undefined && !tierNames.has(tier)) report(["pipelines", id, "steps", k, "model", "tier"], `no tier or alias "${tier}" (tiers: ${TIER_NAMES.join(", ")}; aliases: ${Object.keys(routing.aliases).join(", ") || "none"})`);
    });
  }

  // Atlas is a singleton that decides and assigns work; zero or two of them leaves the fleet without one voice.
  const orchestrators = agents.filter((agent) => agent.layer === "orchestration").length;
  if (agents.length > 0 && orchestrators !== 1) {
    report(["agents"], `exactly one agent must have layer "orchestration" (found ${orchestrators})`);
  }

  // nats-server refuses a consumer whose backoff list is not shorter than max_deliver.
  if (tasks.maxDeliver !== undefined && tasks.backoffSeconds !== undefined && tasks.backoffSeconds.length >= tasks.maxDeliver) {
    report(["tasks", "backoffSeconds"], `must have fewer entries than tasks.maxDeliver (${tasks.maxDeliver})`);
  }
  // A working-ack sent after the ack wait has expired arrives too late: the task was already redelivered.
  const waits = [tasks.ackWaitSeconds, ...(tasks.backoffSeconds ?? [])].filter((w): w is number => typeof w === "number");
  const shortestWait = Math.min(...waits);
  if (tasks.workingAckSeconds !== undefined && waits.length > 0 && tasks.workingAckSeconds >= shortestWait) {
    report(["tasks", "workingAckSeconds"], `must be shorter than every ack wait (ackWaitSeconds and backoffSeconds; shortest ${shortestWait})`);
  }
}
