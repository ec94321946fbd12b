import { spawn, type ChildProcess } from "node:child_process";
import { EventEmitter } from "node:events";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import type { Logger } from "pino";
import { FleetError, type Clock } from "../protocol/index.js";

/** permanent: always restarted; transient: only after an abnormal exit (non-zero code or a signal); temporary: never. */
export type RestartPolicy = "permanent" | "transient" | "temporary";

export interface ChildSpec {
  id: string;
  command: string;
  args: string[];
  /** Added to the supervisor's own environment, which children inherit (they need PATH, HOME, ...). */
  env?: Record<string, string>;
  cwd?: string;
  restart: RestartPolicy;
  /** How long this child gets between SIGTERM and SIGKILL; default the supervisor's shutdownTimeoutMs. */
  shutdownTimeoutMs?: number;
  /** its own process group: a Ctrl-C in the terminal does not reach it (a server that must outlive the processes draining into it) */
  detached?: boolean;
}

export interface SupervisorOptions {
  /** Give up when more than `intensity` automatic restarts happen within `periodMs`, over all children. */
  intensity: number;
  periodMs: number;
  /** How long each child gets between SIGTERM and SIGKILL. */
  shutdownTimeoutMs: number;
  logger: Logger;
  /** Pause before an automatic restart, so a crashing child cannot spin the CPU. Default 100 ms. */
  restartDelayMs?: number;
  clock?: Clock;
  /** What the children's stdout/stderr are connected to. Default "inherit". stdin is always a pipe (see below). */
  stdio?: "inherit" | "pipe" | "ignore";
  /** With stdio "pipe": called once per line the child writes to stdout or stderr. */
  onChildOutput?: (id: string, line: string) => void;
}

export type ChildState = "starting" | "running" | "restarting" | "stopped" | "exited";

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  at: number;
}

export interface ChildStatus {
  id: string;
  pid: number | undefined;
  state: ChildState;
  restarts: number;
  lastExit?: ChildExit;
}

/** Why the supervisor stopped; the value `done` resolves with. */
export type SupervisorExit = { reason: "stopped" } | { reason: "gave-up"; error: FleetError };

export interface SupervisorEvents {
  "child-started": [id: string, pid: number];
  "child-exited": [id: string, code: number | null, signal: NodeJS.Signals | null];
  "gave-up": [error: FleetError];
}

/** The restart-policy table, kept pure so the decision does not depend on process plumbing. */
export function shouldRestart(policy: RestartPolicy, code: number | null, signal: string | null): boolean {
  if (policy === "permanent") return true;
  if (policy === "temporary") return false;
  return code !== 0 || signal !== null; // a failed spawn (both null) is abnormal too
}

/** One spawned OS process of a child; a restart makes a new run. */
interface Run {
  proc: ChildProcess;
  ended: boolean;
  exited: Promise<void>;
  /** Set when we end it ourselves (stop, manual restart): that exit must not trigger an automatic restart. */
  intentional: boolean;
}

interface Child {
  spec: ChildSpec;
  state: ChildState;
  restarts: number;
  lastExit?: ChildExit;
  run?: Run;
  restartTimer?: NodeJS.Timeout;
  manualRestart?: Promise<void>;
}

/**
 * An OTP-style one_for_one supervisor of OS processes: a child that exits is restarted on its own, according to its
 * policy, until restarts exceed the intensity; then every child is stopped and the supervisor gives up.
 *
 * Children never outlive the supervisor: they are spawned non-detached, stop() terminates them, and each gets a pipe
 * on stdin that is never written to, so a child using exitWhenParentDies() (parent-watch.ts) also exits when the
 * supervisor is SIGKILLed.
 *
 * No signal handlers are installed (nothing global). The process that owns the supervisor must do it:
 * `process.once("SIGTERM", () => void supervisor.stop())`, likewise for SIGINT. On Ctrl-C the terminal also sends
 * SIGINT to the children (same process group); restartDelayMs gives stop() the time to cancel those restarts.
 */
export class ProcessSupervisor extends EventEmitter<SupervisorEvents> {
  /** Resolves, never rejects, once every child has exited after stop() or after giving up. */
  readonly done: Promise<SupervisorExit>;

  private readonly children: Child[];
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly stdio: "inherit" | "pipe" | "ignore";
  private readonly restartDelayMs: number;
  /** Times of recent automatic restarts, for the intensity window. */
  private restartTimes: number[] = [];
  private started = false;
  private closing = false;
  private stopping: Promise<void> | undefined;
  private resolveDone!: (exit: SupervisorExit) => void;

