import { createHash } from "node:crypto";
import type { JetStreamClient } from "@nats-io/jetstream";
import type { FindingRule } from "../config/index.js";
import { encode, Finding, FleetError, type CodecName, type FleetNames } from "../protocol/index.js";
import { holds, renderText, type PipelineScope } from "./pipeline-templates.js";

/** Where a tool call's findings come from: the run, the step, the element of a forEach. */
export interface FindingOrigin {
  agentId: string;
  /** the duty the run belongs to, else the pipeline's id */
  duty: string;
  taskId: string;
  stepId: string;
  /** the element's index under forEach, 0 otherwise */
  itemIndex: number;
  at: number;
}

/**
 * The findings a tool call's output makes under its step's rules: each rule whose condition holds on the scope (with
 * `output`, and `item` under forEach) gives one finding. Its id derives from (task, step, element, rule), so a resumed run
 * that evaluates the same call again builds the same finding, and publishes it under the same message id.
 */
export function findingsOf(rules: readonly FindingRule[], scope: PipelineScope, origin: FindingOrigin, evidence: unknown): Finding[] {
  const found: Finding[] = [];
  rules.forEach((rule, k) => {
    if (!holds(rule.when, scope)) return;
    const text = (template: string) => renderText(template, scope).trim();
    const id = `f-${createHash("sha256").update([origin.agentId, origin.taskId, origin.stepId, origin.itemIndex, k].join("\u0000")).digest("hex").slice(0, 32)}`;
    found.push(
      Finding.parse({
        id,
        agentId: origin.agentId,
        duty: origin.duty,
        subject: text(rule.subject).slice(0, 500) || origin.stepId,
        key: text(rule.key).slice(0, 500) || `${origin.stepId}.${k}`,
        severity: rule.severity,
        summary: text(rule.summary).slice(0, 1000) || `${origin.stepId}: rule ${k} matched`,
        evidence: bounded(evidence),
        taskId: origin.taskId,
        at: origin.at,
      }),
    );
  });
  return found;
}

/** Evidence larger than this is kept cut, so a finding always fits a NATS payload (the whole output is in the run). */
const MAX_EVIDENCE_CHARS = 4_000;

function bounded(evidence: unknown): unknown {
  const text = JSON.stringify(evidence) ?? "null";
  return text.length <= MAX_EVIDENCE_CHARS ? evidence : { cut: `${text.slice(0, MAX_EVIDENCE_CHARS)}… (${text.length - MAX_EVIDENCE_CHARS} more characters)` };
}

/**
 * Publishes a finding on the agent's own subject (stream FINDINGS), with its id as the message id: the stream keeps one
 * copy of a finding published again within its duplicate window (a resumed run).
 */
export async function publishFinding(js: JetStreamClient, names: FleetNames, codec: CodecName, finding: Finding): Promise<void> {
  try {
    await js.publish(names.finding(finding.agentId), encode(finding, codec), { msgID: finding.id });
  } catch (err) {
    throw new FleetError("NATS_UNAVAILABLE", `finding ${finding.id} could not be published`, { cause: err });
  }
}
