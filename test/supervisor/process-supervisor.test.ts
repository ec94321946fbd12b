import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { FleetError } from "../../protocol/errors.js";
import { isProcessRunning } from "../helpers/process-alive.js";
import {
  ProcessSupervisor,
  shouldRestart,
  type ChildSpec,
  type RestartPolicy,
  type SupervisorOptions,
} from "../../supervisor/process-supervisor.js";

const fixture = fileURLToPath(new URL("./fixtures/child.js", import.meta.url));
const logger = pino({ level: "silent" });

function spec(id: string, restart: RestartPolicy, ...args: string[]): ChildSpec {
  return { id, command: process.execPath, args: [fixture, ...args], restart };
}

function supervisor(specs: ChildSpec[], options: Partial<SupervisorOptions> = {}): ProcessSupervisor {
  return new ProcessSupervisor(specs, {
    intensity: 10,
    periodMs: 5_000,
    shutdownTimeoutMs: 1_000,
    restartDelayMs: 20,
    stdio: "ignore",
    logger,
    ...options,
  });
}

/** Records every pid a supervisor started, per child, so a test can check that none is left behind. */
function track(sup: ProcessSupervisor): Map<string, number[]> {
  const pids = new Map<string, number[]>();
  sup.on("child-started", (id, pid) => pids.set(id, [...(pids.get(id) ?? []), pid]));
  return pids;
}

function assertNoneAlive(pids: Map<string, number[]>): void {
  for (const [id, list] of pids) for (const pid of list) assert.equal(isProcessRunning(pid), false, `${id} pid ${pid} still alive`);
}

