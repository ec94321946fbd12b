import { hostname } from "node:os";
import type { Msg, NatsConnection, Subscription } from "@nats-io/nats-core";
import type { Logger } from "pino";
import type { z } from "zod";
import { decode, type CodecName } from "./codec.js";
import { FleetError, isBadInput } from "./errors.js";
import { EndpointStats, registerDiscovery, type DiscoverableService } from "./micro-discovery.js";
import { negotiate, replyError, replyResult } from "./wire.js";
import { HEADERS } from "./subjects.js";
import { withTraceparent } from "./trace-context.js";

/**
 * The one request/reply skeleton every fleet service is built on (A2A operations, controls, router, memory search, tool
 * hosts, governance). Each request goes through the same steps, in this order, so no copy can drift:
 *
 *   reply subject check → codec negotiation → size check → zod validation → handler → `{result}` or a typed `{error}`
 *
 * A request that fails before its handler (a forged reply subject, a codec we do not speak, too large, not the schema, an
 * operation nobody serves, a question without a reply subject) is dead-lettered with its reason and original bytes, so
 * nothing is lost; so is a handler's bad-input refusal. Replies go only to `_INBOX.` subjects: a reply subject is the
 * requester's choice, and a service answering on `$KV.…` or an audit subject would write with the service's rights.
 *
 * Services answer NATS micro discovery (`$SRV.PING|INFO|STATS`), so `nats micro list` and `fleet status` see them.
 */

/** What a handler learns about its request besides the body. */
export interface ServiceCall {
  /** the subject the request came on (a caller's identity is part of it where the broker proves it) */
  subject: string;
  /** the caller's id: the token of the subject in the endpoint's `*` place, which the broker lets only that caller use */
  caller?: string | undefined;
  codec: CodecName;
  /** false for a one-way request: whatever the handler returns goes nowhere */
  replies: boolean;
  log: Logger;
}

export interface EndpointSpec<S extends z.ZodType> {
  /** the micro endpoint name: letters, digits, `-` and `_` */
  name: string;
  /**
   * The subject of the endpoint. One `*` token, if any, is the caller's id (`fleet.router.complete.*`): the broker lets
   * each identity publish only its own id there, and the handler reads it as `call.caller`.
   */
  subject: string;
  /** the request body's schema; a body that fails it never reaches the handler */
  request: S;
  /**
   * The caller the payload names, if it names one (an `agentId` field): it must be `call.caller`, or the request is
   * refused with PERMISSION_DENIED before the handler sees it.
   */
  claims?: (request: z.infer<S>) => string | undefined;
  /**
   * Callers that act on someone else's behalf and so may name another caller in the payload (governance executing an
   * agent's proposal, the operator): checking what they name is the handler's job.
   */
  delegates?: readonly string[];
  /**
   * A one-way request (no reply subject) runs only where it has an effect worth having without an answer (SendMessage);
   * elsewhere it is a question nobody will hear the answer to, and is dead-lettered instead.
   */
  oneWay?: "run" | "refuse";
  handle: (request: z.infer<S>, call: ServiceCall) => Promise<unknown>;
  /**
   * Runs with the handler's result just before the reply is sent, in the same tick, so that whatever it publishes goes
   * out in the reply's socket write (the router's USAGE record: one write per call instead of two).
   */
  beforeReply?: (result: unknown) => void;
}

/** An endpoint with its schema bound to its handler: the service sees bytes in, a result (or a typed error) out. */
export interface Endpoint {
  name: string;
  subject: string;
  oneWay: "run" | "refuse";
  beforeReply?: ((result: unknown) => void) | undefined;
  /**
   * The body decoded, validated and checked against the caller (a failure here is the sender's: dead-lettered), then the
   * handler bound to what was accepted, to run.
   */
  accept: (data: Uint8Array, maxBytes: number, call: ServiceCall) => () => Promise<unknown>;
}

/** Declares an endpoint: the handler receives only what the schema parsed, from the caller it names (if it names one). */
export function endpoint<S extends z.ZodType>(spec: EndpointSpec<S>): Endpoint {
  return {
    name: spec.name,
    subject: spec.subject,
    oneWay: spec.oneWay ?? "refuse",
    beforeReply: spec.beforeReply,
    accept: (data, maxBytes, call) => {
      const decoded = decode(spec.request, data, { codec: call.codec, maxBytes });
      if (!decoded.ok) throw decoded.error;
      const claimed = spec.claims?.(decoded.value);
      if (claimed !== undefined && claimed !== call.caller && !(call.caller !== undefined && spec.delegates?.includes(call.caller))) {
        throw new FleetError("PERMISSION_DENIED", `${spec.name}: the payload names "${claimed}" but the caller is ${call.caller === undefined ? "not named" : `"${call.caller}"`} (the subject ${call.subject} says who is asking)`);
      }
      const request = decoded.value;
      return () => spec.handle(request, call);
    },
  };
}