  constructor(specs: ChildSpec[], private readonly options: SupervisorOptions) {
    super();
    const ids = new Set<string>();
    for (const spec of specs) {
      if (ids.has(spec.id)) throw new FleetError("CONFIG_INVALID", `duplicate child id "${spec.id}"`);
      ids.add(spec.id);
    }
    this.children = specs.map((spec) => ({ spec, state: "stopped", restarts: 0 }));
    this.log = options.logger.child({ component: "supervisor" });
    this.clock = options.clock ?? { now: () => Date.now() };
    this.stdio = options.stdio ?? "inherit";
    this.restartDelayMs = options.restartDelayMs ?? 100;
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
  }

  /** Spawns the children in order. If one cannot be spawned at all (e.g. ENOENT), stops the others and rejects. */
  async start(): Promise<void> {
    if (this.started) throw new FleetError("INTERNAL", "supervisor already started");
    this.started = true;
    for (const child of this.children) {
      if (this.closing) return;
      if (child.run) continue; // already brought up by an early restartChild()
      try {
        await this.launch(child);
      } catch (err) {
        await this.stop();
        const reason = err instanceof Error ? err.message : String(err);
        throw new FleetError("INTERNAL", `child "${child.spec.id}" failed to start: ${reason}`, { cause: err });
      }
    }
  }

  /**
   * Adds a child to a running supervisor and starts it (OTP's start_child): it is stopped before every child started
   * earlier. How `fleet up` starts the fleet once its first child, the embedded server, answers.
   */
  async startChild(spec: ChildSpec): Promise<void> {
    if (!this.started) throw new FleetError("INTERNAL", "supervisor is not running");
    if (this.closing) return; // stopping (or given up): like start(), nothing more is brought up
    if (this.children.some((c) => c.spec.id === spec.id)) throw new FleetError("CONFIG_INVALID", `duplicate child id "${spec.id}"`);
    const child: Child = { spec, state: "stopped", restarts: 0 };
    this.children.push(child);
    try {
      await this.launch(child);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new FleetError("INTERNAL", `child "${spec.id}" failed to start: ${reason}`, { cause: err });
    }
  }

