import { readFileSync } from "node:fs";

/**
 * Whether a pid names a live process. A zombie (exited, not yet reaped) counts as dead: an orphan re-parented to an
 * init that does not reap still answers kill(pid, 0).
 */
export function isProcessRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if (err instanceof Error && "code" in err && err.code === "ESRCH") return false;
    throw err;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false; // gone between the two checks (or no procfs, where kill() above is all we have)
  }
}
