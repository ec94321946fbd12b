import { execFileSync } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { z } from "zod";
import { FleetError } from "../../protocol/index.js";
import { defineTool } from "../tool.js";

/*
 * AUTO: whether a process runs on the tool host, found by name (its command name, or the base name of its program) or by
 * a pid file, with its pid, state, uptime and resident memory, read from /proc (Linux). A process that is not running is
 * an answer (running: false), not a failure; a pid file naming a dead pid says so.
 */

export interface ProcessInfo {
  pid: number;
  name: string;
  state: string;
  uptimeSeconds: number;
  rssBytes: number | null;
  command: string;
}

let ticksPerSecond: number | undefined;
/** USER_HZ: the unit of a process's start time in /proc/<pid>/stat (100 on nearly every Linux). */
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

async function readOrUndefined(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch {
    return undefined;
  }
}

/** The process's record, or undefined when there is no such process (or it exited while being read). */
export async function processInfo(pid: number): Promise<ProcessInfo | undefined> {
  const stat = await readOrUndefined(`/proc/${pid}/stat`);
  if (stat === undefined) return undefined;
  // the command name sits in parentheses and may itself hold spaces and parentheses: the fields start after the last ")"
  const close = stat.lastIndexOf(")");
  const name = stat.slice(stat.indexOf("(") + 1, close);
  const fields = stat.slice(close + 2).split(" ");
  const state = fields[0] ?? "?";
  const startTicks = Number(fields[19]);
  const [status, uptime, cmdline] = await Promise.all([readOrUndefined(`/proc/${pid}/status`), readOrUndefined("/proc/uptime"), readOrUndefined(`/proc/${pid}/cmdline`)]);
  const systemUptime = Number(uptime?.split(" ")[0] ?? NaN);
  const rssKb = /^VmRSS:\s+(\d+)\s+kB/m.exec(status ?? "")?.[1];
  return {
    pid,
    name,
    state,
    uptimeSeconds: Number.isFinite(systemUptime) && Number.isFinite(startTicks) ? Math.max(0, Math.round(systemUptime - startTicks / clockTicks())) : 0,
    // kernel threads have no resident set of their own
    rssBytes: rssKb === undefined ? null : Number(rssKb) * 1024,
    command: (cmdline ?? "").split("\0").filter(Boolean).join(" ").slice(0, 300),
  };
}

async function byName(name: string): Promise<ProcessInfo[]> {
  const pids = (await readdir("/proc")).filter((d) => /^\d+$/.test(d)).map(Number);
  const found: ProcessInfo[] = [];
  for (const pid of pids) {
    const info = await processInfo(pid);
    if (!info) continue;
    const program = info.command.split(" ")[0]?.split("/").at(-1);
    if (info.name === name || program === name) found.push(info);
  }
  return found.sort((a, b) => a.pid - b.pid);
}

export const processStatus = defineTool({
  name: "process_status",
  description:
    "Is a process running on the tool host? Find it by name (command name or program base name) or by a pid file; report pid, state, uptime and resident memory (Linux /proc).",
  risk: "AUTO",
  input: z
    .strictObject({
      name: z.string().min(1).max(255).optional(),
      pidFile: z.string().min(1).optional(),
    })
    .refine((i) => (i.name === undefined) !== (i.pidFile === undefined), { error: "name exactly one of name and pidFile" }),
  handler: async (input) => {
    if ((await readOrUndefined("/proc/uptime")) === undefined) throw new FleetError("TOOL_FAILED", "process_status reads /proc, which this host does not have (Linux only)");
    if (input.name !== undefined) {
      const processes = await byName(input.name);
      return { name: input.name, running: processes.length > 0, processes };
    }
    const pidFile = input.pidFile ?? "";
    const text = await readOrUndefined(pidFile);
    if (text === undefined) return { pidFile, running: false, reason: "the pid file does not exist or cannot be read" };
    const pid = Number(text.trim());
    if (!Number.isInteger(pid) || pid <= 0) return { pidFile, running: false, reason: `the pid file holds no pid ("${text.trim().slice(0, 40)}")` };
    const info = await processInfo(pid);
    return info ? { pidFile, running: true, processes: [info] } : { pidFile, running: false, reason: `no process ${pid} (a stale pid file)` };
  },
});
