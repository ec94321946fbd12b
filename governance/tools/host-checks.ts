import { statfs } from "node:fs/promises";
import { freemem, loadavg, totalmem, uptime } from "node:os";
import { z } from "zod";
import { defineTool, type ToolDefinition } from "../tool.js";

/* AUTO: read-only checks of the machine the tool host runs on. */

const percent = (part: number, whole: number): number => (whole > 0 ? Math.round((1000 * part) / whole) / 10 : 0);

export const diskUsage = defineTool({
  name: "disk_usage",
  description: "Report the size, free and used bytes and the used percentage of the file system holding a path on the tool host.",
  risk: "AUTO",
  input: z.strictObject({ path: z.string().min(1).default("/") }),
  handler: async (input) => {
    const fs = await statfs(input.path);
    const total = fs.blocks * fs.bsize;
    // as df reports it: "free" is what an unprivileged process may still use; the root reserve counts as neither
    const free = fs.bavail * fs.bsize;
    const used = (fs.blocks - fs.bfree) * fs.bsize;
    return { path: input.path, totalBytes: total, freeBytes: free, usedBytes: used, usedPercent: percent(used, used + free) };
  },
});

export const memoryUsage = defineTool({
  name: "memory_usage",
  description: "Report the tool host's total, free and used memory, the used percentage, and its 1, 5 and 15 minute load averages.",
  risk: "AUTO",
  input: z.strictObject({}),
  handler: async () => {
    const total = totalmem();
    const free = freemem();
    const [load1 = 0, load5 = 0, load15 = 0] = loadavg();
    return { totalBytes: total, freeBytes: free, usedBytes: total - free, usedPercent: percent(total - free, total), load: { "1m": load1, "5m": load5, "15m": load15 }, uptimeSeconds: Math.round(uptime()) };
  },
});

export const hostChecks: ToolDefinition[] = [diskUsage, memoryUsage];
