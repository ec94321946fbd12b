import { defineRule, fail, needsHuman, noTool, pass } from "./rule.js";

/** The two rules decided by the tool's risk level alone: BLOCK never runs, CONFIRM waits for a person. */

export const riskBlocked = defineRule("risk_blocked", (input) => {
  if (!input.tool) return noTool(input);
  if (input.tool.risk === "BLOCK") return fail(`${input.tool.name} is a BLOCK tool: BLOCK tools never run`);
  return pass(`${input.tool.name} is a ${input.tool.risk} tool`);
});

/** Last in the list: a person is asked only about a proposal every other rule has passed. */
export const humanConfirmation = defineRule("human_confirmation", (input) => {
  if (!input.tool) return noTool(input);
  if (input.tool.risk === "CONFIRM") return needsHuman("CONFIRM: a person must approve");
  return pass(`${input.tool.risk}: no person needs to approve`);
});