async function waitFor(what: string, predicate: () => boolean, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function statusOf(sup: ProcessSupervisor, id: string) {
  const status = sup.status().find((s) => s.id === id);
  assert.ok(status, `no status for ${id}`);
  return status;
}

describe("shouldRestart", () => {
  test("follows the policy table", () => {
    assert.equal(shouldRestart("permanent", 0, null), true);
    assert.equal(shouldRestart("transient", 0, null), false);
    assert.equal(shouldRestart("transient", 1, null), true);
    assert.equal(shouldRestart("transient", null, "SIGKILL"), true);
    assert.equal(shouldRestart("temporary", 1, null), false);
  });
});

describe("ProcessSupervisor", () => {
  test("restarts a SIGKILLed permanent child with a new pid", async () => {
    await using sup = supervisor([spec("a", "permanent")]);
    const pids = track(sup);
    await sup.start();
    const first = statusOf(sup, "a").pid;
    assert.ok(first);
    const restarted = once(sup, "child-started");
    process.kill(first, "SIGKILL");
    const [id, second] = await restarted;
    assert.equal(id, "a");
    assert.notEqual(second, first);
    const status = statusOf(sup, "a");
    assert.equal(status.restarts, 1);
    assert.equal(status.state, "running");
    assert.equal(status.pid, second);
    assert.equal(status.lastExit?.signal, "SIGKILL");
    await sup.stop();
    assertNoneAlive(pids);
  });

  test("restarts a transient child only after an abnormal exit", async () => {
    await using sup = supervisor([
      spec("ok", "transient", "--exit-after", "100", "--code", "0"),
      spec("bad", "transient", "--exit-after", "100", "--code", "1"),
    ]);
    const pids = track(sup);
    await sup.start();
    await waitFor("bad to restart", () => (pids.get("bad")?.length ?? 0) >= 2);
    await waitFor("ok to exit", () => statusOf(sup, "ok").state === "exited");
    await sleep(200); // several restart delays: a restart would have happened by now
    const ok = statusOf(sup, "ok");
    assert.equal(pids.get("ok")?.length, 1);
    assert.equal(ok.restarts, 0);
    assert.equal(ok.pid, undefined);
    assert.deepEqual({ code: ok.lastExit?.code, signal: ok.lastExit?.signal }, { code: 0, signal: null });
    assert.ok(statusOf(sup, "bad").restarts >= 1);
    await sup.stop();
    assertNoneAlive(pids);
  });

  test("never restarts a temporary child", async () => {
    await using sup = supervisor([spec("crash", "temporary", "--exit-after", "100", "--code", "1"), spec("killed", "temporary")]);
    const pids = track(sup);
    await sup.start();
    const killed = statusOf(sup, "killed").pid;
    assert.ok(killed);
    process.kill(killed, "SIGKILL");
    await waitFor("both to exit", () => sup.status().every((s) => s.state === "exited"));
    await sleep(200);
    assert.deepEqual(
      sup.status().map((s) => [s.id, s.state, s.restarts, pids.get(s.id)?.length]),
      [
        ["crash", "exited", 0, 1],
        ["killed", "exited", 0, 1],
      ],
    );
  });

  test("gives up when restarts exceed the intensity, leaving no child running", async () => {
    const sup = supervisor([spec("bystander", "permanent"), spec("crash", "permanent", "--exit-after", "50", "--code", "1")], {
      intensity: 2,
    });
    const pids = track(sup);
    const gaveUp = once(sup, "gave-up");
    await sup.start();
    const [error] = await gaveUp;
    assert.ok(error instanceof FleetError);
    assert.equal(error.code, "SUPERVISOR_INTENSITY");
    const exit = await sup.done;
    assert.equal(exit.reason, "gave-up");
    assert.equal(pids.get("crash")?.length, 3); // the first run and two restarts; the third exit is one too many
    assert.ok(sup.status().every((s) => s.pid === undefined && s.state !== "running"));
    assertNoneAlive(pids);
    await sup.stop(); // still fine after giving up
  });

  test("measures the intensity window with the injected clock", async () => {
    let now = 0;
    // Each exit reads the clock once; a clock that jumps past the period keeps every window at one restart.
    await using sup = supervisor([spec("crash", "permanent", "--exit-after", "30", "--code", "1")], {
      intensity: 1,
      periodMs: 500,
      clock: { now: () => (now += 1_000) },
    });
    const pids = track(sup);
    let gaveUp = false;
    sup.on("gave-up", () => (gaveUp = true));
    await sup.start();
    await waitFor("four restarts", () => statusOf(sup, "crash").restarts >= 4);
    assert.equal(gaveUp, false);
    await sup.stop();
    assertNoneAlive(pids);
  });

  test("stop() terminates children in reverse order and SIGKILLs one that ignores SIGTERM", async () => {
    const ready = new Set<string>();
    const sup = supervisor([spec("a", "permanent"), spec("b", "permanent", "--ignore-sigterm"), spec("c", "permanent")], {
      shutdownTimeoutMs: 300,
      stdio: "pipe",
      onChildOutput: (id, line) => line === "ready" && ready.add(id),
    });
    const pids = track(sup);
    const exits: Array<[string, string | null]> = [];
    sup.on("child-exited", (id, _code, signal) => exits.push([id, signal]));
    await sup.start();
    await waitFor("children ready", () => ready.size === 3);
    const began = Date.now();
    await Promise.all([sup.stop(), sup.stop()]);
    assert.ok(Date.now() - began >= 250, "b was given its shutdown timeout");
    assert.deepEqual(exits, [
      ["c", "SIGTERM"],
      ["b", "SIGKILL"],
      ["a", "SIGTERM"],
    ]);
    assert.deepEqual(await sup.done, { reason: "stopped" });
    assert.ok(sup.status().every((s) => s.state === "stopped" && s.pid === undefined));
    assertNoneAlive(pids);
    await sup.stop(); // idempotent
  });

  test("restartChild() replaces one child and counts the restart", async () => {
    await using sup = supervisor([spec("a", "permanent"), spec("b", "permanent")]);
    const pids = track(sup);
    await sup.start();
    const before = statusOf(sup, "b").pid;
    await sup.restartChild("b");
    const after = statusOf(sup, "b");
    assert.notEqual(after.pid, before);
    assert.equal(after.restarts, 1);
    assert.equal(after.state, "running");
    assert.equal(statusOf(sup, "a").restarts, 0);
    await assert.rejects(sup.restartChild("nope"), FleetError);
    await sup.stop();
    assertNoneAlive(pids);
  });

  test("startChild() adds a child to a running supervisor: restarted like the others, stopped before the earlier ones", async () => {
    const ready = new Set<string>();
    const sup = supervisor([spec("server", "permanent")], {
      stdio: "pipe",
      onChildOutput: (id, line) => line === "ready" && ready.add(id),
    });
    const pids = track(sup);
    const exits: string[] = [];
    sup.on("child-exited", (id) => exits.push(id));
    await sup.start();
    await sup.startChild(spec("agent", "permanent"));
    await assert.rejects(sup.startChild(spec("agent", "permanent")), FleetError, "ids stay unique");
    await waitFor("children ready", () => ready.size === 2);
    ready.clear();
    assert.deepEqual(sup.status().map((s) => [s.id, s.state]), [["server", "running"], ["agent", "running"]]);
    process.kill(statusOf(sup, "agent").pid ?? 0, "SIGKILL");
    await waitFor("the added child restarted", () => statusOf(sup, "agent").restarts === 1 && ready.has("agent"));
    await sup.stop();
    assert.deepEqual(exits.slice(-2), ["agent", "server"], "the added child first, the first child last");
    assertNoneAlive(pids);
    await sup.startChild(spec("late", "permanent")); // after stop: nothing is brought up
    assert.equal(sup.status().some((s) => s.id === "late"), false);
  });

  test("a child's own shutdownTimeoutMs replaces the supervisor's", async () => {
    const ready = new Set<string>();
    const sup = supervisor([{ ...spec("stubborn", "permanent", "--ignore-sigterm"), shutdownTimeoutMs: 100 }], {
      shutdownTimeoutMs: 10_000,
      stdio: "pipe",
      onChildOutput: (id, line) => line === "ready" && ready.add(id),
    });
    const pids = track(sup);
    await sup.start();
    await waitFor("child ready", () => ready.size === 1);
    const began = Date.now();
    await sup.stop();
    assert.ok(Date.now() - began < 5_000, "killed after its own 100 ms, not the supervisor's 10 s");
    assertNoneAlive(pids);
  });

  test("start() rejects and stops the others when a child cannot be spawned", async () => {
    const sup = supervisor([spec("a", "permanent"), { id: "missing", command: "/nonexistent/binary", args: [], restart: "permanent" }]);
    const pids = track(sup);
    await assert.rejects(sup.start(), (err: unknown) => err instanceof FleetError && /missing/.test(err.message));
    assert.deepEqual(await sup.done, { reason: "stopped" });
    assertNoneAlive(pids);
  });
});

describe("exitWhenParentDies", () => {
  /** Starts fixture → grandchild, SIGKILLs the middle process and checks that the grandchild follows it. */
  async function grandchildFollowsParent(stdin: "pipe" | "ignore", timeoutMs: number): Promise<void> {
    const parent = spawn(process.execPath, [fixture, "--spawn-grandchild", stdin], { stdio: ["ignore", "pipe", "ignore"] });
    try {
      let grandchild = 0;
      let ready = false;
      createInterface({ input: parent.stdout }).on("line", (line) => {
        const pid = /^grandchild (\d+)$/.exec(line)?.[1];
        if (pid) grandchild = Number(pid);
        if (line === "ready") ready = true;
      });
      // Killing the parent before the grandchild has run exitWhenParentDies would test nothing.
      await waitFor("grandchild ready", () => grandchild > 0 && ready);
      assert.equal(isProcessRunning(grandchild), true);
      process.kill(parent.pid ?? 0, "SIGKILL");
      await waitFor("grandchild to exit", () => !isProcessRunning(grandchild), timeoutMs);
    } finally {
      parent.kill("SIGKILL");
    }
  }

  test("a grandchild exits when its parent is SIGKILLed (stdin closes)", async () => {
    await grandchildFollowsParent("pipe", 3_000);
  });

  test("a grandchild without a stdin pipe exits when its parent pid changes", async () => {
    await grandchildFollowsParent("ignore", 4_000);
  });
});
