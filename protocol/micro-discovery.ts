import type { Msg, NatsConnection, Subscription } from "@nats-io/nats-core";
import { z } from "zod";
import type { FleetError } from "./errors.js";

/**
 * The NATS micro discovery protocol (ADR-32), spoken by hand because `@nats-io/services` has no stable v3 release:
 * `$SRV.<VERB>`, `$SRV.<VERB>.<name>` and `$SRV.<VERB>.<name>.<id>` for PING, INFO and STATS, answered in JSON by every
 * matching instance. One responder per connection answers for every service on it: an agent process hosts two services
 * per agent, and 10,000 agents must not cost 180,000 discovery subscriptions.
 */

export const MICRO_VERBS = ["PING", "INFO", "STATS"] as const;
export type MicroVerb = (typeof MICRO_VERBS)[number];

/** Counters of one endpoint, as `$SRV.STATS` reports them (times in nanoseconds). */
export class EndpointStats {
  numRequests = 0;
  numErrors = 0;
  lastError = "";
  processingTimeNs = 0n;

  constructor(
    readonly name: string,
    readonly subject: string,
    readonly queueGroup: string,
  ) {}

  record(elapsedNs: bigint, error: FleetError | undefined): void {
    this.numRequests++;
    this.processingTimeNs += elapsedNs;
    if (error) {
      this.numErrors++;
      this.lastError = `${error.code}: ${error.message}`;
    }
  }

  get averageProcessingTimeNs(): number {
    return this.numRequests === 0 ? 0 : Number(this.processingTimeNs / BigInt(this.numRequests));
  }
}

export interface DiscoverableService {
  readonly name: string;
  readonly id: string;
  readonly version: string;
  readonly description: string;
  readonly metadata: Record<string, string>;
  readonly started: Date;
  readonly endpointStats: readonly EndpointStats[];
}

export function pingResponse(s: DiscoverableService) {
  return { type: "io.nats.micro.v1.ping_response", name: s.name, id: s.id, version: s.version, metadata: s.metadata };
}

export function infoResponse(s: DiscoverableService) {
  return {
    type: "io.nats.micro.v1.info_response",
    name: s.name,
    id: s.id,
    version: s.version,
    metadata: s.metadata,
    description: s.description,
    endpoints: s.endpointStats.map((e) => ({ name: e.name, subject: e.subject, queue_group: e.queueGroup, metadata: null })),
  };
}

export function statsResponse(s: DiscoverableService) {
  return {
    type: "io.nats.micro.v1.stats_response",
    name: s.name,
    id: s.id,
    version: s.version,
    metadata: s.metadata,
    started: s.started.toISOString(),
    endpoints: s.endpointStats.map((e) => ({
      name: e.name,
      subject: e.subject,
      queue_group: e.queueGroup,
      num_requests: e.numRequests,
      num_errors: e.numErrors,
      last_error: e.lastError,
      processing_time: Number(e.processingTimeNs),
      average_processing_time: e.averageProcessingTimeNs,
    })),
  };
}

const RESPONSES: Record<MicroVerb, (s: DiscoverableService) => unknown> = { PING: pingResponse, INFO: infoResponse, STATS: statsResponse };
const encoder = new TextEncoder();

class DiscoveryResponder {
  private readonly services = new Set<DiscoverableService>();
  private subs: Subscription[] = [];

  constructor(private readonly nc: NatsConnection) {}

  add(service: DiscoverableService): () => void {
    if (this.services.size === 0) this.subscribe();
    this.services.add(service);
    return () => {
      this.services.delete(service);
      if (this.services.size === 0) this.unsubscribe();
    };
  }

  private subscribe(): void {
    for (const verb of MICRO_VERBS) {
      for (const subject of [`$SRV.${verb}`, `$SRV.${verb}.>`]) {
        this.subs.push(this.nc.subscribe(subject, { callback: (err, msg) => void (err ? undefined : this.answer(verb, msg)) }));
      }
    }
  }

  private unsubscribe(): void {
    for (const sub of this.subs.splice(0)) sub.unsubscribe();
  }

  private answer(verb: MicroVerb, msg: Msg): void {
    // discovery answers go to inboxes only, like every other reply of ours
    if (!msg.reply?.startsWith("_INBOX.")) return;
    const [, , name, id] = msg.subject.split(".");
    for (const service of this.services) {
      if (name !== undefined && service.name !== name) continue;
      if (id !== undefined && service.id !== id) continue;
      msg.respond(encoder.encode(JSON.stringify(RESPONSES[verb](service))));
    }
  }
}

const responders = new WeakMap<NatsConnection, DiscoveryResponder>();

/** Makes a service answer discovery on its connection; the returned function takes it off again. */
export function registerDiscovery(nc: NatsConnection, service: DiscoverableService): () => void {
  let responder = responders.get(nc);
  if (!responder) {
    responder = new DiscoveryResponder(nc);
    responders.set(nc, responder);
  }
  return responder.add(service);
}

/** One instance's `$SRV.STATS` answer, as `fleet status` reads it (any micro service, ours or not). */
export const MicroStats = z.object({
  name: z.string(),
  id: z.string(),
  version: z.string(),
  metadata: z.record(z.string(), z.string()).nullish(),
  started: z.string(),
  endpoints: z
    .array(z.object({ name: z.string(), subject: z.string(), num_requests: z.number(), num_errors: z.number(), last_error: z.string(), average_processing_time: z.number() }))
    .nullish(),
});
export type MicroStats = z.infer<typeof MicroStats>;

/** Asks every micro service on the bus for its stats and collects the answers that arrive within `waitMs`. */
export async function discoverServices(nc: NatsConnection, waitMs = 500): Promise<MicroStats[]> {
  const out: MicroStats[] = [];
  const replies = await nc.requestMany("$SRV.STATS", undefined, { strategy: "timer", maxWait: waitMs });
  for await (const reply of replies) {
    let raw: unknown;
    try {
      raw = JSON.parse(new TextDecoder().decode(reply.data));
    } catch {
      continue;
    }
    const parsed = MicroStats.safeParse(raw);
    if (parsed.success) out.push(parsed.data);
  }
  return out.sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
}
