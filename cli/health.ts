import { mkdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

/*
 * A process's health as a container runtime asks for it: a long-running `fleet run <role>` given a health file (the
 * FLEET_HEALTH_FILE variable) writes it once its role is up (connected, its streams opened, serving) and rewrites it
 * every few seconds while its event loop runs; it removes it when it stops. `fleet health` is the check: the file is
 * there and fresh. A process stuck before its start, or hung, goes stale; one that exited leaves no file.
 */

/** How often a running process rewrites its health file. */
export const HEALTH_BEAT_MS = 5_000;
/** A health file older than this is stale: six missed beats. */
export const HEALTH_MAX_AGE_MS = 30_000;

let healthFile: string | undefined;

/**
 * Where this process reports its health; the CLI sets it once from the environment before running a command. Kept here
 * rather than passed to each role's runner: every role reaches the one lifecycle in until-stopped.ts once it is up.
 */
export function reportHealthTo(file: string | undefined): void {
  healthFile = file || undefined;
}

/** Starts the beat (when a health file is set); the returned function stops it and removes the file. */
export function startHealthBeat(): () => void {
  const file = healthFile;
  if (!file) return () => undefined;
  const beat = () => {
    try {
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, `${process.pid} ${new Date().toISOString()}\n`);
    } catch {
      // an unwritable health file makes the check fail, which is the signal; the process itself goes on
    }
  };
  beat();
  const timer = setInterval(beat, HEALTH_BEAT_MS);
  timer.unref();
  return () => {
    clearInterval(timer);
    rmSync(file, { force: true });
  };
}

/** `fleet health`: exit 0 when the health file is there and younger than `--max-age` seconds (default 30), else 1. */
export function health(options: { "max-age"?: string | undefined }, env: NodeJS.ProcessEnv, now = Date.now()): number {
  const file = env.FLEET_HEALTH_FILE;
  if (!file) {
    console.error("fleet health: FLEET_HEALTH_FILE is not set (the file a `fleet run <role>` started with it keeps fresh)");
    return 2;
  }
  const maxAgeMs = options["max-age"] ? Number(options["max-age"]) * 1000 : HEALTH_MAX_AGE_MS;
  if (!Number.isFinite(maxAgeMs) || maxAgeMs <= 0) {
    console.error(`fleet health: --max-age ${options["max-age"]}: expected a number of seconds`);
    return 2;
  }
  let modified: number;
  try {
    modified = statSync(file).mtimeMs;
  } catch {
    console.error(`unhealthy: ${file} is missing (the process has not started its role, or it stopped)`);
    return 1;
  }
  const age = now - modified;
  if (age > maxAgeMs) {
    console.error(`unhealthy: ${file} was last written ${Math.round(age / 1000)} s ago (at most ${maxAgeMs / 1000} s)`);
    return 1;
  }
  console.log(`healthy: ${file} written ${Math.max(0, Math.round(age / 1000))} s ago`);
  return 0;
}
