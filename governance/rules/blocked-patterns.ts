import { canonicalJson } from "../canonical-json.js";
import { redactedPath } from "./pii-detectors.js";
import { defineRule, fail, pass } from "./rule.js";
import { textSites } from "./walk.js";

/**
 * No input may contain a blocked pattern (case-insensitive). Each string is read as it is before the JSON text: in the
 * JSON text a newline or tab is the two characters "\n", so "drop\ttable" would slip past "drop\s+table" there.
 */
export const blockedPatterns = defineRule("blocked_patterns", ({ proposal, rules }) => {
  if (rules.blockedPatterns.length === 0) return pass("no patterns are blocked");
  const patterns = rules.blockedPatterns.map((source) => ({ source, regex: new RegExp(source, "i") }));
  for (const site of textSites(proposal.input)) {
    const hit = patterns.find((p) => p.regex.test(site.text));
    if (hit) return fail(`the input matches the blocked pattern /${hit.source}/ (${site.isKey ? "a member name at" : "at"} ${redactedPath(site.path)})`);
  }
  const text = canonicalJson(proposal.input);
  const hit = patterns.find((p) => p.regex.test(text));
  if (hit) return fail(`the input's JSON text matches the blocked pattern /${hit.source}/`);
  return pass(`none of ${patterns.length} blocked patterns matches`);
});
