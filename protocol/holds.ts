import { z } from "zod";
import { TaskAssignment } from "./records.js";

/*
 * Held work: model work that waits instead of failing. Quiet hours hold it until the window ends; a spent daily cap
 * (the agent's or the fleet's, past the nano grace) holds it until the fleet's midnight. A held task is neither failed
 * nor retried: its Task stays open (SUBMITTED, with a status message and `metadata.held`), its message is settled, and
 * the assignment waits in KV `held` until it is sent again at `until`.
 */

/** Why work waits: the fleet's quiet hours, the agent's daily cap, or the fleet's daily cap. */
export const HoldReason = z.enum(["quiet-hours", "agent-cap", "fleet-cap"]);
export type HoldReason = z.infer<typeof HoldReason>;

export const Hold = z.object({
  reason: HoldReason,
  /** epoch ms when the work may run again: the end of the quiet window, or the fleet's next midnight */
  until: z.number(),
  /** one line for the operator, e.g. "quiet hours until 06:30 Europe/Berlin" */
  detail: z.string(),
  /** what the work found before it was held (a duty run's problems, published already): its next runs know them */
  found: z.array(z.object({ subject: z.string(), key: z.string() })).max(200).optional(),
});
export type Hold = z.infer<typeof Hold>;

/**
 * The value under `<agentId>.<taskId>` in KV `held`: the assignment exactly as it arrived (sent again at `until`), and
 * why and since when it waits. The key is deleted once the assignment is back on TASKS.
 */
export const HeldTask = z.object({
  agentId: z.string().min(1),
  taskId: z.string().min(1),
  hold: Hold,
  /** epoch ms the hold was recorded */
  since: z.number(),
  assignment: TaskAssignment,
});
export type HeldTask = z.infer<typeof HeldTask>;

/** What `metadata.held` on a held Task says (the A2A view of the same hold). */
export const TaskHeldMetadata = Hold.extend({ since: z.number() });
export type TaskHeldMetadata = z.infer<typeof TaskHeldMetadata>;

/** A Task's hold, if its metadata carries one that parses. */
export function heldOf(metadata: Record<string, unknown> | undefined): TaskHeldMetadata | undefined {
  const parsed = TaskHeldMetadata.safeParse(metadata?.held);
  return parsed.success ? parsed.data : undefined;
}
