import { jsonBytes } from "./action-key.js";
import { defineRule, fail, pass } from "./rule.js";

/** The input is stored with the proposal, shown to approvers and replayed on retry: it must stay small. */
export const payloadSize = defineRule("payload_size", ({ proposal, rules }) => {
  const bytes = jsonBytes(proposal.input);
  const figures = `the input is ${bytes} bytes of JSON; the limit is ${rules.maxInputBytes}`;
  return bytes > rules.maxInputBytes ? fail(figures) : pass(figures);
});
