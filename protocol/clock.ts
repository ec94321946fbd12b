/*
 * The one clock type: charts, schedulers and rules read time only through it, so every test can run them on a simulated
 * clock. An object rather than a bare function so a test can swap `now` on a clock it already handed out.
 */
export interface Clock {
  /** epoch ms */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock's `now` as a function, for code that reads the time often; the system clock when none was given. */
export function nowOf(clock: Clock | undefined): () => number {
  const c = clock ?? systemClock;
  return () => c.now();
}