/** Declares an endpoint whose requests carry no body (operator controls): a request with one is refused. */
export function bodilessEndpoint(spec: Omit<EndpointSpec<z.ZodUndefined>, "request" | "handle"> & { handle: (call: ServiceCall) => Promise<unknown> }): Endpoint {
  return {
    name: spec.name,
    subject: spec.subject,
    oneWay: spec.oneWay ?? "refuse",
    accept: (data, _maxBytes, call) => {
      if (data.length > 0) throw new FleetError("MESSAGE_INVALID", `${spec.name} takes no payload; got ${data.length} bytes`);
      return () => spec.handle(call);
    },
  };
}

export interface FleetServiceOptions {
  nc: NatsConnection;
  /** the micro service name, shared by every instance of this kind of service */
  name: string;
  version: string;
  description: string;
  metadata?: Record<string, string>;
  /** the queue group: a request goes to one instance */
  queue: string;
  endpoints: readonly Endpoint[];
  /**
   * What to subscribe to; defaults to each endpoint's subject. A wildcard here (`fleet.agent.x.a2a.*`) lets the service
   * answer an operation it does not implement with UNSUPPORTED_OPERATION instead of leaving the caller without responders.
   */
  subscribe?: readonly string[];
  codec: CodecName;
  maxPayloadBytes: number;
  /** stores a request that could not be used, with why (protocol/dead-letter.ts behind a JetStream client) */
  deadLetter: (subject: string, data: Uint8Array, error: FleetError) => Promise<void>;
  log: Logger;
}

const INBOX = "_INBOX.";

interface Served {
  endpoint: Endpoint;
  stats: EndpointStats;
  tokens: string[];
  /** where the caller's token is in the subject; -1 for an exact subject */
  callerAt: number;
}

export class FleetService implements DiscoverableService {
  readonly id: string;
  readonly started = new Date();
  private readonly bySubject = new Map<string, Served>();
  /** endpoints whose subject carries the caller's `*` token */
  private readonly byPattern: Served[] = [];
  private readonly subs: Subscription[] = [];
  /** endpoints added at runtime, each on its own subscription */
  private readonly added = new Map<string, Subscription>();
  private pendingAdded: string[] = [];
  private running = false;
  private readonly inFlight = new Set<Promise<void>>();
  private unregister: (() => void) | undefined;
  /** requests whose reply subject was not an inbox: refused, never answered */
  forgedReplies = 0;

  constructor(private readonly options: FleetServiceOptions) {
    this.id = `${options.name}-${Math.random().toString(36).slice(2, 12)}`;
    for (const e of options.endpoints) this.register(e);
  }

  private register(e: Endpoint): void {
    const tokens = e.subject.split(".");
    const callerAt = tokens.indexOf("*");
    if (tokens.includes(">") || tokens.lastIndexOf("*") !== callerAt) throw new TypeError(`endpoint ${e.name}: its subject may hold one "*" (the caller), no more and no ">"`);
    if (this.bySubject.has(e.subject) || this.byPattern.some((p) => p.endpoint.subject === e.subject)) throw new TypeError(`endpoint ${e.name}: ${e.subject} is served already`);
    const served: Served = { endpoint: e, stats: new EndpointStats(e.name, e.subject, this.options.queue), tokens, callerAt };
    if (callerAt < 0) this.bySubject.set(e.subject, served);
    else this.byPattern.push(served);
  }

  /**
   * Serves one more endpoint, on its own subscription (a tool that appeared at runtime: an MCP server listed it). Before
   * start() it is subscribed with the others.
   */
  add(e: Endpoint): void {
    this.register(e);
    if (this.running) this.added.set(e.subject, this.subscribe(e.subject));
    else this.pendingAdded.push(e.subject);
  }

  /** Stops serving an endpoint added with add(); requests already under way still get their answer. */
  remove(subject: string): void {
    this.added.get(subject)?.unsubscribe();
    this.added.delete(subject);
    this.pendingAdded = this.pendingAdded.filter((s) => s !== subject);
    this.bySubject.delete(subject);
    const at = this.byPattern.findIndex((p) => p.endpoint.subject === subject);
    if (at >= 0) this.byPattern.splice(at, 1);
  }

  get name(): string {
    return this.options.name;
  }
  get version(): string {
    return this.options.version;
  }
  get description(): string {
    return this.options.description;
  }
  /** with the host and pid it runs as, so `fleet status` tells where each instance of a spread fleet runs */
  get metadata(): Record<string, string> {
    return { host: hostname(), pid: String(process.pid), ...this.options.metadata };
  }
  get endpointStats(): EndpointStats[] {
    return [...this.bySubject.values(), ...this.byPattern].map((e) => e.stats);
  }
  /** requests being handled right now */
  get busy(): number {
    return this.inFlight.size;
  }

