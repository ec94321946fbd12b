import { createHash } from "node:crypto";
import type { KV, KvEntry } from "@nats-io/kv";
import type { Logger } from "pino";
import { z } from "zod";
import { decode, encode, FleetError, TierName, TIER_NAMES, nowOf, type Clock } from "../protocol/index.js";
import type { LabelledTitle } from "./local-classifier.js";
import { normalTitle } from "./title-features.js";

/*
 * What the fleet taught its local classifier, kept in the `labels` bucket so that it survives restarts and reaches every
 * router: one key per normalised title, holding the tier and who taught it. Two teachers:
 * - the operator (`fleet route teach`), whose word stands until the operator says otherwise;
 * - the fleet itself: a step routed by its title that escalated ended on a tier that could do it, and next time the
 *   title goes there at once. An escalation never overrides the operator, and never teaches a cheaper tier than the
 *   label already says (a later step of the same title that happened to need less is no lesson).
 * Every router watches the bucket and retrains when it changes.
 */

export const LearnedLabel = z.object({
  title: z.string(),
  tier: TierName,
  source: z.enum(["operator", "escalation"]),
  /** the agent whose step escalated */
  agentId: z.string().optional(),
  at: z.number(),
});
export type LearnedLabel = z.infer<typeof LearnedLabel>;

/** How much a learned label counts in training next to a label from a file: it is the fleet's own work. */
export const LEARNED_WEIGHT = 3;

export interface LearnedLabelsOptions {
  kv: KV;
  log: Logger;
  /** told (once per burst of changes) that the labels changed */
  onChange: () => void;
  clock?: Clock;
}

export class LearnedLabels {
  private readonly labels = new Map<string, LearnedLabel>();
  private readonly clock: () => number;
  private watcher: { stop(): void } | undefined;
  private pending = false;
  private readyResolve: () => void = () => undefined;
  /** resolves once the labels that were in the bucket at start are loaded */
  readonly ready: Promise<void>;

  constructor(private readonly options: LearnedLabelsOptions) {
    this.clock = nowOf(options.clock);
    this.ready = new Promise((resolve) => (this.readyResolve = resolve));
  }

  static keyOf(title: string): string {
    return `t.${createHash("sha256").update(normalTitle(title)).digest("hex").slice(0, 40)}`;
  }

  async start(): Promise<void> {
    const watch = await this.options.kv.watch({ key: ">" });
    this.watcher = watch;
    const initial = new Set<string>();
    for await (const key of await this.options.kv.keys()) initial.add(key);
    const waiting = new Set(initial);
    if (waiting.size === 0) this.readyResolve();
    void (async () => {
      for await (const entry of watch) {
        this.apply(entry);
        if (waiting.delete(entry.key) && waiting.size === 0) this.readyResolve();
      }
    })().catch((err: unknown) => this.options.log.error({ err }, "learned labels watch ended"));
  }

  stop(): void {
    this.watcher?.stop();
    this.readyResolve();
  }

  /** The labels in training form, learned ones weighted. */
  list(): LabelledTitle[] {
    return [...this.labels.values()].map((l) => ({ title: l.title, tier: l.tier, source: l.source, weight: LEARNED_WEIGHT }));
  }

  get size(): number {
    return this.labels.size;
  }

  /** The operator's correction: stands until the operator corrects it again. */
  async teach(title: string, tier: TierName): Promise<void> {
    if (normalTitle(title) === "") throw new FleetError("MESSAGE_INVALID", "a title to teach needs at least one word", { details: [{ path: "title", message: "no words" }] });
    await this.put({ title, tier, source: "operator", at: this.clock() });
  }

  /** An escalated step's lesson; false when it teaches nothing new (the operator's label, or one as high already). */
  async learn(title: string, tier: TierName, agentId: string): Promise<boolean> {
    if (normalTitle(title) === "") return false;
    const known = this.labels.get(LearnedLabels.keyOf(title));
    if (known && (known.source === "operator" || TIER_NAMES.indexOf(known.tier) >= TIER_NAMES.indexOf(tier))) return false;
    await this.put({ title, tier, source: "escalation", agentId, at: this.clock() });
    return true;
  }

  /** Written to the bucket and applied here at once: this router need not wait for its own write to come round. */
  private async put(label: LearnedLabel): Promise<void> {
    const key = LearnedLabels.keyOf(label.title);
    await this.options.kv.put(key, encode(label, "json"));
    this.labels.set(key, label);
    this.options.onChange();
  }

  private apply(entry: KvEntry): void {
    if (entry.operation !== "PUT") {
      this.labels.delete(entry.key);
    } else {
      const decoded = decode(LearnedLabel, entry.value, { codec: "json" });
      if (!decoded.ok) {
        this.options.log.warn({ key: entry.key, reason: decoded.error.message }, "a learned label does not decode; ignored");
        return;
      }
      this.labels.set(entry.key, decoded.value);
    }
    // a burst of changes (the initial load) retrains once
    if (this.pending) return;
    this.pending = true;
    setImmediate(() => {
      this.pending = false;
      this.options.onChange();
    });
  }
}
