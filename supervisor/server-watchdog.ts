import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import type { Logger } from "pino";
import { EmbeddedNats, findNatsServer, removePortsFiles } from "./embedded-nats.js";
import { exitWhenParentDies } from "./parent-watch.js";

/** How long the server gets to write its store and close its connections before it is killed. */
const SERVER_STOP_MS = 8_000;

/**
 * The embedded nats-server as a supervised child (`fleet run nats-server <dir>`): this process runs the server on the
 * config in `<dir>` and lives exactly as long as it does, so that the supervisor restarts a server that died like any
 * other child, and a server never outlives `fleet up`, however `fleet up` ends.
 *
 * - the server exits on its own (killed, crashed): this exits 1 with the server's last lines logged, and the supervisor
 *   starts it again on the same store and ports;
 * - SIGTERM (the supervisor stopping it, last of all): the server is stopped, then this exits 0;
 * - `fleet up` dies without stopping it (SIGKILL): the stdin pipe every child gets ends, and the server is stopped;
 * - SIGINT is ignored: Ctrl-C reaches the whole process group, and the server must outlive the agents that drain into it.
 *   The server itself runs in its own process group for the same reason.
 */
export function runServerWatchdog(dir: string, log: Logger): Promise<number> {
  const binary = findNatsServer();
  removePortsFiles(dir); // a killed server's file would name the wrong process
  const proc = spawn(binary, ["-c", EmbeddedNats.confFile(dir)], { stdio: ["ignore", "ignore", "pipe"], detached: true });
  let tail: string[] = [];
  let why: string[] = [];
  proc.stderr?.setEncoding("utf8").on("data", (d: string) => {
    const lines = d.split("\n").filter(Boolean);
    tail = [...tail, ...lines].slice(-20);
    // the server's own errors reach the operator's terminal; its start-up banner does not
    for (const line of lines) if (/\[(ERR|FTL)\]/.test(line)) log.error({ server: line }, "nats-server");
    // a Go panic's first lines say what went wrong; the stack after them does not fit in the tail
    why = [...why, ...lines.filter((l) => /^(panic|fatal error)/.test(l))].slice(-3);
  });
  let stopping = false;
  const stop = (why: string) => {
    if (stopping || proc.exitCode !== null || proc.signalCode !== null) return;
    stopping = true;
    log.info({ why, pid: proc.pid }, "stopping the embedded nats-server");
    proc.kill("SIGTERM");
    setTimeout(() => proc.kill("SIGKILL"), SERVER_STOP_MS).unref();
  };
  process.on("SIGINT", () => undefined);
  process.on("SIGTERM", () => stop("SIGTERM"));
  const unwatch = exitWhenParentDies(() => stop("parent exited"));
  return new Promise((resolve) => {
    proc.once("spawn", () => writeFileSync(EmbeddedNats.pidFile(dir), `${proc.pid}\n`));
    proc.once("error", (err) => {
      log.error({ err, binary }, "nats-server could not be started");
      resolve(1);
    });
    proc.once("exit", (code, signal) => {
      unwatch();
      if (stopping) return resolve(0);
      // a server that ended by itself says why in its last lines; a killed one has nothing to add
      log.warn({ code, signal, ...(signal === null ? { why, lastLines: tail.slice(-5) } : {}) }, "embedded nats-server exited");
      resolve(1);
    });
  });
}
