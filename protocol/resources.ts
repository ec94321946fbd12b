import { setTimeout as sleep } from "node:timers/promises";
import { nanos, type NatsConnection } from "@nats-io/nats-core";
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiError,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type JetStreamManager,
  type StreamConfig,
} from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import type { Logger } from "pino";
import { isPermissionViolation } from "./connect.js";
import { electionSafeKv, retryThroughElection } from "./election-retry.js";
import { FleetError } from "./errors.js";
import type { BucketKey, FleetNames, StreamKey } from "./subjects.js";

/**
 * The streams, buckets and consumers the fleet needs, created idempotently at every start: a missing one is created, an
 * existing one is updated to the current definition, so any process can start first.
 */

const HOUR = 3600_000;
/** how long a singleton's lease outlives its holder's last renewal (the leases bucket's max_age) */
export const LEASE_TTL_MS = 15_000;
const DAY = 24 * HOUR;

export interface ResourceOptions {
  /** R1 on one laptop, R3 on a cluster; raises an existing stream's or bucket's count, never lowers it */
  replicas?: number;
  maxPayloadBytes?: number;
  /** where a kept (higher) replica count is warned about */
  log?: Logger | undefined;
}

function streamDefinitions(names: FleetNames): Record<StreamKey, Partial<StreamConfig>> {
  const p = names.prefix;
  return {
    TASKS: { subjects: [`${p}.task.*`], max_age: nanos(7 * DAY), duplicate_window: nanos(2 * 60_000) },
    PROPOSALS: { subjects: [`${p}.proposal.*.*`], max_age: nanos(90 * DAY) },
    // decisions are `decision.<channel>.<proposalId>`; a stream still on `decision.<proposalId>` is updated in place
    APPROVALS: { subjects: [`${p}.approval.request.*`, `${p}.approval.decision.*.*`], max_age: nanos(30 * DAY) },
    // the 4 h duplicate window is the channel-dedup layer: the same content to the same channel is accepted once
    OUTBOX: { subjects: [`${p}.outbox.*`], max_age: nanos(7 * DAY), duplicate_window: nanos(4 * HOUR) },
    AUDIT: { subjects: [`${p}.audit.*`], max_age: nanos(365 * DAY) },
    // the chain's tip, signed by governance, where the audit writer cannot publish: a rewritten tail no longer matches
    AUDIT_ANCHORS: { subjects: [`${p}.anchor.audit`], max_age: nanos(365 * DAY) },
    // a router publishes a record again after an outage (its spool) under the same id: a day's window drops the copy
    USAGE: { subjects: [`${p}.usage.*.*`], max_age: nanos(90 * DAY), duplicate_window: nanos(DAY) },
    // what duties found and what arrived from outside: Atlas's plan inputs, the status report's source
    FINDINGS: { subjects: [`${p}.finding.*`], max_age: nanos(30 * DAY) },
    EVENTS: { subjects: [`${p}.event.*`], max_age: nanos(30 * DAY), duplicate_window: nanos(2 * 60_000) },
    MEMLOG: { subjects: [`${p}.memory.log.*.*`], max_age: nanos(30 * DAY) },
    // dead letters we publish ourselves, plus the server's advisory for task messages that ran out of deliveries
    DLQ: {
      subjects: [`${p}.dlq.>`, `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${names.stream("TASKS")}.>`],
      max_age: nanos(30 * DAY),
    },
  };
}

