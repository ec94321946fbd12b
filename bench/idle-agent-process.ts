import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

/** One offline agent (`a0000`) in a child process (bench/idle-agent.ts); resolves once it has started. */
export async function startAgentProcess(url: string, prefix: string, workMs = 0): Promise<{ stop: () => Promise<void> }> {
  const args = [join(here, "idle-agent.js"), "--count", "1", "--prefix", prefix, "--nats", url, "--work-ms", String(workMs)];
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  await new Promise<void>((ok, fail) => {
    let seen = "";
    child.stdout.on("data", (d: Buffer) => {
      seen += d.toString();
      if (seen.includes("ready")) ok();
    });
    child.once("exit", (code) => fail(new Error(`agent process exited with ${code}`)));
  });
  return {
    stop: async () => {
      child.kill("SIGTERM");
      await exited;
    },
  };
}
