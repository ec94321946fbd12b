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
  log: Logger;
}

/**
 * A singleton lease in KV: the holder's key is rewritten every `renewMs`, and the bucket's max_age expires it when the
 * holder stops renewing (crash, partition). A second copy on another host waits in `acquire()` instead of doubling work,
 * and takes over within one TTL of the holder going away. Every write is a compare-and-set, so two contenders can never
 * both believe they hold it.
 */
export class Lease {
  private revision = 0;
  private renewing: NodeJS.Timeout | undefined;
  private lostHandlers: Array<() => void> = [];
  private held = false;

  constructor(private readonly options: LeaseOptions) {}

  /** Resolves once this process holds the lease; retries until it does or `signal` aborts. */
  async acquire(signal?: AbortSignal): Promise<void> {
    let announced = false;
    while (!signal?.aborted) {
      try {
        this.revision = await this.options.kv.create(this.options.role, new TextEncoder().encode(this.options.holder));
        this.held = true;
        this.options.log.info({ role: this.options.role, holder: this.options.holder }, "lease acquired");
        // renewal alone must not keep a process alive that is otherwise done
        this.renewing = setInterval(() => void this.renew(), this.options.renewMs).unref();
        return;
      } catch {
        if (!announced) {
          const current = await this.options.kv.get(this.options.role).catch(() => null);
          this.options.log.info({ role: this.options.role, heldBy: current ? new TextDecoder().decode(current.value) : "unknown" }, "standing by: another process holds the lease");
          announced = true;
        }
        await sleep(this.options.renewMs, undefined, { signal }).catch(() => undefined);
      }
    }
    signal?.throwIfAborted();
  }

  /** Called once if the lease is lost while held (a renewal lost the race or the key expired): stop working then. */
  onLost(handler: () => void): void {
    this.lostHandlers.push(handler);
  }

  get isHeld(): boolean {
    return this.held;
  }

  private async renew(): Promise<void> {
    if (!this.held) return;
    const { kv, role, holder, log } = this.options;
    const value = new TextEncoder().encode(holder);
    try {
      this.revision = await kv.update(role, value, this.revision);
    } catch (err) {
      // a wrong revision means someone else holds it now; a timeout may be a server restart, so check before giving up
      const current = await kv.get(role).catch(() => undefined);
      if (current === undefined) return; // the server is away: try again at the next renewal
      if (current && current.operation === "PUT") {
        if (current.revision === this.revision) return;
        // our own renewal landed but its ack was lost (the server went away after storing it): still ours
        if (new TextDecoder().decode(current.value) === holder) {
          this.revision = current.revision;
          return;
        }
      } else {
        const retaken = await this.retake(value);
        if (retaken !== "lost") return; // taken back, or the server went away again: the next renewal sees
      }
      log.warn({ role, err }, "lease lost");
      this.held = false;
      clearInterval(this.renewing);
      for (const h of this.lostHandlers.splice(0)) h();
    }
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
