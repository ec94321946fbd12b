import { tracedStepTools, type AgentBehaviour, type HostedAgent, type RuntimeDeps, type StepMemory } from "../actors/index.js";
import type { FleetConfig } from "../config/index.js";
import { TaskStore } from "../actors/index.js";
import { AgentTools, fleetToolRisks, fleetTools, mcpListingFilters, NO_TOOL_MODULES, ToolCatalogue, ToolDirectory, type FleetToolSources, type PeerClients, peerToolTimeoutMs, ungrantedPeerSkill } from "../governance/index.js";
import type { RiskLevel } from "../protocol/index.js";
import { RouterClient } from "../router/index.js";
import { atlasBehaviour } from "./atlas-behaviour.js";
import { composeBehaviour } from "./compose.js";
import { governedStepTools } from "./governed-step-tools.js";
import { liveStepMemory } from "./live-step-memory.js";
import { reportToStage } from "./report-to-stage.js";
import { routedModelStep } from "./routed-model-step.js";
import { publishFinding } from "./pipeline-findings.js";
import { pipelineStage } from "./pipeline-stage.js";
import { PipelineRunStore } from "./pipeline-store.js";
import { peerTaskStage } from "./peer-task-stage.js";
import type { BehaviourStage } from "./stage.js";
import { toolTaskStage } from "./tool-task-stage.js";

/**
 * What each configured agent does in a step, and the one place its chain is assembled: the stages every role runs, in
 * order, then the role's terminal. The orchestration layer's terminal is Atlas (rule-based delegation); everyone else's
 * is a routed model step, with a prompt assembled from its memory and its allowed tools offered to the model. A task that
 * names a tool is answered by the first stage (tier 0: no model), within the agent's allow list. Both ways go through the
 * same AgentTools, so a tool the model calls is governed like one a task names. One router client, one set of memory
 * sources and one tool catalogue per process (the reference tools and the tool modules in `sources`), shared by the
 * agents it hosts. `configFile` locates the skills and
 * knowledge directories.
 */
export function behaviourFor(
  config: FleetConfig,
  configFile: string,
  sources: FleetToolSources = NO_TOOL_MODULES,
  /** the peers' A2A clients (tokens from the process's environment): the orchestrator delegates to peers with them */
  peers?: { clients: PeerClients; sleep?: (ms: number, signal?: AbortSignal) => Promise<void> },
) {
  let risks: ReadonlyMap<string, RiskLevel> | undefined;
  let shared: { memory: Promise<StepMemory>; catalogue: ToolCatalogue } | undefined;
  let router: RouterClient | undefined;
  // one router client per process, shared by Atlas's planning, the terminal's model steps and the pipelines' model steps
  // every reply of a task's call counts toward the task's actual tokens (written when the task is settled)
  const routerFor = (deps: RuntimeDeps) =>
    (router ??= new RouterClient(deps.nc, deps.names, {
      codec: deps.codec,
      timeoutMs: 120_000,
      onReply: (request, reply) => {
        if (request.taskId) deps.tokens?.add(request.agentId, request.taskId, reply.usage);
      },
    }));

  const terminalFor = (agent: HostedAgent, deps: RuntimeDeps, tools: AgentTools, live: ToolDirectory | undefined): AgentBehaviour => {
    const configured = config.agents.find((a) => a.id === agent.id);
    const router = routerFor(deps);
    // Atlas plans from what changed, through the router; it needs no memory or tool catalogue
    if (configured?.layer === "orchestration") return atlasBehaviour(agent, config, deps, router);
    shared ??= {
      memory: liveStepMemory(config, configFile, deps),
      // only the descriptions and input schemas are used here (the tools run on a tool host); building the definitions
      // touches nothing
      catalogue: new ToolCatalogue(fleetTools({ js: deps.js, names: deps.names, codec: deps.codec, config }, sources)),
    };
    const { memory, catalogue } = shared;
    // the memory is wired asynchronously (it needs the JetStream manager); a step waits for it
    return routedModelStep(
      agent,
      router,
      {
        prompt: async (a, task) => (await memory).prompt(a, task),
        record: async (entry) => (await memory).record(entry),
      },
      { tools: tracedStepTools(governedStepTools({ tools, catalogue, live }), deps.tracer, agent.id), gate: deps.gate },
    );
  };

  return (agent: HostedAgent, deps: RuntimeDeps): AgentBehaviour => {
    risks ??= new Map(Object.entries(fleetToolRisks(sources)));
    const allowed = config.agents.find((a) => a.id === agent.id)?.tools ?? [];
    // MCP servers' tools this agent may use are known once a tool host lists them (KV `tools`, followed live); a call or
    // a model step waits for the first load, so a tool listed before the agent started is never missing
    const filters = mcpListingFilters(config, allowed);
    const live = filters.length > 0 ? new ToolDirectory(deps.kv.tools, deps.codec, filters, deps.log.child({ component: "tool-directory", agentId: agent.id })) : undefined;
    const ready = live?.start().catch((err: unknown) => deps.log.warn({ err, agentId: agent.id }, "MCP tool listings could not be read; those tools are not offered"));
    const builtIn = risks;
    const tools = new AgentTools({
      nc: deps.nc, js: deps.js, names: deps.names, codec: deps.codec, agentId: agent.id, allowed, clock: deps.clock,
      risks: { get: (name) => builtIn.get(name) ?? live?.risk(name) },
      unknownTool: (name) => ungrantedPeerSkill(config, name),
      timeoutOf: (name) => peerToolTimeoutMs(config, name),
      ...(ready ? { ready } : {}),
    });
    // first to last: the first stage sees a step first. A task naming a pipeline runs it (tier 0 tools, its own model
    // steps); a task naming a tool runs that; anything else reaches the role's terminal.
    const stages: BehaviourStage[] = [
      pipelineStage(config.pipelines, {
        agent,
        tools,
        router: routerFor(deps),
        store: new PipelineRunStore(deps.kv.pipelineruns, deps.names, deps.codec),
        publishFinding: (finding) => publishFinding(deps.js, deps.names, deps.codec, finding),
        now: () => deps.clock.now(),
        gate: deps.gate,
        tracer: deps.tracer,
      }),
      toolTaskStage(tools, deps.tracer),
    ];
    // an agent that reports to another sends it a note of each task it completes (scout's reports reach Atlas so)
    // the orchestrator's tasks that delegate to another company's agent (Atlas's plan writes them) call the peer first
    if (peers && config.agents.find((a) => a.id === agent.id)?.layer === "orchestration") {
      stages.unshift(peerTaskStage({ self: agent.id, config, clients: peers.clients, store: new TaskStore(deps.kv.tasks, deps.names, deps.codec), now: () => deps.clock.now(), sleep: peers.sleep, audit: (report) => tools.reportDelegation(report) }));
    }
    const reportsTo = config.agents.find((a) => a.id === agent.id)?.reportsTo;
    if (reportsTo) stages.unshift(reportToStage({ self: agent.id, to: reportsTo, nc: deps.nc, names: deps.names, codec: deps.codec }));
    const terminal = terminalFor(agent, deps, tools, live);
    if (!ready) return composeBehaviour(stages, terminal);
    const waiting: AgentBehaviour = {
      plan: async (input, ctx) => {
        await ready;
        return terminal.plan(input, ctx);
      },
      act: async (input, ctx) => {
        await ready;
        return terminal.act(input, ctx);
      },
    };
    return composeBehaviour(stages, waiting);
  };
}
