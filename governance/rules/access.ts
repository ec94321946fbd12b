import { toolAllowed } from "../tool-globs.js";
import { defineRule, fail, noAgent, pass } from "./rule.js";

/** Who may propose what: the agent must be one of the fleet's, and the tool one the catalogue has and the agent was given. */

export const agentKnown = defineRule("agent_known", ({ proposal, agent }) => {
  if (!agent) return fail(`no agent ${proposal.agentId} in the fleet`);
  // the caller looks the agent up by the proposal's id; a mismatch would mean the wrong agent's limits were applied
  if (agent.id !== proposal.agentId) return fail(`the agent given (${agent.id}) is not the proposing agent ${proposal.agentId}`);
  return pass(`agent ${agent.id} is in the fleet`);
});

export const toolPermission = defineRule("tool_permission", (input) => {
  const { proposal, tool, agent } = input;
  if (!tool) return fail(`no tool ${proposal.tool}`);
  if (tool.name !== proposal.tool) return fail(`the tool given (${tool.name}) is not the proposed tool ${proposal.tool}`);
  if (!agent) return noAgent(input);
  if (agent.tools.includes("*")) return pass(`agent ${agent.id} may use every tool ("*")`);
  if (!toolAllowed(agent.tools, tool.name)) return fail(`tool ${tool.name} is not in agent ${agent.id}'s allow list`);
  return pass(`tool ${tool.name} is in agent ${agent.id}'s allow list`);
});
