import { nowOf, type Clock } from "../protocol/index.js";
import type { RoutingConfig } from "../config/index.js";

/*
 * Which deployments the router should skip for now. A deployment (one endpoint of one tier) that fails `failures` times
 * in a row cools down for `baseMs`; if it fails again on its first call after that, it cools down at once for twice as
 * long, and so on up to `maxMs`, so a dead endpoint costs one probe per cool-down instead of one failed call per step.
 * One success forgets everything. Per deployment, not per tier: a tier with a second endpoint keeps serving.
 *
 * Pure bookkeeping with an injected clock; the router decides which failures count (ProviderFailure.coolsDown).
 */

export interface DeploymentHealthOptions {
  /** consecutive failures after which a deployment cools down */
  failures: number;
  /** the first cool-down */
  baseMs: number;
  /** the longest cool-down, however often it failed */
  maxMs: number;
  clock?: Clock;
}

interface Entry {
  consecutiveFailures: number;
  /** cool-downs since the last success: the exponent of the next one */
  coolDowns: number;
  coolingUntil: number | undefined;
}

export class DeploymentHealth {
  private readonly entries = new Map<string, Entry>();
  private readonly failures: number;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly clock: () => number;

  constructor(options: DeploymentHealthOptions) {
    if (!Number.isInteger(options.failures) || options.failures < 1) throw new RangeError(`failures must be an integer >= 1, got ${options.failures}`);
    if (!(options.baseMs > 0)) throw new RangeError(`baseMs must be positive, got ${options.baseMs}`);
    if (!(options.maxMs >= options.baseMs)) throw new RangeError(`maxMs (${options.maxMs}) must be at least baseMs (${options.baseMs})`);
    this.failures = options.failures;
    this.baseMs = options.baseMs;
    this.maxMs = options.maxMs;
    this.clock = nowOf(options.clock);
  }

  static fromConfig(cooldown: RoutingConfig["cooldown"], clock?: Clock): DeploymentHealth {
    return new DeploymentHealth({
      failures: cooldown.failures,
      baseMs: cooldown.seconds * 1000,
      maxMs: Math.max(cooldown.maxSeconds, cooldown.seconds) * 1000,
      ...(clock ? { clock } : {}),
    });
  }

  isAvailable(deploymentId: string): boolean {
    return this.coolingUntil(deploymentId) === undefined;
  }

  /** When the current cool-down ends (epoch ms), or undefined when the deployment is available. */
  coolingUntil(deploymentId: string): number | undefined {
    const until = this.entries.get(deploymentId)?.coolingUntil;
    return until !== undefined && this.clock() < until ? until : undefined;
  }

  /**
   * `retryAfterMs`: the endpoint said how long to stay away (a 429's Retry-After): it cools down for that long at once
   * (at most `maxMs`), however few failures came before; the count and the back-off go on as for any failure.
   */
  recordFailure(deploymentId: string, retryAfterMs?: number): void {
    const entry = this.entries.get(deploymentId) ?? { consecutiveFailures: 0, coolDowns: 0, coolingUntil: undefined };
    this.entries.set(deploymentId, entry);
    entry.consecutiveFailures += 1;
    const now = this.clock();
    if (retryAfterMs !== undefined && retryAfterMs > 0) {
      entry.coolingUntil = Math.max(entry.coolingUntil ?? 0, now + Math.min(this.maxMs, retryAfterMs));
      return;
    }
    // Calls already in flight when the cool-down began fail too; they say nothing new and must not stretch it.
    if (entry.coolingUntil !== undefined && now < entry.coolingUntil) return;
    // After a cool-down the first call is a probe: one failure is enough to cool down again.
    const due = entry.coolDowns > 0 || entry.consecutiveFailures >= this.failures;
    if (!due) return;
    const duration = Math.min(this.maxMs, this.baseMs * 2 ** entry.coolDowns);
    entry.coolDowns += 1;
    entry.coolingUntil = now + duration;
  }

  recordSuccess(deploymentId: string): void {
    this.entries.delete(deploymentId);
  }

  /** Every deployment with failures on record, for `fleet status` and the router's health report. */
  snapshot(): Record<string, { consecutiveFailures: number; coolingUntil?: number }> {
    const out: Record<string, { consecutiveFailures: number; coolingUntil?: number }> = {};
    for (const [deploymentId, entry] of this.entries) {
      const until = this.coolingUntil(deploymentId);
      out[deploymentId] = until === undefined ? { consecutiveFailures: entry.consecutiveFailures } : { consecutiveFailures: entry.consecutiveFailures, coolingUntil: until };
    }
    return out;
  }
}