function bucketDefinitions(): Record<BucketKey, { history: number; ttl?: number }> {
  return {
    tasks: { history: 5 },
    agents: { history: 1 },
    proposals: { history: 5 },
    budgets: { history: 1, ttl: 8 * DAY },
    memory: { history: 10 },
    leases: { history: 1, ttl: LEASE_TTL_MS },
    schedules: { history: 5 },
    dedup: { history: 1 },
    // the router's semantic cache; entries older than routing.cache.ttlHours are ignored before this bucket drops them
    cache: { history: 1, ttl: 7 * DAY },
    // tool calls by idempotency key: a repeated call gets the recorded result instead of a second effect
    toolruns: { history: 1, ttl: 30 * DAY },
    // model steps' answers by (agent, task, step): a redelivered task is answered from here instead of paying again.
    // As long as a task can be redelivered (TASKS keeps it 7 days); 2.9 has no per-key TTL, so the bucket's is the bound
    answers: { history: 1, ttl: 7 * DAY },
    // held work (quiet hours, a spent cap) by `<agentId>.<taskId>`: the assignment waits here, not on TASKS, so a hold
    // costs no delivery; the key goes once the assignment is sent again
    held: { history: 1 },
    // pipeline runs by (agent, task): each step's result, stored before the next step starts, so a redelivered task
    // resumes at the step it was in; kept as long as a task can be redelivered
    pipelineruns: { history: 1, ttl: 7 * DAY },
    // Atlas's plan: where it has read each input up to, the notes waiting for its next cycle, held assignments, and
    // the record of each plan (what was assigned, held or refused, and why)
    plans: { history: 1, ttl: 30 * DAY },
    // what stateful tools remember between calls (a feed's seen items, an uptime history, a file manifest); written only
    // by tool hosts, each record bounded by the tool that writes it
    toolstate: { history: 1 },
    // what each tool host serves from each source (`<source>.<host>`): agents, governance and `fleet tools` read the
    // descriptions, risks and input schemas of tools that appear at runtime (MCP servers) here
    tools: { history: 1 },
    // what a bridge sent, by OUTBOX message: a redelivered message is not sent twice. Longer than OUTBOX keeps a message
    deliveries: { history: 1, ttl: 8 * DAY },
    // what the router's local classifier learned: operators' corrections and the tiers escalated steps ended on; kept
    labels: { history: 1 },
  };
}

export interface FleetResources {
  jsm: JetStreamManager;
  kv: Record<BucketKey, KV>;
}

export async function ensureFleetResources(
  nc: NatsConnection,
  names: FleetNames,
  options: ResourceOptions = {},
): Promise<FleetResources> {
  // processes starting together race to create the same stream: the loser's create fails ("already in use", "subjects
  // overlap") although the stream it wanted now exists, so it looks again instead of failing its start
  for (let attempt = 1; ; attempt++) {
    try {
      // on a cluster, a process starting during an election (its server restarting, a stream leader moving) waits for
      // a leader instead of failing its start: creating and updating streams and buckets is idempotent
      return await retryThroughElection("fleet resources", () => ensureOnce(nc, names, options));
    } catch (err) {
      if (attempt >= 4 || !(err instanceof JetStreamApiError) || isPermissionViolation(err)) throw err;
      await sleep(50 + Math.random() * 200 * attempt);
    }
  }
}

async function ensureOnce(nc: NatsConnection, names: FleetNames, options: ResourceOptions): Promise<FleetResources> {
  const jsm = await jetstreamManager(nc);
  const replicas = options.replicas ?? 1;
  // streams and buckets that have more replicas than this process's config asks: they keep them (see upsertStream)
  const kept: { name: string; replicas: number }[] = [];
  for (const [key, def] of Object.entries(streamDefinitions(names)) as [StreamKey, Partial<StreamConfig>][]) {
    const config: Partial<StreamConfig> & { name: string } = {
      ...def,
      name: names.stream(key),
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      num_replicas: replicas,
      // the DLQ must hold what was refused for being too large, so only the server's own limit applies there
      ...(options.maxPayloadBytes && key !== "DLQ" ? { max_msg_size: options.maxPayloadBytes } : {}),
    };
    const actual = await upsertStream(jsm, config);
    if (actual !== undefined) kept.push({ name: config.name, replicas: actual });
  }
  const kv = await openBuckets(nc, names, { replicas, create: true });
  // an existing bucket keeps the replicas it was made with (Kvm.create does not update): raise it to the config's,
  // never lower it, for the same reason as a stream's
  for (const key of Object.keys(kv) as BucketKey[]) {
    const stream = `KV_${names.bucket(key)}`;
    const info = await jsm.streams.info(stream);
    if (info.config.num_replicas < replicas) await jsm.streams.update(stream, { ...info.config, num_replicas: replicas });
    else if (info.config.num_replicas > replicas) kept.push({ name: stream, replicas: info.config.num_replicas });
  }
  if (kept.length > 0) {
    options.log?.warn(
      { configured: replicas, kept: kept.map((k) => `${k.name}=R${k.replicas}`) },
      "fleet.replicas is lower than the fleet's streams and buckets have: they keep their replicas (a process never scales the fleet down; lower them with the nats CLI if that is meant)",
    );
  }
  return { jsm, kv };
}

