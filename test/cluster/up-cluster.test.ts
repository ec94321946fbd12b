import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { OpenAIServer } from "../../harness/index.js";
import { CLI } from "../helpers/fleet-processes.js";
import { isProcessRunning } from "../helpers/process-alive.js";
import { runFleet } from "../helpers/run-cli.js";
import { waitFor } from "../helpers/wait.js";
import { writeClusterFleet } from "./cluster-fleet.js";

/**
 * `fleet up --cluster 3` in an empty directory: three secured nats-server nodes as supervised children, the fleet's
 * processes on them, `fleet status` showing the processes' hosts, the singletons' holders and the cluster's health; a
 * node killed with -9 is restarted on its store; Ctrl-C stops everything, the nodes last.
 */

describe("fleet up --cluster 3 (processes)", () => {
  let openai: OpenAIServer;
  let fleet: ReturnType<typeof writeClusterFleet>;
  let cwd: string;
  let up: ChildProcess;
  let output = "";
  let exited: Promise<number | null>;

  before(async () => {
    openai = await OpenAIServer.start();
    fleet = writeClusterFleet("fleet", openai.baseUrl);
    cwd = mkdtempSync(join(tmpdir(), "fleet-up-cluster-"));
    const env = { ...process.env };
    delete env.NATS_URL;
    up = spawn(process.execPath, [CLI, "up", "--cluster", "3", "--config", fleet.file], { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    const keep = (d: Buffer) => (output = (output + d.toString()).slice(-20_000));
    up.stdout?.on("data", keep);
    up.stderr?.on("data", keep);
    exited = new Promise((r) => up.once("exit", (code) => r(code)));
    await waitFor("fleet up to say the fleet is up", () => output.includes("is up"), 90_000).catch((err: unknown) => assert.fail(`${String(err)}\n${output}`));
  });

  after(async () => {
    if (up.exitCode === null && up.signalCode === null) {
      up.kill("SIGKILL");
      await exited;
    }
    for (const pid of nodePids()) if (isProcessRunning(pid)) process.kill(pid, "SIGKILL");
    await openai.close();
    fleet.cleanup();
    rmSync(cwd, { recursive: true, force: true });
  });

  it("fleet status shows where each process runs, the lease holders and three servers leading R3 streams", async () => {
    const r = await waitFor("fleet status to show the cluster and the singletons", async () => {
      const s = await runFleet(["status", "--config", fleet.file], { cwd, timeoutMs: 30_000 });
      const shows = [
        /cluster: 3 server\(s\) n1 n2 n3; \d+ streams and buckets R3/,
        /singletons: .*governance on \S+:\d+/,
        /fleet-router\s+1 instance\(s\).* on \S+:\d+/,
        /^scout\s+idle.*\S+:\d+$/m,
      ];
      return s.code === 0 && shows.every((re) => re.test(s.stdout)) ? s : undefined;
    }, 90_000).catch((err: unknown) => assert.fail(`${String(err)}\n${output}`));
    assert.match(r.stdout, /^ship\s+idle.*\S+:\d+$/m);
  });

  // each node writes its ports file, named by its pid, into its directory
  const nodePids = (): number[] =>
    ["n1", "n2", "n3"].flatMap((n) => {
      const dir = join(cwd, ".fleet", "cluster", n);
      return existsSync(dir) ? readdirSync(dir).map((f) => /_(\d+)\.ports$/.exec(f)?.[1]).filter((p) => p !== undefined).map(Number) : [];
    });

  it("a node killed with -9 is restarted on its store", async () => {
    const dir = join(cwd, ".fleet", "cluster", "n2");
    const before = readdirSync(dir).find((f) => f.endsWith(".ports"));
    const pid = Number(/_(\d+)\.ports$/.exec(before ?? "")?.[1]);
    assert.ok(pid > 1, "n2's pid from its ports file");
    process.kill(pid, "SIGKILL");
    await waitFor("n2 to be back under another pid", () => readdirSync(dir).some((f) => f.endsWith(".ports") && f !== before), 30_000);
  });

  it("Ctrl-C stops the fleet and then the three nodes", async () => {
    const nodes = nodePids();
    up.kill("SIGINT");
    const code = await Promise.race([exited, new Promise<"late">((r) => setTimeout(() => r("late"), 30_000))]);
    assert.equal(code, 0, `fleet up exit; output:\n${output.slice(-3000)}`);
    assert.ok(!existsSync(join(cwd, ".fleet", "nats.url")), "the URL file goes with the cluster");
    for (const pid of nodes) assert.ok(!isProcessRunning(pid), `node ${pid} stopped`);
  });
});
