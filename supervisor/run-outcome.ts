import { z } from "zod";
import { OpenProblem, type DutyOutcome, type Task } from "../protocol/index.js";
import { taskText } from "./outbox-delivery.js";

/** A pipeline run as the scheduler reads it from its finished task. */
export interface RunOutcome {
  outcome: DutyOutcome;
  /** how many findings, when the run's artifacts say */
  findings?: number;
  /** how many of the duty's open problems the run saw again (not reported again) */
  stillOpen?: number;
  /** every problem the run saw, new or still open, when its artifacts say: the duty's open problems from now on */
  open?: OpenProblem[];
  /** the text to deliver when it found something new */
  report?: string;
  /** why it failed */
  reason?: string;
}

const OpenList = z.array(OpenProblem);
const Count = z.number().int().min(0);

/**
 * The pipeline runner's contract: a run ends COMPLETED, and an artifact whose metadata says `found: false` means it
 * found nothing new (short-circuit on empty: nothing to deliver); otherwise its artifacts are the report. An artifact's
 * `metadata.findings` (a count or the list) says how many findings there were, `metadata.open` which problems it saw and
 * `metadata.stillOpen` how many of them the duty had open already. A run that saw only open problems found something
 * (the problem is still there) but has nothing new to say. Any other end is a failure, with the status message as its
 * reason.
 */
export function runOutcomeOf(task: Task): RunOutcome {
  if (task.status.state !== "TASK_STATE_COMPLETED") {
    return { outcome: "failed", reason: `${task.status.state.replace("TASK_STATE_", "").toLowerCase()}: ${taskText(task)}`.slice(0, 500) };
  }
  const artifacts = task.artifacts ?? [];
  let open: OpenProblem[] | undefined;
  let stillOpen: number | undefined;
  for (const artifact of artifacts) {
    const listed = OpenList.safeParse(artifact.metadata?.open);
    if (listed.success) open = [...(open ?? []), ...listed.data];
    const again = Count.safeParse(artifact.metadata?.stillOpen);
    if (again.success) stillOpen = (stillOpen ?? 0) + again.data;
  }
  const seen = { ...(open !== undefined ? { open } : {}), ...(stillOpen !== undefined ? { stillOpen } : {}) };
  if (artifacts.some((a) => a.metadata?.found === false)) return stillOpen ? { outcome: "found", findings: 0, ...seen } : { outcome: "clean", ...seen };
  let findings: number | undefined;
  for (const artifact of artifacts) {
    const said = artifact.metadata?.findings;
    const count = Array.isArray(said) ? said.length : typeof said === "number" && Number.isInteger(said) && said >= 0 ? said : undefined;
    if (count !== undefined) findings = (findings ?? 0) + count;
  }
  return { outcome: "found", report: taskText(task), ...(findings !== undefined ? { findings } : {}), ...seen };
}