/**
 * The fleet's streams and buckets for a process that may not be allowed to create them. `create: false` (a process run
 * with credentials: on a secured fleet, `fleet up` or the operator creates them) opens what exists; otherwise they are
 * created or updated, and a broker that refuses that falls back to opening them too. A fleet whose streams do not exist
 * yet cannot be opened: that is NATS_UNAVAILABLE, so a supervised process retries until the operator has created them.
 */
export async function openFleetResources(
  nc: NatsConnection,
  names: FleetNames,
  options: ResourceOptions & {
    create?: boolean;
    /**
     * For an identity the broker gives no stream info (an agent: info lists a shared stream's subjects): the fleet is
     * proven to exist by a direct get of one key it may read, and the buckets are bound for direct gets without asking.
     */
    probe?: { bucket: BucketKey; key: string };
  } = {},
): Promise<FleetResources> {
  if (options.probe) return openWithoutInfo(nc, names, options.probe);
  if (options.create !== false) {
    try {
      return await ensureFleetResources(nc, names, options);
    } catch (err) {
      if (!isPermissionViolation(err)) throw err;
    }
  }
  const jsm = await jetstreamManager(nc);
  let direct: boolean;
  try {
    await jsm.streams.info(names.stream("TASKS"));
    // bound buckets read through direct gets when the server offers them: those name the key in the subject, so the
    // broker's permissions can tell one agent's keys from another's
    direct = (await jsm.streams.info(`KV_${names.bucket("tasks")}`)).config.allow_direct === true;
  } catch (cause) {
    if (!isNotFound(cause)) throw cause;
    throw new FleetError("NATS_UNAVAILABLE", `no fleet "${names.prefix}" on this server yet, and this identity may not create one: start it with \`fleet up\` or create it with the operator's credentials`, { cause });
  }
  return { jsm, kv: await openBuckets(nc, names, { direct }) };
}

async function openWithoutInfo(nc: NatsConnection, names: FleetNames, probe: { bucket: BucketKey; key: string }): Promise<FleetResources> {
  // checkAPI off: the manager is only handed on, and needs no round trip to exist
  const jsm = await jetstreamManager(nc, { checkAPI: false });
  // the fleet's buckets are created with direct gets (ensureFleetResources)
  const kv = await openBuckets(nc, names, { direct: true });
  try {
    await kv[probe.bucket].get(probe.key);
  } catch (cause) {
    // a direct get of a stream that does not exist has no responders
    if (!(cause instanceof Error && /no responders/i.test(cause.message)) && !isNotFound(cause)) throw cause;
    throw new FleetError("NATS_UNAVAILABLE", `no fleet "${names.prefix}" on this server yet, and this identity may not create one: start it with \`fleet up\` or create it with the operator's credentials`, { cause });
  }
  return { jsm, kv };
}

/**
 * Creates the stream, or updates it to `config`, except its replica count: that is raised (R1 → R3 when the operator
 * moves to a cluster), never lowered. One process started with a laptop's config (`replicas: 1`) against a cluster's
 * fleet would otherwise scale every stream down to one copy, and the fleet would lose its data with the next node.
 * Returns the count kept when the stream has more replicas than `config` asks, else undefined.
 */
