import { personalDataIn, redactedPath } from "./pii-detectors.js";
import { defineRule, fail, noTool, pass } from "./rule.js";
import { isUnder, textSites } from "./walk.js";

/** Reasons name at most this many findings; the first few are enough to fix the input. */
const MAX_REPORTED = 3;

/**
 * No personal data where the tool did not declare it (an email's recipient is declared; its body is not). Every string
 * is read — member names too — and integers as their digits. The reason names the kind and the field, never the data:
 * it goes to logs, the audit trail and approvers' chats.
 */
export const personalData = defineRule("personal_data", (input) => {
  const { tool, proposal, rules } = input;
  if (!rules.personalDataCheck) return pass("the personal-data check is off in this fleet");
  if (!tool) return noTool(input);
  const declared = tool.personalDataFields ?? [];
  const findings: string[] = [];
  let total = 0;
  for (const site of textSites(proposal.input)) {
    if (declared.some((field) => isUnder(site.path, field))) continue;
    for (const kind of personalDataIn(site.text)) {
      total++;
      if (findings.length < MAX_REPORTED) {
        // a member name is reported by where it sits, not by itself
        findings.push(site.isKey ? `${article(kind)} ${kind} in a member name under ${redactedPath(site.path.slice(0, -1))}` : `${article(kind)} ${kind} at ${redactedPath(site.path)}`);
      }
    }
  }
  const allowed = declared.length > 0 ? `declared personal-data fields: ${declared.join(", ")}` : `${tool.name} declares no personal-data fields`;
  if (total === 0) return pass(`no personal data outside the declared fields (${allowed})`);
  const more = total > findings.length ? ` and ${total - findings.length} more` : "";
  return fail(`personal data in the input: ${findings.join("; ")}${more} (${allowed})`);
});

/** "an email address", "an IBAN", "a phone number". */
function article(kind: string): string {
  return /^[aeiouAEIOU]/.test(kind) ? "an" : "a";
}
