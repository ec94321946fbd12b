import { defineRule, fail, noAgent, pass } from "./rule.js";

const MINUTE_MS = 60_000;

/**
 * At most `limit` proposals per agent, per tool, within one of the agent's cycles ("a fleet must never send 47 emails in
 * one cycle"). The window is the cycle length back from now, open at its start: a proposal made exactly one cycle ago
 * belongs to the previous cycle. Rejected proposals do not count — they did nothing — so an agent that keeps trying
 * keeps being refused, but is not locked out of the next cycle by its own refusals.
 */
export const rateLimit = defineRule("rate_limit", (input) => {
  const { proposal, agent, rules, others, now } = input;
  if (!agent) return noAgent(input);
  // own keys only: a tool named "constructor" must not find Object.prototype's member and skip the limit
  const perTool = Object.hasOwn(rules.rateLimits.perTool, proposal.tool) ? rules.rateLimits.perTool[proposal.tool] : undefined;
  const limit = perTool ?? rules.rateLimits.default;
  const windowMs = agent.cycleMinutes * MINUTE_MS;
  const earlier = others.filter(
    (other) =>
      other.id !== proposal.id &&
      other.agentId === proposal.agentId &&
      other.tool === proposal.tool &&
      other.state !== "rejected" &&
      other.createdAt > now - windowMs,
  ).length;
  const count = earlier + 1;
  const window = `${agent.cycleMinutes} min`;
  if (count > limit) {
    return fail(`this would be ${proposal.tool} proposal no. ${count} of agent ${proposal.agentId} within its ${window} cycle; the limit is ${limit} per cycle`);
  }
  return pass(`${proposal.tool} proposal ${count} of at most ${limit} within the ${window} cycle`);
});
