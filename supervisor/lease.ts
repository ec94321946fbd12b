import { setTimeout as sleep } from "node:timers/promises";
import type { KV } from "@nats-io/kv";
import type { Logger } from "pino";
import { isServerAwayError } from "../protocol/index.js";

export interface LeaseOptions {
  kv: KV;
  /** the singleton's name, e.g. "agent.atlas" */
  role: string;
  /** who holds it: host:pid, shown to operators */
  holder: string;
  /** how often the holder renews; the bucket's max_age (the lease TTL) must be a few times longer */
  renewMs: number;
  /**
   * how often a standby tries to take the lease (default: every second, at most every `renewMs`): the key can expire at
   * any moment, and the lease should move within its TTL, not a TTL and a renewal period later
   */
  pollMs?: number;
  /**
   * the leases bucket's max_age (LEASE_TTL_MS), given on a cluster: a holder that could not renew for `ttlMs` less 2 s
   * (its server cut off from the majority) gives the lease up before the key can expire and another host take it.
   * Without it (one server) a holder rides out an outage and takes the lease back.
   */
  ttlMs?: number;
  log: Logger;
}

/**
 * A singleton lease in KV: the holder's key is rewritten every `renewMs`, and the bucket's max_age expires it when the
 * holder stops renewing (crash, partition). A second copy on another host waits in `acquire()` instead of doubling work,
 * and takes over within one TTL of the holder going away. Every write is a compare-and-set, so two contenders can never
 * both believe they hold it. The bucket must be read through its stream's leader, not by direct get (openBuckets does
 * so): a direct get may be answered by a replica cut off from the others, which shows a holder its own stale key (so it
 * keeps working while another host takes over) and makes a standby wait out its silence.
 */
export class Lease {
  private revision = 0;
  private renewing: NodeJS.Timeout | undefined;
  private lostHandlers: Array<() => void> = [];
  private held = false;
  private renewedAt = 0;
  private inFlight = false;
  private lastTry = 0;

  constructor(private readonly options: LeaseOptions) {}

  /** Resolves once this process holds the lease; retries until it does or `signal` aborts. */
  async acquire(signal?: AbortSignal): Promise<void> {
    let announced = false;
    while (!signal?.aborted) {
      // the server stamps the key after this moment: it expires no earlier than TTL from here
      const sentAt = Date.now();
      try {
        this.revision = await this.take();
        this.held = true;
        this.renewedAt = sentAt;
        this.options.log.info({ role: this.options.role, holder: this.options.holder }, "lease acquired");
        // renewal alone must not keep a process alive that is otherwise done; a finer tick than renewMs, so a renewal
        // that hangs (a server cut off) is noticed before the key expires
        this.lastTry = Date.now();
        this.renewing = setInterval(() => this.tick(), Math.min(this.options.renewMs, 500)).unref();
        return;
      } catch {
        if (!announced) {
          const current = await this.options.kv.get(this.options.role).catch(() => null);
          this.options.log.info({ role: this.options.role, heldBy: current ? new TextDecoder().decode(current.value) : "unknown" }, "standing by: another process holds the lease");
          announced = true;
        }
        await sleep(this.options.pollMs ?? Math.min(this.options.renewMs, 1_000), undefined, { signal }).catch(() => undefined);
      }
    }
    signal?.throwIfAborted();
  }

  /**
   * Creates the key; a create retried after a timeout finds the key its first attempt wrote ("exists"): the value read
   * back says whether that was this holder's.
   */
  private async take(): Promise<number> {
    try {
      return await this.options.kv.create(this.options.role, new TextEncoder().encode(this.options.holder));
    } catch (err) {
      const current = await this.options.kv.get(this.options.role).catch(() => null);
      if (current?.operation === "PUT" && new TextDecoder().decode(current.value) === this.options.holder) return current.revision;
      throw err;
    }
  }

  /** Called once if the lease is lost while held (a renewal lost the race or the key expired): stop working then. */
  onLost(handler: () => void): void {
    this.lostHandlers.push(handler);
  }

  get isHeld(): boolean {
    return this.held;
  }

  private tick(): void {
    if (this.inFlight) return this.fence();
    if (Date.now() - this.lastTry < this.options.renewMs) return;
    this.lastTry = Date.now();
    void this.renew();
  }

  private async renew(): Promise<void> {
    if (!this.held || this.inFlight) return;
    this.inFlight = true;
    const { kv, role, holder } = this.options;
    const value = new TextEncoder().encode(holder);
    // the server stamps the write after this moment: the key expires no earlier than renewedAt + TTL
    const sentAt = Date.now();
    try {
      this.revision = await kv.update(role, value, this.revision);
      this.renewedAt = sentAt;
    } catch (err) {
      // a wrong revision means someone else holds it now; a timeout may be a server restart, so check before giving up
      const current = await kv.get(role).catch(() => undefined);
      if (current === undefined) return this.fence(); // the server is away: try again at the next renewal
      if (current && current.operation === "PUT") {
        if (current.revision === this.revision) return;
        // our own renewal landed but its ack was lost (or a retry lost the compare-and-set to it): still ours
        if (new TextDecoder().decode(current.value) === holder) {
          this.revision = current.revision;
          this.renewedAt = sentAt;
          return;
        }
      } else {
        const retaken = await this.retake(value);
        if (retaken === "taken") this.renewedAt = sentAt;
        if (retaken !== "lost") return this.fence(); // taken back, or the server went away again: the next renewal sees
      }
      this.lose(err);
    } finally {
      this.inFlight = false;
    }
  }

  /**
   * Not renewed for so long that the key is about to expire: stop working before another host can take it (a standby
   * creates the key only once it has expired). Only with `ttlMs` (a cluster, where another host may take the key while
   * this one is cut off); on one server nobody can take it during an outage, and the holder takes it back instead.
   */
  private fence(): void {
    const ttlMs = this.options.ttlMs;
    if (ttlMs === undefined) return;
    const margin = Math.min(this.options.renewMs, 2_000);
    if (this.held && Date.now() - this.renewedAt >= ttlMs - margin) this.lose(new Error(`not renewed for ${Date.now() - this.renewedAt} ms`));
  }

  private lose(err: unknown): void {
    if (!this.held) return;
    this.options.log.warn({ role: this.options.role, err }, "lease lost");
    this.held = false;
    clearInterval(this.renewing);
    for (const h of this.lostHandlers.splice(0)) h();
  }

  /**
   * The key expired while the server was away (an outage longer than the TTL) and nobody took it meanwhile: take it
   * back with the same compare-and-set a newcomer would use, so a holder does not exit and restart for an outage.
   */
  private async retake(value: Uint8Array): Promise<"taken" | "away" | "lost"> {
    try {
      this.revision = await this.options.kv.create(this.options.role, value);
      this.options.log.info({ role: this.options.role, holder: this.options.holder }, "lease taken back: it had expired while the server was away");
      return "taken";
    } catch (err) {
      // otherwise another process was quicker: it holds the lease now
      return isServerAwayError(err) ? "away" : "lost";
    }
  }

  /** Gives the lease up at once, so a standby takes over without waiting for the TTL. */
  async release(): Promise<void> {
    clearInterval(this.renewing);
    if (!this.held) return;
    this.held = false;
    await this.options.kv.delete(this.options.role, { previousSeq: this.revision }).catch(() => undefined);
    this.options.log.info({ role: this.options.role }, "lease released");
  }
}
