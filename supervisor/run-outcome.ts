import type { DutyOutcome, Task } from "../protocol/index.js";
import { taskText } from "./outbox-delivery.js";

/** A pipeline run as the scheduler reads it from its finished task. */
export interface RunOutcome {
  outcome: DutyOutcome;
  /** how many findings, when the run's artifacts say */
  findings?: number;
  /** the text to deliver when it found something */
  report?: string;
  /** why it failed */
  reason?: string;
}

/**
 * The pipeline runner's contract: a run ends COMPLETED, and an artifact whose metadata says `found: false` means it
 * found nothing (short-circuit on empty: nothing to deliver); otherwise its artifacts are the report. An artifact's
 * `metadata.findings` (a count or the list) says how many findings there were. Any other end is a failure, with the
 * status message as its reason.
 */
export function runOutcomeOf(task: Task): RunOutcome {
  if (task.status.state !== "TASK_STATE_COMPLETED") {
    return { outcome: "failed", reason: `${task.status.state.replace("TASK_STATE_", "").toLowerCase()}: ${taskText(task)}`.slice(0, 500) };
  }
  const artifacts = task.artifacts ?? [];
  if (artifacts.some((a) => a.metadata?.found === false)) return { outcome: "clean" };
  let findings: number | undefined;
  for (const artifact of artifacts) {
    const said = artifact.metadata?.findings;
    const count = Array.isArray(said) ? said.length : typeof said === "number" && Number.isInteger(said) && said >= 0 ? said : undefined;
    if (count !== undefined) findings = (findings ?? 0) + count;
  }
  return { outcome: "found", report: taskText(task), ...(findings !== undefined ? { findings } : {}) };
}
