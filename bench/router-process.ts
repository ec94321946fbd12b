import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import type { NatsServer } from "../harness/index.js";

/** A router process under observation for bench/router: its log tallied, its CPU and the nats-server's read from /proc. */

const CLI = join(resolve(dirname(fileURLToPath(import.meta.url)), ".."), "cli", "main.js");
const CLK_TCK = 100;

const LogLine = z.object({ level: z.number(), msg: z.string(), code: z.string().optional(), kind: z.string().optional() });

/**
 * A real router process, `fleet run router`, with the given config; resolves once it logs `router started`. Its log lines
 * after that are tallied by level, message and error code, and `stop()` returns the tally.
 */
export async function startRouterProcess(url: string, configFile: string): Promise<{ pid: number; tally: Map<string, number>; stop: () => Promise<Map<string, number>> }> {
  const file = configFile;
  // BENCH_ROUTER_PROFILE=<dir>: the router process writes a CPU profile there when it stops (node --cpu-prof)
  const profile = process.env["BENCH_ROUTER_PROFILE"];
  const child = spawn(process.execPath, [...(profile ? ["--cpu-prof", "--cpu-prof-dir", profile] : []), CLI, "run", "router", "--config", file, "--nats", url, "--log-level", "info"], { stdio: ["ignore", "ignore", "pipe"] });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const tally = new Map<string, number>();
  let started = false;
  let partial = "";
  let tail = "";
  await new Promise<void>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`the router did not start in 30 s: ${tail}`)), 30_000);
    child.stderr.on("data", (d: Buffer) => {
      const lines = (partial + d.toString()).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) {
        tail = (tail + line + "\n").slice(-2_000);
        let json: unknown;
        try {
          json = JSON.parse(line);
        } catch {
          continue;
        }
        const parsed = LogLine.safeParse(json);
        if (!parsed.success) continue;
        if (!started && parsed.data.msg === "router started") {
          started = true;
          clearTimeout(timer);
          ok();
        } else if (started) {
          const key = `${parsed.data.level >= 40 ? "warn/error" : "info"} "${parsed.data.msg}"${parsed.data.code ? ` ${parsed.data.code}` : ""}${parsed.data.kind ? ` ${parsed.data.kind}` : ""}`;
          tally.set(key, (tally.get(key) ?? 0) + 1);
        }
      }
    });
    child.once("exit", (code) => fail(new Error(`the router exited with ${code}: ${tail}`)));
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error("the router has no pid");
  return {
    pid,
    tally,
    stop: async () => {
      child.kill("SIGTERM");
      await exited;
      return tally;
    },
  };
}

export const describeTally = (tally: Map<string, number>) => [...tally].map(([key, count]) => `${count} × ${key}`).join("; ") || "nothing";

/** The nats-server's pid: a bench-only peek at the helper's private child process, as messaging.ts peeks at an actor. */
export function natsPid(nats: NatsServer): number {
  const pid = nats["proc"]?.pid;
  if (pid === undefined) throw new Error("the nats-server has no pid");
  return pid;
}

/** CPU seconds (user + system) a process has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}
