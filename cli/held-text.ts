import type { HeldTask, HoldReason } from "../protocol/index.js";

/** What `fleet status` shows for one held task: whose, which, why and until when (in the fleet's time zone). */
export interface HeldRow {
  agentId: string;
  taskId: string;
  /** "quiet hours", "cap of agent scout", "fleet cap" */
  why: string;
  reason: HoldReason;
  /** epoch ms */
  until: number;
  /** `until` on the fleet's wall clock, e.g. "Fri 06:30 Europe/Berlin" */
  untilText: string;
  /** the task's title, as far as the held assignment tells it */
  title: string;
}

/** The rows of the held-work table, soonest release first. Pure: the CLI and its tests read the same thing. */
export function heldRows(held: readonly HeldTask[], timeZone: string): HeldRow[] {
  return held
    .map((h) => ({
      agentId: h.agentId,
      taskId: h.taskId,
      why: whyText(h.hold.reason, h.agentId),
      reason: h.hold.reason,
      until: h.hold.until,
      untilText: `${wallClock(h.hold.until, timeZone)} ${timeZone}`,
      title: titleOf(h),
    }))
    .sort((a, b) => a.until - b.until || a.agentId.localeCompare(b.agentId));
}

export function whyText(reason: HoldReason, agentId: string): string {
  switch (reason) {
    case "quiet-hours":
      return "quiet hours";
    case "agent-cap":
      return `cap of agent ${agentId}`;
    case "fleet-cap":
      return "fleet cap";
  }
}

function wallClock(at: number, timeZone: string): string {
  if (!Number.isFinite(at)) return "never";
  return new Date(at).toLocaleString("en-GB", { timeZone, weekday: "short", day: "2-digit", month: "short", hour: "2-digit", minute: "2-digit" });
}

function titleOf(h: HeldTask): string {
  for (const part of h.assignment.message.parts) if ("text" in part && typeof part.text === "string") return part.text.split("\n")[0]!.slice(0, 60);
  return "-";
}
