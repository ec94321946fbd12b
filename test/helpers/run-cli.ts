import { execFile } from "node:child_process";
import { CLI } from "./fleet-processes.js";

export interface CliOutcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the compiled `fleet` command as an operator would, without the caller's NATS_URL (tests pass --nats). */
export function runFleet(args: string[], options: { cwd?: string; timeoutMs?: number } = {}): Promise<CliOutcome> {
  const env = { ...process.env };
  delete env.NATS_URL;
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env, cwd: options.cwd, timeout: options.timeoutMs ?? 20_000, encoding: "utf8" }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : null) : 0, stdout, stderr });
    });
  });
}