  start(): void {
    const subjects = this.options.subscribe ?? this.options.endpoints.map((e) => e.subject);
    for (const subject of subjects) this.subs.push(this.subscribe(subject));
    for (const subject of this.pendingAdded.splice(0)) this.added.set(subject, this.subscribe(subject));
    this.running = true;
    this.unregister = registerDiscovery(this.options.nc, this);
  }

  private subscribe(subject: string): Subscription {
    return this.options.nc.subscribe(subject, {
      queue: this.options.queue,
      callback: (err, msg) => {
        if (err) return;
        const handling = this.handle(msg).finally(() => this.inFlight.delete(handling));
        this.inFlight.add(handling);
      },
    });
  }

  /** Stops taking requests, then waits for the ones under way: their callers are owed an answer. */
  async stop(): Promise<void> {
    this.running = false;
    for (const sub of this.subs.splice(0)) sub.unsubscribe();
    for (const sub of this.added.values()) sub.unsubscribe();
    // a later start() serves them again
    this.pendingAdded.push(...this.added.keys());
    this.added.clear();
    this.unregister?.();
    this.unregister = undefined;
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** The endpoint a subject belongs to, and the caller it names. */
  private route(subject: string): { target: Served | undefined; caller: string | undefined } {
    const exact = this.bySubject.get(subject);
    if (exact || this.byPattern.length === 0) return { target: exact, caller: undefined };
    const tokens = subject.split(".");
    for (const served of this.byPattern) {
      if (served.tokens.length !== tokens.length) continue;
      if (served.tokens.every((t, i) => i === served.callerAt || t === tokens[i])) return { target: served, caller: tokens[served.callerAt] };
    }
    return { target: undefined, caller: undefined };
  }

  private async handle(msg: Msg): Promise<void> {
    const startedAt = process.hrtime.bigint();
    const { target, caller } = this.route(msg.subject);
    const log = this.options.log;
    const negotiated = negotiate(msg, this.options.codec);
    const codec = negotiated.ok ? negotiated.codec : this.options.codec;
    const replies = Boolean(msg.reply);
    let error: FleetError | undefined;
    // everything that fails before the handler is the sender's doing: refused, warned about and dead-lettered
    let accepted = false;
    try {
      if (msg.reply && !msg.reply.startsWith(INBOX)) {
        this.forgedReplies++;
        throw new FleetError("PERMISSION_DENIED", `reply subject ${msg.reply} is not an inbox (${INBOX}…): the request is refused`);
      }
      if (!negotiated.ok) throw negotiated.error;
      if (!target) throw new FleetError("UNSUPPORTED_OPERATION", `${msg.subject} is not an operation of ${this.options.name}`);
      if (!replies && target.endpoint.oneWay !== "run") {
        throw new FleetError("MESSAGE_INVALID", `${target.endpoint.name} is a request: it needs a reply subject`);
      }
      const call: ServiceCall = { subject: msg.subject, caller, codec, replies, log };
      const run = target.endpoint.accept(msg.data, this.options.maxPayloadBytes, call);
      accepted = true;
      // a traced caller's span is the parent of whatever the handler traces (telemetry on; a no-op otherwise)
      const result = await withTraceparent(msg.headers?.get(HEADERS.traceparent) || undefined, run);
      target.endpoint.beforeReply?.(result);
      if (replies) replyResult(msg, result ?? {}, codec);
    } catch (err) {
      error = FleetError.from(err);
      if (!(err instanceof FleetError) && error.code === "INTERNAL") {
        // an exception nobody named: its text is the library's (subjects, stream names), for the log, not the caller
        log.error({ err, service: this.options.name, subject: msg.subject }, "request failed unexpectedly");
        error = new FleetError("INTERNAL", `an unexpected failure in ${this.options.name}; its log has the cause`, { cause: err });
      }
      const forged = msg.reply !== undefined && msg.reply !== "" && !msg.reply.startsWith(INBOX);
      const fields = { service: this.options.name, endpoint: target?.endpoint.name, subject: msg.subject, code: error.code };
      const refused = !accepted || isBadInput(error);
      if (refused) log.warn({ ...fields, caller, reason: error.message }, "request refused");
      else log.debug({ ...fields, reason: error.message }, "request answered with an error");
      if (replies && !forged) replyError(msg, error, codec);
      if (refused || !replies) await this.options.deadLetter(msg.subject, msg.data, error);
    } finally {
      target?.stats.record(process.hrtime.bigint() - startedAt, error);
    }
  }
}