  /** Stops restarts, then terminates the children one by one in reverse start order. Idempotent. */
  stop(): Promise<void> {
    return this.shutdown({ reason: "stopped" });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  status(): ChildStatus[] {
    return this.children.map((child) => ({
      id: child.spec.id,
      pid: child.state === "starting" || child.state === "running" ? child.run?.proc.pid : undefined,
      state: child.state,
      restarts: child.restarts,
      ...(child.lastExit ? { lastExit: { ...child.lastExit } } : {}),
    }));
  }

  /**
   * Terminates one child (SIGTERM, then SIGKILL after shutdownTimeoutMs) and starts it again. Counts in the child's
   * restarts but not towards the intensity: an operator's deliberate restart should not make the supervisor give up.
   */
  restartChild(id: string): Promise<void> {
    const child = this.children.find((c) => c.spec.id === id);
    if (!child) return Promise.reject(new FleetError("INTERNAL", `no child with id "${id}"`));
    if (!this.started || this.closing) return Promise.reject(new FleetError("INTERNAL", "supervisor is not running"));
    // Two overlapping restarts would each spawn a process and lose track of one of them.
    child.manualRestart ??= (async () => {
      clearTimeout(child.restartTimer);
      child.restartTimer = undefined;
      await this.terminate(child);
      if (this.closing) return;
      child.restarts++;
      await this.launch(child);
    })().finally(() => (child.manualRestart = undefined));
    return child.manualRestart;
  }

  /** Spawns one run of a child; resolves once the OS process exists, rejects if it could not be spawned. */
  private launch(child: Child): Promise<void> {
    const { spec } = child;
    child.state = "starting";
    const proc = spawn(spec.command, spec.args, {
      cwd: spec.cwd,
      env: spec.env ? { ...process.env, ...spec.env } : undefined,
      detached: spec.detached ?? false,
      stdio: ["pipe", this.stdio, this.stdio],
    });
    // Nothing is ever written to stdin; it exists so the child sees EOF when we die. Ignore EPIPE and the like.
    proc.stdin?.on("error", () => {});
    if (this.stdio === "pipe") {
      this.forward(spec.id, proc.stdout);
      this.forward(spec.id, proc.stderr);
    }
    let markExited!: () => void;
    const run: Run = { proc, ended: false, intentional: false, exited: new Promise((r) => (markExited = r)) };
    child.run = run;

    return new Promise((resolve, reject) => {
      proc.once("spawn", () => {
        const pid = proc.pid;
        if (pid === undefined) return; // cannot happen: 'spawn' means the OS gave it a pid
        child.state = "running";
        this.log.info({ child: spec.id, pid, restarts: child.restarts }, "child started");
        this.emit("child-started", spec.id, pid);
        resolve();
      });
      proc.once("exit", (code, signal) => {
        this.onExit(child, run, code, signal);
        markExited();
      });
      proc.on("error", (err) => {
        // After a successful spawn this only reports a failed kill(); the 'exit' event still tells the real story.
        if (proc.pid !== undefined) return void this.log.warn({ child: spec.id, pid: proc.pid, err }, "child error");
        // A failed spawn emits 'error' and no 'exit'.
        this.onExit(child, run, null, null, err);
        markExited();
        reject(err);
      });
    });
  }

  private forward(id: string, stream: Readable | null): void {
    if (!stream) return;
    // readline also drains the pipe, so a chatty child never blocks on a full buffer even without a listener.
    createInterface({ input: stream, crlfDelay: Infinity }).on("line", (line) => this.options.onChildOutput?.(id, line));
  }

  private onExit(child: Child, run: Run, code: number | null, signal: NodeJS.Signals | null, spawnError?: Error): void {
    if (run.ended) return;
    run.ended = true;
    run.proc.stdin?.destroy();
    const { id, restart } = child.spec;
    const at = this.clock.now();
    child.lastExit = { code, signal, at };
    const data = { child: id, pid: run.proc.pid, code, signal, restarts: child.restarts };
    if (spawnError) this.log.error({ ...data, err: spawnError }, "child failed to spawn");
    else if (run.intentional || this.closing) this.log.info(data, "child stopped");
    else if (code !== 0 || signal !== null) this.log.warn(data, "child exited");
    else this.log.info(data, "child exited");
    this.emit("child-exited", id, code, signal);

    if (run.intentional || this.closing) {
      child.state = "stopped";
      return;
    }
    if (!shouldRestart(restart, code, signal)) {
      child.state = "exited";
      return;
    }
    if (this.intensityExceeded(at)) {
      child.state = "exited";
      const error = new FleetError(
        "SUPERVISOR_INTENSITY",
        `child "${id}" exited: more than ${this.options.intensity} restarts within ${this.options.periodMs} ms`,
      );
      this.log.error({ child: id, intensity: this.options.intensity, periodMs: this.options.periodMs }, "supervisor gave up");
      void this.shutdown({ reason: "gave-up", error });
      return;
    }
    child.state = "restarting";
    child.restartTimer = setTimeout(() => {
      child.restartTimer = undefined;
      if (this.closing) return;
      child.restarts++;
      // A failed spawn is handled by onExit like any other abnormal exit, so the rejection carries nothing new.
      this.launch(child).catch(() => {});
    }, this.restartDelayMs);
  }

  /** Records one automatic restart at `now` and says whether the sliding window now holds too many. */
  private intensityExceeded(now: number): boolean {
    const since = now - this.options.periodMs;
    this.restartTimes = this.restartTimes.filter((t) => t > since);
    this.restartTimes.push(now);
    return this.restartTimes.length > this.options.intensity;
  }

  private shutdown(exit: SupervisorExit): Promise<void> {
    this.stopping ??= (async () => {
      // Intake first: from here on no exit schedules a restart and no pending restart fires.
      this.closing = true;
      for (const child of this.children) {
        clearTimeout(child.restartTimer);
        child.restartTimer = undefined;
        if (child.state === "restarting") child.state = "stopped";
      }
      for (const child of [...this.children].reverse()) await this.terminate(child);
      this.log.info({ reason: exit.reason }, "supervisor stopped");
      try {
        if (exit.reason === "gave-up") this.emit("gave-up", exit.error);
      } finally {
        this.resolveDone(exit);
      }
    })();
    return this.stopping;
  }

  /** SIGTERM, then SIGKILL if the child is still alive after shutdownTimeoutMs; resolves once it has exited. */
  private async terminate(child: Child): Promise<void> {
    const run = child.run;
    if (!run) return;
    run.intentional = true;
    if (run.ended) return;
    run.proc.kill("SIGTERM");
    const timeoutMs = child.spec.shutdownTimeoutMs ?? this.options.shutdownTimeoutMs;
    if (!(await settlesWithin(run.exited, timeoutMs))) {
      this.log.warn({ child: child.spec.id, pid: run.proc.pid, timeoutMs }, "child killed");
      run.proc.kill("SIGKILL");
    }
    await run.exited;
  }
}

function settlesWithin(promise: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  return Promise.race([promise.then(() => true), timeout]).finally(() => clearTimeout(timer));
}
