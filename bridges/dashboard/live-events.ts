import type { NatsConnection, Subscription } from "@nats-io/nats-core";
import type { FleetNames } from "../../protocol/index.js";

/*
 * What changed in the fleet, as a stream of topics for /events: KV updates of agents, tasks, proposals and held work
 * (their `$KV.<bucket>.>` subjects), and new USAGE, DLQ and FINDINGS messages. Plain subscriptions: nothing is stored,
 * a browser that misses a signal reloads on the next one.
 */

export type LiveTopic = "agents" | "tasks" | "proposals" | "held" | "usage" | "dlq" | "findings";

export class LiveEvents {
  private readonly subs: Subscription[] = [];
  private readonly listeners = new Set<(topic: LiveTopic) => void>();

  constructor(private readonly deps: { nc: NatsConnection; names: FleetNames }) {}

  start(): void {
    const { names } = this.deps;
    const p = names.prefix;
    const watch: [LiveTopic, string][] = [
      ["agents", `$KV.${names.bucket("agents")}.>`],
      ["tasks", `$KV.${names.bucket("tasks")}.>`],
      ["proposals", `$KV.${names.bucket("proposals")}.>`],
      ["held", `$KV.${names.bucket("held")}.>`],
      ["usage", `${p}.usage.>`],
      ["dlq", `${p}.dlq.>`],
      ["findings", `${p}.finding.*`],
    ];
    for (const [topic, subject] of watch) {
      this.subs.push(this.deps.nc.subscribe(subject, { callback: (err) => {
        if (!err) this.emit(topic);
      } }));
    }
  }

  /** Calls `listener` on every change; returns the unsubscribe. */
  on(listener: (topic: LiveTopic) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  stop(): void {
    for (const s of this.subs) s.unsubscribe();
    this.subs.length = 0;
    this.listeners.clear();
  }

  private emit(topic: LiveTopic): void {
    for (const l of this.listeners) l(topic);
  }
}
