import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { DIST } from "./fleet-processes.js";

/** The fixture MCP server (test/fixtures/mcp-server.ts), compiled. */
export const MCP_FIXTURE = join(DIST, "test", "fixtures", "mcp-server.js");

/** The fixture over streamable HTTP on a free port, with a bearer token when given; `stop()` kills it. */
export async function startHttpFixture(state: string, token?: string): Promise<{ url: string; child: ChildProcess; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [MCP_FIXTURE, "--state", state, "--http", "0", ...(token ? ["--token", token] : [])], { stdio: ["ignore", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout! });
  const [line] = (await once(lines, "line")) as [string];
  lines.close();
  const port = (JSON.parse(line) as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    child,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      await once(child, "exit");
    },
  };
}
