import type { FleetConfig } from "../config/index.js";
import { DelegationReport, endpoint, FleetError, type Endpoint, type FleetNames } from "../protocol/index.js";
import type { AuditEntry } from "./audit-chain.js";
import { PeerToolInput, PeerToolOutput, peerToolRisks } from "./peers/index.js";
import type { ToolRuns } from "./tool-runs.js";

/** how long a report's claim may stay unfinished before another report of the same delegation may not wait for it */
const REPORT_CLAIM_MS = 30_000;

/**
 * Atlas's delegations to a peer (behaviours/peer-task-stage.ts) run in Atlas's own process, not on a tool host, yet their
 * spend and latency belong in the audit trail with the governed peer tool's calls, so `fleet audit` and the dashboard
 * attribute them to the delegating agent and the peer alike. Like a refusal (refusal-intake.ts), the orchestrator reports
 * on `<prefix>.delegation.<its id>`, which the broker lets only that agent publish on, and the tool host, the one writer
 * of AUDIT, records it as a call of the tool `<peer>.<skill>`: the same input and output as that tool's own record, the
 * risk from config, marked `reportedBy: agent-host` because the tool host did not run it. Only a granted peer skill is
 * recorded, and only the orchestration layer has an endpoint: no other agent delegates to peers.
 *
 * A delegation is recorded once per task: a task redelivered after Atlas died between reporting and finishing resumes
 * the same peer task and reports it again; the report's run claim (tool-runs.ts, keyed by the task) finds the first one
 * done and records nothing more. A report whose append failed leaves its claim failed, so a retry may record it.
 */
export function delegationEndpoints(o: { names: FleetNames; config: FleetConfig; runs: ToolRuns; record: (entry: AuditEntry) => Promise<unknown> }): Endpoint[] {
  const risks = peerToolRisks(o.config);
  return o.config.agents
    .filter((agent) => agent.layer === "orchestration")
    .map((agent) =>
      endpoint({
        name: `delegation_${agent.id.replace(/[^a-zA-Z0-9_-]/g, "_")}`,
        subject: o.names.delegation(agent.id),
        request: DelegationReport,
        oneWay: "run",
        handle: async (report) => {
          const risk = risks[report.tool];
          if (!risk) throw new FleetError("PEER_SKILL_NOT_GRANTED", `no granted peer skill "${report.tool}" in this fleet's config: nothing to record`);
          const input = PeerToolInput.safeParse(report.input);
          const output = report.ok ? PeerToolOutput.safeParse(report.output) : undefined;
          if (!input.success || (output && !output.success)) throw new FleetError("MESSAGE_INVALID", `a delegation to ${report.tool} is recorded with the peer tool's input and output`);
          const claim = report.taskId === undefined ? undefined : await o.runs.claim(report.tool, "run", `delegation:${report.taskId}`, { agent: agent.id }, REPORT_CLAIM_MS);
          if (claim?.kind === "done") return { recorded: true };
          const appended = o.record({
            agentId: agent.id,
            tool: report.tool,
            risk,
            input: input.data,
            ...(output?.success ? { output: output.data } : {}),
            ok: report.ok,
            ...(report.error ? { error: report.error } : {}),
            durationMs: report.durationMs,
            costUsd: report.costUsd,
            mode: "run",
            at: report.at,
            reportedBy: "agent-host",
          });
          if (!claim) await appended;
          else {
            const outcome = await appended.then(
              () => ({ ok: true as const, output: { recorded: true }, durationMs: 0 }),
              (err: unknown) => ({ ok: false as const, error: FleetError.from(err) }),
            );
            await o.runs.finish(claim, outcome);
            if (!outcome.ok) throw outcome.error;
          }
          return { recorded: true };
        },
      }),
    );
}
