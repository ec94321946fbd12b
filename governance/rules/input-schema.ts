import { redactedPath } from "./pii-detectors.js";
import { defineRule, fail, noTool, pass } from "./rule.js";

/**
 * The input must be one the tool accepts: checked here, before a person is asked to approve it, and again by the tool
 * host before the handler runs. Only the first issue is named; the agent fixes one thing at a time anyway.
 */
export const inputSchema = defineRule("input_schema", (input) => {
  const { tool, proposal } = input;
  if (!tool) return noTool(input);
  const parsed = tool.input.safeParse(proposal.input);
  if (parsed.success) return pass(`the input is valid for ${tool.name}`);
  const issue = parsed.error.issues[0];
  if (!issue) return fail(`the input is not valid for ${tool.name}`);
  const path = issue.path.filter((segment): segment is string | number => typeof segment !== "symbol");
  return fail(`the input is not valid for ${tool.name}: ${redactedPath(path)}: ${issue.message}`);
});
