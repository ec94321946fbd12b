import type { KV, KvWatchEntry } from "@nats-io/kv";
import type { QueuedIterator } from "@nats-io/nats-core";
import type { Logger } from "pino";

/*
 * What a bucket holds, followed instead of re-read: a KV watch (the last values once at start, then each change) keeps a
 * small summary per key, so a page can order, filter and count without reading the bucket, then get by key only the
 * records it shows. The records stay the truth: this says where they are and what state they are in, not a copy.
 */

/** How long a reader waits for the first pass over the bucket before it goes with what is known so far. */
const READY_WAIT_MS = 30_000;

export interface KvIndexOptions<E> {
  kv: KV;
  /** the summary of one value; undefined leaves the key out (a value that does not decode) */
  summarize: (key: string, value: Uint8Array) => E | undefined;
  /** the order `entries()` returns them in */
  order: (a: E, b: E) => number;
  log: Logger;
}

export class KvIndex<E> {
  private readonly byKey = new Map<string, E>();
  /** in `order`; rebuilt on the first read after a change */
  private sorted: E[] | undefined;
  private watcher: QueuedIterator<KvWatchEntry> | undefined;
  private loop: Promise<void> | undefined;
  private markReady: () => void = () => undefined;
  /** resolves once the bucket's values at start are all in */
  readonly ready: Promise<void> = new Promise((resolve) => (this.markReady = resolve));

  constructor(private readonly options: KvIndexOptions<E>) {}

  async start(): Promise<void> {
    const { kv } = this.options;
    this.watcher = await kv.watch();
    // an empty bucket sends nothing to mark the end of its values
    if ((await kv.status()).values === 0) this.markReady();
    this.loop = this.follow(this.watcher);
  }

  async stop(): Promise<void> {
    this.watcher?.stop();
    await this.loop;
    this.markReady();
  }

  get size(): number {
    return this.byKey.size;
  }

  /** Every summary, in order; waits (bounded) for the first pass. Callers must not change the array. */
  async entries(): Promise<readonly E[]> {
    await Promise.race([this.ready, new Promise((resolve) => setTimeout(resolve, READY_WAIT_MS).unref())]);
    this.sorted ??= [...this.byKey.values()].sort(this.options.order);
    return this.sorted;
  }

  private async follow(watcher: QueuedIterator<KvWatchEntry>): Promise<void> {
    try {
      for await (const e of watcher) {
        this.apply(e);
        // the last of the values at start is the first marked as an update
        if (e.isUpdate || e.delta === 0) this.markReady();
      }
    } catch (err) {
      this.options.log.warn({ err }, "KV index watch ended");
    }
  }

  private apply(e: KvWatchEntry): void {
    this.sorted = undefined;
    const summary = e.operation === "PUT" ? this.options.summarize(e.key, e.value) : undefined;
    if (summary === undefined) this.byKey.delete(e.key);
    else this.byKey.set(e.key, summary);
  }
}

/** How many entries there are by `keyOf`. */
export function countBy<E>(entries: readonly E[], keyOf: (e: E) => string): Map<string, number> {
  const out = new Map<string, number>();
  for (const e of entries) out.set(keyOf(e), (out.get(keyOf(e)) ?? 0) + 1);
  return out;
}
