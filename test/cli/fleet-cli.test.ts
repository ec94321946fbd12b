import assert from "node:assert/strict";
import { execFile, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { parse, stringify } from "yaml";
import { CLI, DEFAULT_GOVERNANCE_YAML, writeTestFleet } from "../helpers/fleet-processes.js";
import { waitFor } from "../helpers/wait.js";
import { isProcessRunning } from "../helpers/process-alive.js";
import { addressOf, TestSmtpServer } from "../helpers/smtp-server.js";

/** The operator's commands, run as the compiled CLI in child processes, the way an operator runs them. */

/** The child's environment without NATS_URL, so each command finds the fleet the way an operator's would. */
function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NATS_URL;
  return env;
}

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a short command without blocking the event loop (a running `fleet up` keeps writing to our pipes meanwhile). */
function fleet(args: string[], cwd: string, timeoutMs = 20_000): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd, env: childEnv(), timeout: timeoutMs, encoding: "utf8" }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function fleetSync(args: string[], cwd: string): Outcome {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd, env: childEnv(), timeout: 20_000, encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function killIfRunning(pid: number | undefined): void {
  if (pid === undefined || !isProcessRunning(pid)) return;
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
}

function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

describe("fleet CLI", () => {
  let fleetFile: ReturnType<typeof writeTestFleet>;
  const dirs: string[] = [];
  before(() => {
    fleetFile = writeTestFleet();
  });
  after(() => {
    fleetFile?.cleanup();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  describe("a bad config is refused at start", () => {
    let cwd: string;
    let badFile: string;
    before(() => {
      cwd = tempDir("fleet-cli-bad-");
      dirs.push(cwd);
      const config = parse(readFileSync(fleetFile.file, "utf8"));
      config.fleet.timeZone = "Mars/Olympus_Mons";
      config.agents[1] = { ...config.agents[1], dailyCapUsd: -1, defaultTier: "mega", colour: "blue" };
      badFile = join(cwd, "bad.yaml");
      writeFileSync(badFile, stringify(config));
    });

    const badPaths = ["fleet.timeZone", "agents[1].dailyCapUsd", "agents[1].defaultTier", "agents[1].colour"];

    for (const args of [["up"], ["run", "agent", "scout"]]) {
      it(`fleet ${args.join(" ")}: exit 2, CONFIG_INVALID naming every bad field, nothing started`, () => {
        const r = fleetSync([...args, "--config", badFile], cwd);
        assert.equal(r.code, 2, `exit code; stderr:\n${r.stderr}`);
        assert.match(r.stderr, /CONFIG_INVALID/);
        for (const path of badPaths) assert.ok(r.stderr.includes(path), `stderr names ${path}:\n${r.stderr}`);
        assert.ok(!existsSync(join(cwd, ".fleet")), "no embedded nats-server was prepared");
        assert.doesNotMatch(r.stdout, /is up|agent started/);
      });
    }

    it("a config file that does not exist: exit 2, CONFIG_NOT_FOUND", () => {
      const r = fleetSync(["up", "--config", join(cwd, "missing.yaml")], cwd);
      assert.equal(r.code, 2, `exit code; stderr:\n${r.stderr}`);
      assert.match(r.stderr, /CONFIG_NOT_FOUND/);
      assert.ok(!existsSync(join(cwd, ".fleet")));
    });
  });

  describe("fleet up, end to end in a fresh directory", () => {
    let cwd: string;
    let up: ChildProcess | undefined;
    let output = "";
    let exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
    let agentPids: number[] = [];
    let natsPid: number | undefined;
    let taskId: string | undefined;
    let smtp: TestSmtpServer | undefined;

    before(async () => {
      cwd = tempDir("fleet-cli-up-");
      dirs.push(cwd);
      // with bridges.email configured, `fleet up` runs the email bridge under its own identity
      smtp = await TestSmtpServer.start();
      appendFileSync(fleetFile.file, `bridges:\n  email: { host: 127.0.0.1, port: ${smtp.port}, security: none, from: "atlas@dcode.localhost" }\n`);
      const proc = spawn(process.execPath, [CLI, "up", "--config", fleetFile.file], { cwd, env: childEnv(), stdio: ["ignore", "pipe", "pipe"] });
      up = proc;
      const keep = (d: Buffer) => (output = (output + d.toString()).slice(-20_000));
      proc.stdout?.on("data", keep);
      proc.stderr?.on("data", keep);
      exited = new Promise((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal })));
      const urlFile = join(cwd, ".fleet", "nats.url");
      const pidFile = join(cwd, ".fleet", "nats.pid");
      const early = exited.then(({ code, signal }) => {
        throw new Error(`fleet up exited early (code ${code}, signal ${signal}):\n${output}`);
      });
      early.catch(() => undefined);
      await Promise.race([waitFor("fleet up to write .fleet/nats.url and .fleet/nats.pid", () => existsSync(urlFile) && existsSync(pidFile)), early]);
      natsPid = Number(readFileSync(pidFile, "utf8").trim());
      assert.ok(Number.isInteger(natsPid) && natsPid > 1, "nats.pid names a process");
    });

    after(async () => {
      if (up && up.exitCode === null && up.signalCode === null) {
        up.kill("SIGKILL");
        await exited;
      }
      for (const pid of agentPids) killIfRunning(pid);
      killIfRunning(natsPid);
      await smtp?.stop();
    });

    it("fleet status --json: atlas, scout and ship alive, none restarted", async () => {
      type Row = { agentId: string; alive: boolean; restarts: number; pid: number; state: string };
      const rows = await waitFor(
        "all three agents to be alive in fleet status",
        async () => {
          const r = await fleet(["status", "--json"], cwd);
          if (r.code !== 0) return undefined;
          const parsed: Row[] = JSON.parse(r.stdout);
          const ids = parsed.filter((row) => row.alive && row.state !== "stopped" && row.restarts === 0).map((row) => row.agentId);
          return ["atlas", "scout", "ship"].every((id) => ids.includes(id)) ? parsed : undefined;
        },
        30_000,
      ).catch((err: unknown) => assert.fail(`${String(err)}\nfleet up output:\n${output}`));
      agentPids = rows.map((row) => row.pid);
      assert.equal(new Set(agentPids).size, 3, "three processes");
      for (const pid of agentPids) assert.ok(isProcessRunning(pid), `agent process ${pid} is running`);
    });

    it('fleet send scout "check competitor pricing": prints the task\'s states and exits 0', async () => {
      const r = await fleet(["send", "scout", "check competitor pricing"], cwd, 30_000);
      assert.equal(r.code, 0, `exit code; stdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
      const submitted = /task (\S+)\s+TASK_STATE_SUBMITTED/.exec(r.stdout);
      assert.ok(submitted, `a SUBMITTED line:\n${r.stdout}`);
      taskId = submitted[1];
      assert.match(r.stdout, new RegExp(`task ${taskId}\\s+TASK_STATE_COMPLETED`));
      assert.ok(r.stdout.indexOf("TASK_STATE_SUBMITTED") < r.stdout.indexOf("TASK_STATE_COMPLETED"), "in order");
    });

    it("fleet status lists the fleet's services as NATS micro discovery reports them, with the requests they served", async () => {
      const names = ["fleet-agent-a2a", "fleet-agent-control", "fleet-router", "fleet-memory", "fleet-tools", "fleet-governance"];
      // governance and the tool host may still be starting (governance takes its lease first)
      const r = await waitFor("every service kind to answer discovery", async () => {
        const out = await fleet(["status"], cwd);
        return out.code === 0 && names.every((n) => out.stdout.includes(n)) ? out : undefined;
      }, 20_000).catch((err: unknown) => assert.fail(`${String(err)}\nfleet up output:\n${output}`));
      assert.match(r.stdout, /services \(NATS micro/);
      // one A2A service per agent process, and the send above was one of its requests
      const a2a = /fleet-agent-a2a\s+(\d+) instance\(s\)\s+(\d+) requests/.exec(r.stdout);
      assert.ok(a2a, r.stdout);
      assert.equal(Number(a2a[1]), 3);
      assert.ok(Number(a2a[2]) >= 1, r.stdout);
    });

    it("fleet tasks --json lists that task, completed, under scout", async () => {
      assert.ok(taskId, "the send test ran first");
      const r = await fleet(["tasks", "--json"], cwd);
      assert.equal(r.code, 0, r.stderr);
      const tasks: Array<{ agentId: string; id: string; status: { state: string } }> = JSON.parse(r.stdout);
      const task = tasks.find((t) => t.id === taskId);
      assert.ok(task, `task ${taskId} listed:\n${r.stdout.slice(0, 2000)}`);
      assert.equal(task.agentId, "scout");
      assert.equal(task.status.state, "TASK_STATE_COMPLETED");
    });

    it("fleet streams --json shows FLEET_TASKS with each agent's consumer", async () => {
      const r = await fleet(["streams", "--json"], cwd);
      assert.equal(r.code, 0, r.stderr);
      const streams: Array<{ stream: string; consumers: Array<{ name: string }> }> = JSON.parse(r.stdout);
      const tasks = streams.find((s) => s.stream === "FLEET_TASKS");
      assert.ok(tasks, `FLEET_TASKS listed: ${streams.map((s) => s.stream).join(", ")}`);
      const consumers = tasks.consumers.map((c) => c.name).sort();
      assert.deepEqual(consumers, ["agent-atlas", "agent-scout", "agent-ship"]);
    });

    it("the README's email example: an approved email_send is accepted by the SMTP server through the email bridge fleet up started", async () => {
      const sent = await fleet(["send", "atlas", "--tool", "email_send", "--input", JSON.stringify({ to: "ops@mail.localhost", subject: "hi", body: "numbers" }), "--reason", "ops asked"], cwd, 30_000);
      assert.equal(sent.code, 0, sent.stderr + sent.stdout);
      const id = /proposal (\S+) submitted/.exec(sent.stdout)?.[1];
      assert.ok(id, sent.stdout);
      await waitFor("awaiting a human", async () => (await fleet(["proposals", id, "--json"], cwd)).stdout.includes('"awaiting_human"'), 20_000);
      const approved = await fleet(["approve", id], cwd);
      assert.equal(approved.code, 0, approved.stderr + approved.stdout);
      const mail = await waitFor("the email at the SMTP server", () => smtp?.received.find((m) => m.parsed.subject === "hi"), 30_000).catch((err: unknown) =>
        assert.fail(`${String(err)}\nfleet up output:\n${output}`),
      );
      assert.equal(addressOf(mail.parsed.to), "ops@mail.localhost");
      assert.equal(mail.parsed.text?.trim(), "numbers");
    });

    it("Ctrl-C: fleet up exits 0 and leaves no process and no nats.url behind", async () => {
      assert.ok(up && agentPids.length === 3 && natsPid, "the fleet came up");
      up.kill("SIGINT");
      const result = await Promise.race([exited, sleep(20_000, undefined, { ref: false })]);
      assert.ok(result, `fleet up still running 20 s after SIGINT:\n${output}`);
      assert.deepEqual(result, { code: 0, signal: null }, `exit status; output:\n${output}`);
      assert.ok(!existsSync(join(cwd, ".fleet", "nats.url")), ".fleet/nats.url removed");
      for (const pid of agentPids) assert.ok(!isProcessRunning(pid), `agent process ${pid} stopped`);
      assert.ok(!isProcessRunning(natsPid), `nats-server ${natsPid} stopped`);
    });
  });

  it("fleet up with a config governance would refuse: refused at start with the field's path, nothing started", async () => {
    const cwd = tempDir("fleet-cli-badgov-");
    dirs.push(cwd);
    // atlas may propose CONFIRM tools ("*") but no channel takes approval requests
    const file = join(cwd, "fleet.yaml");
    writeFileSync(file, readFileSync(fleetFile.file, "utf8").replace(DEFAULT_GOVERNANCE_YAML, ""));
    assert.doesNotMatch(readFileSync(file, "utf8"), /approvals/);
    const r = await fleet(["up", "--config", file], cwd);
    assert.notEqual(r.code, 0, "non-zero exit");
    assert.match(r.stderr, /CONFIG_INVALID: governance\.approvals\.channels: agent "atlas" may propose CONFIRM tools/);
    assert.ok(!existsSync(join(cwd, ".fleet", "nats.url")), "no server was started");
  });

  it("fleet status where no NATS server answers: fails fast with NATS_UNAVAILABLE", async () => {
    const cwd = tempDir("fleet-cli-nonats-");
    dirs.push(cwd);
    const started = Date.now();
    const r = await fleet(["status", "--nats", "nats://127.0.0.1:1"], cwd);
    const elapsed = Date.now() - started;
    assert.notEqual(r.code, 0, "non-zero exit");
    assert.match(r.stderr, /NATS_UNAVAILABLE/);
    assert.ok(elapsed < 10_000, `answered in ${elapsed} ms`);
  });
});
