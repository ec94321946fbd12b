// the pure function the running quiet-hours chart is built on: a rule judges one proposal at one instant, it holds no state
import { isQuiet, type DailyWindow } from "../../config/index.js";
import { needsProposal } from "../../protocol/index.js";
import { defineRule, fail, noTool, pass } from "./rule.js";

/**
 * Nothing leaves the fleet while its people sleep: PROPOSE and CONFIRM tools (external effects) are refused inside the
 * fleet's quiet hours, read on its wall clock (DST-correct, the same function the cycles pause by). AUTO and AUTO+ stay
 * inside the fleet and may run; BLOCK never runs at all (risk_blocked).
 */
export const quietHours = defineRule("quiet_hours", (input) => {
  const { tool, fleet, rules, now } = input;
  if (!tool) return noTool(input);
  if (!needsProposal(tool.risk)) return pass(`${tool.risk} tool: no external effect`);
  const window: DailyWindow = { start: fleet.quietHours.start, end: fleet.quietHours.end, timeZone: fleet.timeZone };
  const hours = `${window.start}–${window.end} ${window.timeZone}`;
  if (!rules.quietHoursForExternal) return pass(`quiet hours do not hold back external effects in this fleet (quietHoursForExternal: false)`);
  if (isQuiet(window, now)) return fail(`${tool.risk} tool ${tool.name} has an external effect, refused inside quiet hours (${hours}); try after ${window.end}`);
  return pass(`outside quiet hours (${hours})`);
});
