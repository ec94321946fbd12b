import type { NatsConnection } from "@nats-io/nats-core";
import { jetstreamManager, type StreamInfo } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { BucketKey, FleetNames, StreamKey } from "../protocol/index.js";
import { z } from "zod";

/**
 * The cluster's health as `fleet status` shows it, from the JetStream API the operator's identity may ask (a fleet
 * secured by `fleet creds` has no system-account user, so $SYS is not asked): the servers holding the fleet's streams
 * and buckets, which server leads each, the replicas that are offline or behind, and the singletons' lease holders.
 */

// every StreamKey: the compiler refuses this list when one is missing from it
const STREAM_SET: Record<StreamKey, true> = { TASKS: true, PROPOSALS: true, APPROVALS: true, OUTBOX: true, AUDIT: true, AUDIT_ANCHORS: true, USAGE: true, FINDINGS: true, EVENTS: true, MEMLOG: true, DLQ: true };
const STREAMS = Object.keys(STREAM_SET) as StreamKey[];

export interface ReplicaHealth {
  stream: string;
  replicas: number;
  leader: string | undefined;
  /** server → "current" | "lagging N" | "offline" */
  peers: Record<string, string>;
}

export async function clusterHealth(nc: NatsConnection, names: FleetNames, bucketKeys: readonly BucketKey[]): Promise<ReplicaHealth[]> {
  const jsm = await jetstreamManager(nc, { timeout: 3_000 });
  const streams = [...STREAMS.map((k) => names.stream(k)), ...bucketKeys.map((k) => `KV_${names.bucket(k)}`)];
  const out: ReplicaHealth[] = [];
  for (const stream of streams) {
    const info: StreamInfo | undefined = await jsm.streams.info(stream).catch(() => undefined);
    if (!info) {
      out.push({ stream, replicas: 0, leader: undefined, peers: {} });
      continue;
    }
    const peers: Record<string, string> = {};
    if (info.cluster?.leader) peers[info.cluster.leader] = "leader";
    for (const r of info.cluster?.replicas ?? []) peers[r.name] = r.offline ? "offline" : r.current ? "current" : `lagging ${r.lag ?? "?"}`;
    out.push({ stream, replicas: info.config.num_replicas, leader: info.cluster?.leader, peers });
  }
  return out;
}

/** Lines for `fleet status`: one summary, then one line per stream or bucket that is not fully healthy. */
export function healthLines(health: readonly ReplicaHealth[]): string[] {
  if (health.length === 0) return [];
  const servers = [...new Set(health.flatMap((h) => Object.keys(h.peers)))].sort();
  const offline = servers.filter((s) => health.some((h) => h.peers[s] === "offline"));
  const leaders = new Map<string, number>();
  for (const h of health) if (h.leader) leaders.set(h.leader, (leaders.get(h.leader) ?? 0) + 1);
  const replicas = [...new Set(health.map((h) => `R${h.replicas}`))].join("/");
  const lines = [
    `cluster: ${servers.length} server(s) ${servers.join(" ")}${offline.length ? ` (offline: ${offline.join(" ")})` : ""}; ${health.length} streams and buckets ${replicas}; leaders ${[...leaders].map(([s, n]) => `${s} ${n}`).join(", ") || "none"}`,
  ];
  for (const h of health) {
    const troubled = Object.entries(h.peers).filter(([, state]) => state !== "leader" && state !== "current");
    if (!h.leader) lines.push(`  ${h.stream}: NO LEADER${h.replicas === 0 ? " (no answer)" : ""}`);
    else if (troubled.length) lines.push(`  ${h.stream}: leader ${h.leader}; ${troubled.map(([s, state]) => `${s} ${state}`).join(", ")}`);
  }
  return lines;
}

const LeaseHolder = z.string().min(1);

/** Who holds each singleton's lease (`host:pid`), from KV `leases`. */
export async function leaseHolders(leases: KV): Promise<string[]> {
  const lines: string[] = [];
  for await (const key of await leases.keys()) {
    const entry = await leases.get(key).catch(() => null);
    if (entry?.operation !== "PUT") continue;
    const holder = LeaseHolder.safeParse(new TextDecoder().decode(entry.value));
    if (holder.success) lines.push(`${key} on ${holder.data}`);
  }
  return lines.length ? [`singletons: ${lines.sort().join(", ")}`] : [];
}