async function upsertStream(jsm: JetStreamManager, config: Partial<StreamConfig> & { name: string }): Promise<number | undefined> {
  const name = config.name;
  let actual: number;
  try {
    actual = (await jsm.streams.info(name)).config.num_replicas;
  } catch (err) {
    if (isNotFound(err)) {
      await jsm.streams.add(config);
      return undefined;
    }
    throw err;
  }
  const wanted = config.num_replicas ?? 1;
  await jsm.streams.update(name, { ...config, num_replicas: Math.max(wanted, actual) });
  return actual > wanted ? actual : undefined;
}

export async function openBuckets(
  nc: NatsConnection,
  names: FleetNames,
  options: { replicas?: number; create?: boolean; direct?: boolean } = {},
): Promise<Record<BucketKey, KV>> {
  const kvm = new Kvm(nc);
  const out = {} as Record<BucketKey, KV>;
  for (const [key, def] of Object.entries(bucketDefinitions()) as [BucketKey, { history: number; ttl?: number }][]) {
    const name = names.bucket(key);
    if (options.create) await kvm.create(name, { history: def.history, replicas: options.replicas ?? 1, ...(def.ttl ? { ttl: def.ttl } : {}) });
    // leases are read through the stream's leader (supervisor/lease.ts says why), every other bucket by direct get
    // when the server offers it (a direct get names the key in its subject: the broker's permissions can tell keys apart;
    // the buckets this creates offer it)
    const kv = await kvm.open(name, { allow_direct: key !== "leases" && (options.direct ?? options.create === true) });
    // on a cluster, a bucket's leader may be being elected when a write comes: it waits for the new one
    out[key] = electionSafeKv(kv, name);
  }
  return out;
}

export interface TaskConsumerOptions {
  ackWaitMs: number;
  maxDeliver: number;
  /** ack wait of each successive delivery; the server uses backoff[n-1] as the nth delivery's ack wait */
  backoffMs: number[];
}

/** The durable pull consumer through which one agent takes its assigned tasks, one at a time, in order. */
export async function ensureTaskConsumer(
  jsm: JetStreamManager,
  names: FleetNames,
  agentId: string,
  options: TaskConsumerOptions,
): Promise<string> {
  const durable = names.agentConsumer(agentId);
  const config: Partial<ConsumerConfig> = {
    durable_name: durable,
    filter_subject: names.task(agentId),
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(options.ackWaitMs),
    max_deliver: options.maxDeliver,
    // one task at a time, and resume-first: a task left unacked by a dead process holds the slot until it is redelivered,
    // so no newer task overtakes it (test/actors/resume-first.test.ts)
    max_ack_pending: 1,
    ...(options.backoffMs.length ? { backoff: options.backoffMs.map((ms) => nanos(ms)) } : {}),
  };
  await upsertConsumer(jsm, names.stream("TASKS"), durable, config);
  return durable;
}

/**
 * The durable consumer a channel's deliverer reads the OUTBOX through. No delivery limit: a message deferred for a
 * principal's quiet hours is redelivered when they end, and the deliverer dead-letters one that keeps failing.
 */
export async function ensureOutboxConsumer(jsm: JetStreamManager, names: FleetNames, channel: string): Promise<string> {
  const durable = `outbox-${channel}`;
  await upsertConsumer(jsm, names.stream("OUTBOX"), durable, {
    durable_name: durable,
    filter_subject: names.outbox(channel),
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(60_000),
    max_deliver: -1,
  });
  return durable;
}

async function upsertConsumer(jsm: JetStreamManager, stream: string, durable: string, config: Partial<ConsumerConfig>): Promise<void> {
  // idempotent: on a cluster it waits out a leader election instead of failing the process's start
  await retryThroughElection(`consumer ${durable}`, () => upsertConsumerOnce(jsm, stream, durable, config));
}

async function upsertConsumerOnce(jsm: JetStreamManager, stream: string, durable: string, config: Partial<ConsumerConfig>): Promise<void> {
  try {
    await jsm.consumers.info(stream, durable);
  } catch (err) {
    if (isNotFound(err)) {
      await jsm.consumers.add(stream, config);
      return;
    }
    throw err;
  }
  await jsm.consumers.update(stream, durable, config);
}

function isNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.status === 404;
}
