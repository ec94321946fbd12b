import type { Logger } from "pino";

/**
 * One timer for every deadline a runtime's agents wait on (the next cycle, a breaker's cooldown, the end of quiet hours):
 * a binary min-heap of absolute due times, with a single `setTimeout` armed for the earliest. A host that polled its own
 * deadlines every second noticed each one up to a second late, and 10,000 hosts polling kept the event loop busy doing
 * nothing; here a deadline costs a heap entry until it is due, and its callback runs when it is due.
 *
 * Keys are the caller's: scheduling a key again moves its deadline (one pending callback per key), so a host re-arms
 * whenever its chart's deadline changes without cancelling first.
 */

export interface SchedulerTimers {
  now(): number;
  /** arms a one-shot timer; the handle is only ever given back to `clear` */
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

/** Node's timers, unref'd: a pending deadline never keeps a process alive on its own. */
export const nodeTimers: SchedulerTimers = {
  now: () => Date.now(),
  set: (fn, ms) => setTimeout(fn, ms).unref(),
  clear: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** setTimeout's delay is a signed 32-bit number of ms (~24.8 days); a longer one would fire at once */
const MAX_DELAY_MS = 2 ** 31 - 1;

interface Entry {
  key: string;
  at: number;
  /** order of scheduling: ties on `at` run first-scheduled first, and a run never picks up entries added during it */
  seq: number;
  fn: () => void;
  /** position in the heap array, kept up to date so `cancel` and re-`schedule` are O(log n) */
  index: number;
}

export class CycleScheduler {
  private readonly heap: Entry[] = [];
  private readonly byKey = new Map<string, Entry>();
  private seq = 0;
  private timer: unknown;
  /** the due time the timer is armed for; undefined when no timer is armed */
  private armedAt: number | undefined;
  private running = false;
  private stopped = false;

  constructor(private readonly options: { timers?: SchedulerTimers; log: Logger }) {}

  private get timers(): SchedulerTimers {
    return this.options.timers ?? nodeTimers;
  }

  get size(): number {
    return this.heap.length;
  }

  /** When `key` is due, or undefined when it is not scheduled. */
  dueAt(key: string): number | undefined {
    return this.byKey.get(key)?.at;
  }

  /** Runs `fn` at epoch ms `at` (at once if that has passed), replacing whatever `key` had scheduled. */
  schedule(key: string, at: number, fn: () => void): void {
    if (this.stopped) return;
    const existing = this.byKey.get(key);
    if (existing) {
      const earlier = at < existing.at;
      existing.at = at;
      existing.fn = fn;
      existing.seq = this.seq++;
      if (earlier) this.up(existing.index);
      else this.down(existing.index);
    } else {
      const entry: Entry = { key, at, seq: this.seq++, fn, index: this.heap.length };
      this.heap.push(entry);
      this.byKey.set(key, entry);
      this.up(entry.index);
    }
    this.arm();
  }

  cancel(key: string): void {
    const entry = this.byKey.get(key);
    if (!entry) return;
    this.remove(entry);
    this.arm();
  }

  /** Drops every pending callback and the timer; later `schedule` calls are ignored. */
  stop(): void {
    this.stopped = true;
    this.heap.length = 0;
    this.byKey.clear();
    this.disarm();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.stop();
  }

  /** Runs what is due now, in due order. Called by the timer; public so a test on a fake clock can call it directly. */
  runDue(): void {
    this.timer = undefined;
    this.armedAt = undefined;
    const now = this.timers.now();
    const before = this.seq;
    this.running = true;
    try {
      for (let top = this.heap[0]; top && top.at <= now && top.seq < before; top = this.heap[0]) {
        this.remove(top);
        try {
          top.fn();
        } catch (err) {
          // one agent's failure is its own: the others due now still run
          this.options.log.error({ err, key: top.key }, "scheduled callback failed");
        }
      }
    } finally {
      this.running = false;
    }
    this.arm();
  }

  private arm(): void {
    // a run re-arms once at its end, not once per callback
    if (this.running || this.stopped) return;
    const top = this.heap[0];
    if (!top) return this.disarm();
    if (this.armedAt === top.at && this.timer !== undefined) return;
    this.disarm();
    // a timer may fire a moment before the clock reads its due time: runDue then finds nothing due and re-arms
    const delay = Math.min(MAX_DELAY_MS, Math.max(0, top.at - this.timers.now()));
    this.armedAt = top.at;
    this.timer = this.timers.set(() => this.runDue(), delay);
  }

  private disarm(): void {
    if (this.timer !== undefined) this.timers.clear(this.timer);
    this.timer = undefined;
    this.armedAt = undefined;
  }

  private remove(entry: Entry): void {
    this.byKey.delete(entry.key);
    const last = this.heap.pop()!;
    if (last === entry) return;
    this.heap[entry.index] = last;
    last.index = entry.index;
    this.up(last.index);
    this.down(last.index);
  }

  private less(a: Entry, b: Entry): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private up(i: number): void {
    const heap = this.heap;
    const entry = heap[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent]!;
      if (!this.less(entry, p)) break;
      heap[i] = p;
      p.index = i;
      i = parent;
    }
    heap[i] = entry;
    entry.index = i;
  }

  private down(i: number): void {
    const heap = this.heap;
    const n = heap.length;
    const entry = heap[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const child = r < n && this.less(heap[r]!, heap[l]!) ? r : l;
      const c = heap[child]!;
      if (!this.less(c, entry)) break;
      heap[i] = c;
      c.index = i;
      i = child;
    }
    heap[i] = entry;
    entry.index = i;
  }
}
