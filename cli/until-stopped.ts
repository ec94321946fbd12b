import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { closeConnectionsWhenServerAway } from "../protocol/index.js";
import { exitWhenParentDies } from "../supervisor/index.js";
import { startHealthBeat } from "./health.js";

/** Why a long-running command stops; the ones that ask its supervisor to start it again exit non-zero. */
export type StopReason = "SIGTERM" | "SIGINT" | "parent exited" | "lease lost" | "restart requested" | "start failed";

export interface RunningProcess {
  /** resolves with the exit code once `stop` has finished */
  exitCode: Promise<number>;
  /** stops the process for a reason of its own (a lost lease, an operator's restart) */
  shutdown: (why: StopReason) => void;
}

/** With the server away, how long the stop still gets once the connections are closed. */
const ABANDON_GRACE_MS = 1_500;

/**
 * The one lifecycle every `fleet run` role shares: run until SIGTERM, SIGINT, the supervisor's death (when supervised)
 * or an internal reason, then call `stop` once. Reaching it means the role is up: its health file (cli/health.ts) is
 * kept fresh from here until it stops.
 */
export function untilStopped(stop: () => Promise<void>, options: { log: Logger; supervised?: boolean | undefined }): RunningProcess {
  let stopping = false;
  let resolve!: (code: number) => void;
  const exitCode = new Promise<number>((r) => (resolve = r));
  const stopBeat = startHealthBeat();
  const shutdown = (why: StopReason) => {
    if (stopping) return;
    stopping = true;
    stopBeat();
    options.log.info({ why }, "shutting down");
    // with the server away nothing can drain: Ctrl-C must not wait for it to come back, nor for a request that was
    // already on its way when the connections closed (it would wait out its own timeout)
    const away = closeConnectionsWhenServerAway(options.log);
    const abandoned = away.closed.then(() => sleep(ABANDON_GRACE_MS)).then(() => options.log.warn({ graceMs: ABANDON_GRACE_MS }, "stop abandoned: the server is away"));
    Promise.race([stop(), abandoned]).finally(() => away.dispose()).then(
      () => resolve(why === "lease lost" || why === "restart requested" || why === "start failed" ? 1 : 0),
      () => resolve(1),
    );
  };
  // `on`, not `once`: Ctrl-C signals the whole process group and the supervisor's SIGTERM follows; both must drain
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
  if (options.supervised) exitWhenParentDies(() => shutdown("parent exited"));
  return { exitCode, shutdown };
}
