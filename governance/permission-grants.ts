import type { FleetConfig } from "../config/index.js";
import type { BucketKey, FleetNames, RiskLevel, StreamKey } from "../protocol/index.js";

/**
 * The building blocks of an identity's permissions: which NATS and JetStream API subjects a publish, a KV read or write,
 * a stream read, a durable consumer or a service needs. Every role in permissions.ts is written in these terms, so the
 * JetStream API subjects are spelled in one place.
 */

export type Identity = `agent:${string}` | `bridge:${string}` | "router" | "scheduler" | "governance" | "tools" | "webhook" | "gateway" | "operator" | ServingIdentity;

/**
 * The twin a process serves requests under (`serve:agent:scout`, `serve:router`): it subscribes to the process's service
 * subjects and may publish replies, nothing else, so a forged reply subject can never make it write data. The process's
 * own identity writes its KV, streams and audit records and makes its requests, and serves nothing.
 */
export type ServingIdentity = `serve:${string}`;

export interface SubjectRules {
  allow: string[];
  deny: string[];
}

export interface Permissions {
  publish: SubjectRules;
  subscribe: SubjectRules;
  allow_responses: boolean;
}

/** A durable consumer and the one identity that works it. */
export interface Durable {
  stream: StreamKey;
  name: string;
  filter: string;
  owner: Identity;
}

export interface GrantContext {
  config: FleetConfig;
  tools: Readonly<Record<string, RiskLevel>>;
  names: FleetNames;
  durables: Durable[];
  inboxOf: (identity: Identity) => string;
}

/** Collects one identity's subjects; the JetStream API subjects are derived here so every role spells them alike. */
export class Grants {
  private readonly pubAllow = new Set<string>();
  private readonly pubDeny = new Set<string>();
  private readonly subAllow = new Set<string>();
  private usesJetStream = false;
  private streamInfo = true;
  /** what `serve()` was given: the serving twin's subscriptions (the identity itself gets none of it) */
  private readonly served = new Set<string>();
  /** a twin that serves no requests but answers NATS micro discovery (`discoverable()`) */
  private announces = false;

  constructor(
    private readonly identity: Identity,
    private readonly ctx: GrantContext,
  ) {
    this.subAllow.add(`${ctx.inboxOf(identity)}.>`);
  }

  publish(...subjects: string[]): void {
    for (const s of subjects) this.pubAllow.add(s);
  }

  /** Subjects this identity reads as a plain subscriber (another process's events), beside its own inbox. */
  listen(...subjects: string[]): void {
    for (const s of subjects) this.subAllow.add(s);
  }

  deny(...subjects: string[]): void {
    for (const s of subjects) this.pubDeny.add(s);
  }

  /**
   * Subjects this role serves. They go to its serving twin (`servingPermissions`), never to the identity itself: the
   * connection that writes data serves nothing, and the one that serves writes nothing but replies.
   */
  serve(...subjects: string[]): void {
    for (const s of subjects) this.served.add(s);
  }

  /**
   * A role that serves no requests over NATS but should be found as a process is (the gateway serves HTTP): its serving
   * twin answers NATS micro discovery only, so `fleet status` learns where it runs the way it learns of every service.
   */
  discoverable(): void {
    this.announces = true;
  }

  /** Whether the role serves anything (requests, or only discovery), and so has a serving twin. */
  get serves(): boolean {
    return this.served.size > 0 || this.announces;
  }

  /**
   * The serving twin's permissions: its service subjects, NATS micro discovery (protocol/micro-discovery.ts; only the
   * operator may ask) and its own inbox to subscribe; replies under `_INBOX.` and nothing else to publish.
   */
  servingPermissions(twin: ServingIdentity): Permissions {
    const subscribe = [`${this.ctx.inboxOf(twin)}.>`, ...this.served];
    for (const verb of ["PING", "INFO", "STATS"]) subscribe.push(`$SRV.${verb}`, `$SRV.${verb}.>`);
    return { publish: { allow: ["_INBOX.>"], deny: [] }, subscribe: { allow: subscribe, deny: [] }, allow_responses: false };
  }

  /** Reads keys of a bucket: a direct get names the key in its subject, a watch or key listing names it in its filter. */
  kvRead(bucket: BucketKey, keys: string[]): void {
    const name = this.ctx.names.bucket(bucket);
    const stream = `KV_${name}`;
    this.jetStream();
    for (const key of keys) {
      this.publish(`$JS.API.DIRECT.GET.${stream}.$KV.${name}.${key}`, `$JS.API.CONSUMER.CREATE.${stream}.*.$KV.${name}.${key}`);
    }
    // a bucket opened without direct gets reads through the stream API, whose subject does not name the key: granted
    // only to an identity that may read every key anyway
    if (keys.includes(">")) this.publish(`$JS.API.STREAM.MSG.GET.${stream}`);
    this.orderedConsumerUpkeep(stream);
  }

  /**
   * Reads a bucket's changes from a sequence on (every revision, not only the latest value): a pull consumer on the
   * bucket's stream with the keys as its filter, the form a reader with a cursor of its own uses.
   */
  kvChanges(bucket: BucketKey, keys: string[]): void {
    this.kvRead(bucket, keys);
    this.publish(`$JS.API.CONSUMER.MSG.NEXT.KV_${this.ctx.names.bucket(bucket)}.*`);
  }

  /**
   * Holds a singleton's lease: writes its own key, and reads the leases bucket through the stream's leader (the lease
   * never trusts a direct get, supervisor/lease.ts says why). That read names no key, so it shows the other leases' holders
   * too: `host:pid` names an operator sees in `fleet status` anyway.
   */
  leaseHolder(key: string): void {
    this.kvWrite("leases", [key]);
    this.publish(`$JS.API.STREAM.MSG.GET.KV_${this.ctx.names.bucket("leases")}`);
  }

