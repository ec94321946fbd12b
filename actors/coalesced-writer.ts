/**
 * Runs a write at most once per interval, and always once more after the last request: under load, many requests in
 * one interval become one trailing write of the latest state; an isolated request is written at once. The agent record
 * (card, snapshot, breaker: a few kB) was written twice per task; at hundreds of tasks a second those writes cost more
 * socket time than the tasks themselves.
 */
export class CoalescedWriter {
  private inFlight: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private pending = false;
  private lastStartedAt = -Infinity;

  constructor(
    private readonly write: () => Promise<void>,
    private readonly minIntervalMs: number,
    private readonly onError: (err: unknown) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** Asks for the current state to be written soon: now, or when the interval since the last write has passed. */
  request(): void {
    this.pending = true;
    if (this.inFlight || this.timer) return;
    const wait = this.lastStartedAt + this.minIntervalMs - this.now();
    if (wait <= 0) this.start();
    else this.timer = setTimeout(() => this.start(), wait);
  }

  /** Writes what is pending now and waits for it (used on stop). */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    await this.inFlight;
    if (this.pending) {
      this.start();
      await this.inFlight;
    }
  }

  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.pending = false;
  }

  private start(): void {
    this.timer = undefined;
    this.pending = false;
    this.lastStartedAt = this.now();
    this.inFlight = this.write()
      .catch(this.onError)
      .finally(() => {
        this.inFlight = undefined;
        if (this.pending) this.request();
      });
  }
}
