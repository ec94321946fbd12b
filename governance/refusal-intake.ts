import type { FleetConfig } from "../config/index.js";
import { endpoint, FleetError, RefusalReport, type Endpoint, type FleetNames } from "../protocol/index.js";
import type { AuditEntry } from "./audit-chain.js";
import type { ToolCatalogue } from "./tool-catalogue.js";

/**
 * Refusals an agent's own host made (a BLOCK tool, a tool outside its allow list) reach the audit trail through the tool
 * host, the one writer of AUDIT: the agent reports on `<prefix>.refusal.<its id>`, which the broker lets only that agent
 * publish on, and the record names the agent the subject names. The agent cannot make the record say anything but
 * "this agent was refused this tool": the risk comes from the catalogue and the record is marked `refusedBy: agent-host`.
 * One endpoint per configured agent, so a report on any other subject reaches nobody.
 */
export function refusalEndpoints(o: {
  names: FleetNames;
  config: FleetConfig;
  catalogue: ToolCatalogue;
  now: () => number;
  record: (entry: AuditEntry) => Promise<unknown>;
}): Endpoint[] {
  return o.config.agents.map((agent) =>
    endpoint({
      name: `refusal_${agent.id.replace(/[^a-zA-Z0-9_-]/g, "_")}`,
      subject: o.names.refusal(agent.id),
      request: RefusalReport,
      oneWay: "run",
      handle: async (report) => {
        const tool = o.catalogue.get(report.tool);
        if (!tool) throw new FleetError("TOOL_NOT_FOUND", `no tool "${report.tool}" in the catalogue: nothing to record`);
        await o.record({
          agentId: agent.id,
          tool: tool.name,
          risk: tool.risk,
          input: report.input,
          ok: false,
          error: new FleetError(report.code, report.message).toPayload(),
          durationMs: 0,
          costUsd: 0,
          mode: "run",
          at: o.now(),
          refusedBy: "agent-host",
        });
        return { recorded: true };
      },
    }),
  );
}