  kvWrite(bucket: BucketKey, keys: string[]): void {
    const name = this.ctx.names.bucket(bucket);
    for (const key of keys) this.publish(`$KV.${name}.${key}`);
    this.kvRead(bucket, keys);
  }

  /** Reads a stream through ordered (ephemeral) consumers, filtered on `filters`. */
  streamRead(stream: StreamKey, filters: string[]): void {
    const name = this.ctx.names.stream(stream);
    this.jetStream();
    for (const filter of filters) this.publish(`$JS.API.CONSUMER.CREATE.${name}.*.${filter}`);
    this.publish(`$JS.API.CONSUMER.MSG.NEXT.${name}.*`);
    this.orderedConsumerUpkeep(name);
  }

  /**
   * A durable this identity owns: it may create it (only with the filter in the subject, which the server checks against
   * the config, so it cannot be pointed at someone else's messages), pull from it and acknowledge its messages.
   */
  ownDurable(stream: StreamKey, durable: string): void {
    const s = this.ctx.names.stream(stream);
    const own = this.ctx.durables.find((d) => d.stream === stream && d.name === durable);
    if (!own) throw new TypeError(`no durable ${durable} on ${stream} in this fleet`);
    this.jetStream();
    this.publish(
      `$JS.API.CONSUMER.INFO.${s}.${durable}`,
      `$JS.API.CONSUMER.CREATE.${s}.${durable}.${own.filter}`,
      `$JS.API.CONSUMER.MSG.NEXT.${s}.${durable}`,
      `$JS.ACK.${s}.${durable}.>`,
    );
  }

  /** The nightly backup's reach: every stream and bucket, through ordered consumers and direct gets. */
  readEverything(): void {
    this.jetStream();
    this.publish(
      "$JS.API.CONSUMER.CREATE.*.*",
      "$JS.API.CONSUMER.CREATE.*.*.>",
      "$JS.API.CONSUMER.INFO.*.*",
      "$JS.API.CONSUMER.MSG.NEXT.*.*",
      "$JS.API.CONSUMER.DELETE.*.*",
      "$JS.API.DIRECT.GET.>",
      "$JS.API.STREAM.MSG.GET.*",
      "$JS.FC.>",
    );
  }

  private orderedConsumerUpkeep(stream: string): void {
    // an ordered consumer is inspected, deleted when done, and answers the server's flow control
    this.publish(`$JS.API.CONSUMER.INFO.${stream}.*`, `$JS.API.CONSUMER.DELETE.${stream}.*`, `$JS.FC.${stream}.>`);
  }

  private jetStream(): void {
    this.usesJetStream = true;
  }

  /**
   * No stream info, no stream or consumer listings: stream info takes a `subjects_filter` in its body, which the broker
   * cannot see, and answers with every matching subject of a shared stream (another agent's task keys, memory, session
   * days). An identity given this reads only through what names its keys in the subject: direct gets and consumers
   * created with their filter in the subject.
   */
  withoutEnumeration(): void {
    this.streamInfo = false;
  }

  build(): Permissions {
    if (this.usesJetStream) {
      // Broad on purpose: account info, and any stream's info (opening a bucket reads its stream's config; stream info
      // shows configs and counts, never message data).
      this.publish("$JS.API.INFO");
      if (this.streamInfo) this.publish("$JS.API.STREAM.INFO.*");
      else this.deny("$JS.API.STREAM.INFO.>", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST", "$JS.API.CONSUMER.NAMES.>", "$JS.API.CONSUMER.LIST.>");
      this.deny(...operatorOnlyApi());
      for (const d of this.ctx.durables) {
        const s = this.ctx.names.stream(d.stream);
        // nobody deletes a durable but the operator; nobody else touches one at all
        this.deny(`$JS.API.CONSUMER.DELETE.${s}.${d.name}`);
        if (d.owner === this.identity) continue;
        this.deny(
          `$JS.API.CONSUMER.CREATE.${s}.${d.name}`,
          `$JS.API.CONSUMER.CREATE.${s}.${d.name}.>`,
          `$JS.API.CONSUMER.MSG.NEXT.${s}.${d.name}`,
          `$JS.ACK.${s}.${d.name}.>`,
        );
      }
    }
    return {
      publish: { allow: [...this.pubAllow], deny: [...this.pubDeny] },
      subscribe: { allow: [...this.subAllow], deny: [] },
      allow_responses: false,
    };
  }
}

/** What only the operator may do to JetStream: create, change, purge or delete streams, and the server-wide calls. */
function operatorOnlyApi(): string[] {
  return [
    "$JS.API.STREAM.CREATE.>",
    "$JS.API.STREAM.UPDATE.>",
    "$JS.API.STREAM.DELETE.>",
    "$JS.API.STREAM.PURGE.>",
    "$JS.API.STREAM.MSG.DELETE.>",
    "$JS.API.STREAM.SNAPSHOT.>",
    "$JS.API.STREAM.RESTORE.>",
    "$JS.API.STREAM.PEER.>",
    "$JS.API.STREAM.LEADER.>",
    "$JS.API.CONSUMER.LEADER.>",
    // the old create API has no filter in its subject, so the broker could not check what a durable reads
    "$JS.API.CONSUMER.DURABLE.CREATE.>",
    "$JS.API.ACCOUNT.>",
    "$JS.API.SERVER.>",
    "$JS.API.META.>",
  ];
}
