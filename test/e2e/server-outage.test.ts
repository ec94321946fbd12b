import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { CLI, writeTestFleet } from "../helpers/fleet-processes.js";
import { FleetClient } from "../helpers/fleet-client.js";
import { OpenAIServer } from "../helpers/openai-server.js";
import { isProcessRunning } from "../helpers/process-alive.js";
import { waitFor } from "../helpers/wait.js";

/**
 * The embedded nats-server is a supervised child of `fleet up`: killed, it is restarted on its store and ports, every
 * process reconnects and the work in flight completes; Ctrl-C while it is away still stops the fleet within seconds;
 * and `fleet up` killed outright takes the server with it.
 */

interface RunningUp {
  proc: ChildProcess;
  cwd: string;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `fleet up` in a fresh directory, as an operator starts it; resolves once its server and seeds are written. */
async function startUp(config: string): Promise<RunningUp> {
  const cwd = mkdtempSync(join(tmpdir(), "fleet-outage-"));
  const env = { ...process.env };
  delete env.NATS_URL;
  const proc = spawn(process.execPath, [CLI, "up", "--config", config], { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const keep = (d: Buffer) => (out = (out + d.toString()).slice(-200_000));
  proc.stdout?.on("data", keep);
  proc.stderr?.on("data", keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => proc.once("exit", (code, signal) => r({ code, signal })));
  const up = { proc, cwd, output: () => out, exited };
  await waitFor("fleet up to start its server", () => existsSync(join(cwd, ".fleet", "nats.url")) && existsSync(join(cwd, ".fleet", "creds", "operator.nk")), 30_000).catch((err: unknown) =>
    assert.fail(`${String(err)}\n${out}`),
  );
  return up;
}

function natsPid(up: RunningUp): number {
  return Number(readFileSync(join(up.cwd, ".fleet", "nats.pid"), "utf8").trim());
}

/** The supervisor's own lines: which children it started again, and which exited without being stopped. */
function restarted(output: string): string[] {
  return [...output.matchAll(/child started\s+child=(\S+) restarts=([1-9]\d*)/g)].map((m) => m[1] ?? "");
}
function exitedOnTheirOwn(output: string): string[] {
  return [...output.matchAll(/child exited\s+child=(\S+)/g)].map((m) => m[1] ?? "");
}

/** Every process whose parent is `pid` (the supervisor's children). */
function childrenOf(pid: number): number[] {
  const r = spawnSync("ps", ["-o", "pid=", "--ppid", String(pid)], { encoding: "utf8" });
  return r.stdout.split("\n").map((l) => Number(l.trim())).filter((n) => n > 0);
}

async function stopUp(up: RunningUp | undefined): Promise<void> {
  if (!up) return;
  if (up.proc.exitCode === null && up.proc.signalCode === null) {
    up.proc.kill("SIGTERM");
    const stopped = await Promise.race([up.exited.then(() => true), new Promise((r) => setTimeout(() => r(false), 20_000))]);
    if (!stopped) up.proc.kill("SIGKILL");
  }
  const pidFile = join(up.cwd, ".fleet", "nats.pid");
  if (existsSync(pidFile) && isProcessRunning(natsPid(up))) process.kill(natsPid(up), "SIGKILL");
  rmSync(up.cwd, { recursive: true, force: true });
}

describe("fleet up rides out the death of its embedded server", () => {
  let openai: OpenAIServer;
  let fleet: ReturnType<typeof writeTestFleet>;
  let up: RunningUp | undefined;
  let second: RunningUp | undefined;
  let client: FleetClient | undefined;
  let url = "";

  before(async () => {
    openai = await OpenAIServer.start();
    fleet = writeTestFleet({ prefix: "outage" });
    // every tier on the scripted provider, so a model call can be under way when the server is killed; no dashboard
    // (its fixed port could be another test's)
    const text = readFileSync(fleet.file, "utf8").replaceAll("outputPerM: 2 }", `outputPerM: 2, baseUrl: "${openai.baseUrl}" }`);
    writeFileSync(fleet.file, `${text}dashboard: { enabled: false }\n`);
    up = await startUp(fleet.file);
    url = readFileSync(join(up.cwd, ".fleet", "nats.url"), "utf8").trim();
    client = await FleetClient.connect(url, "outage", { nkeySeedFile: join(up.cwd, ".fleet", "creds", "operator.nk") });
    await client.waitAlive(["atlas", "scout", "ship"], 60_000);
    const running = up;
    await waitFor("the scheduler and the router to start", () => /scheduler started/.test(running.output()) && /router started/.test(running.output()), 60_000);
  });

  after(async () => {
    await client?.close().catch(() => undefined);
    await stopUp(up);
    await stopUp(second);
    await openai?.close();
    fleet?.cleanup();
  });

  it("kill -9: restarted on its store; a task sent before and one sent after complete; no other child restarted", async () => {
    assert.ok(up && client);
    const running = up;
    const fleetClient = client;
    // the first task's model call is with the provider when the server dies
    openai.answerWith(() => ({ delayMs: 2_500 }));
    const before = await fleetClient.send("scout", "check competitor pricing");
    await waitFor("a model call under way", () => openai.requests.some((r) => r.path.endsWith("/chat/completions")), 30_000);
    const killed = natsPid(running);
    process.kill(killed, "SIGKILL");
    const restartedPid = await waitFor("the server to be started again", () => {
      const pid = natsPid(running);
      return pid !== killed && isProcessRunning(pid) ? pid : undefined;
    }, 30_000).catch((err: unknown) => assert.fail(`${String(err)}\n${running.output().slice(-5_000)}`));
    openai.answerWith(() => ({}));
    // the client reconnects like every process of the fleet; the send is retried until it has
    const afterTask = await waitFor("a send after the restart", () => fleetClient.send("ship", "report the deploy status"), 30_000);

    const first = await fleetClient.waitState("scout", before.id, "TASK_STATE_COMPLETED", 90_000);
    const second = await fleetClient.waitState("ship", afterTask.id, "TASK_STATE_COMPLETED", 60_000);
    assert.equal(first.id, before.id, "the task sent before the kill survived in the restarted server's store");
    assert.equal(second.status.state, "TASK_STATE_COMPLETED");

    const out = running.output();
    assert.deepEqual(restarted(out), ["nats"], `only the server was started again:\n${out.slice(-5_000)}`);
    assert.deepEqual(exitedOnTheirOwn(out), ["nats"], "no other child exited");
    assert.doesNotMatch(out, /TimeoutError: timeout\n|Unhandled|unhandled/, "no process crashed");
    // the scheduler still runs and holds its lease
    const lease = await fleetClient.resources.kv.leases.get("scheduler");
    const holderPid = Number(lease?.string().split(":").pop());
    assert.ok(isProcessRunning(holderPid), `the scheduler (${lease?.string()}) runs`);
    assert.ok(isProcessRunning(restartedPid));
    assert.match(readFileSync(join(running.cwd, ".fleet", "nats-server.conf"), "utf8"), new RegExp(`listen: 127\\.0\\.0\\.1:${new URL(url).port}\n`), "restarted on the same port");
  });

  it("Ctrl-C while the server is away: fleet up exits within seconds, and every child is gone", async () => {
    assert.ok(up);
    const running = up;
    await client?.close();
    client = undefined;
    const children = childrenOf(running.proc.pid ?? 0);
    assert.ok(children.length >= 8, `the supervisor's children: ${children.join(" ")}`);
    const server = natsPid(running);
    process.kill(server, "SIGKILL");
    const started = Date.now();
    running.proc.kill("SIGINT");
    const exit = await running.exited;
    const tookMs = Date.now() - started;
    assert.equal(exit.code, 0, running.output().slice(-5_000));
    assert.ok(tookMs < 10_000, `stopped in ${tookMs} ms:\n${running.output().slice(-5_000)}`);
    for (const pid of [...children, server]) assert.equal(isProcessRunning(pid), false, `process ${pid} is gone`);
    assert.equal(existsSync(join(running.cwd, ".fleet", "nats.url")), false);
  });

  it("fleet up killed outright takes its embedded server with it", async () => {
    second = await startUp(fleet.file);
    const running = second;
    const server = await waitFor("the server's pid", () => (existsSync(join(running.cwd, ".fleet", "nats.pid")) ? natsPid(running) : undefined), 30_000);
    await waitFor("the fleet's children to start", () => /child started\s+child=router/.test(running.output()), 30_000);
    running.proc.kill("SIGKILL");
    await running.exited;
    await waitFor("the server to stop", () => !isProcessRunning(server), 15_000);
  });
});
