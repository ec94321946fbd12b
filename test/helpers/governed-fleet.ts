import { readFileSync, writeFileSync } from "node:fs";
import { loadFleetConfig, type FleetConfig } from "../../config/index.js";
import type { RiskLevel } from "../../protocol/index.js";
import { writeTestFleet } from "./fleet-processes.js";

/** The risk levels the permission tests give the tools (a stand-in for the catalogue's). */
export const GOVERNED_TOOLS: Record<string, RiskLevel> = {
  web_fetch: "AUTO",
  http_check: "AUTO",
  note_write: "AUTO+",
  deploy_site: "PROPOSE",
  email_send: "CONFIRM",
  money_transfer: "BLOCK",
};

/**
 * The test fleet (atlas with "*", scout and ship with allow lists) with governance around it: scout may also write notes,
 * propose a deploy and ask for a money transfer; a console principal, a nightly report to Slack, Telegram for approvals.
 */
export function governedFleet(overrides: { prefix?: string } = {}): { config: FleetConfig; file: string; cleanup: () => void } {
  const fleet = writeTestFleet(overrides);
  const text = readFileSync(fleet.file, "utf8").replace("tools: [web_fetch]", "tools: [web_fetch, note_write, deploy_site, money_transfer]");
  writeFileSync(
    fleet.file,
    text +
      `principals:
  - { id: ops, channel: console, to: ops }
cron:
  - { id: nightly, agent: scout, at: "02:00", message: "overnight report", delivery: { channel: slack, to: "#ops" } }
governance:
  approvals: { channels: [telegram] }
`,
  );
  return { config: loadFleetConfig(fleet.file), file: fleet.file, cleanup: fleet.cleanup };
}
