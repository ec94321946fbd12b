import { NoRespondersError, RequestError, TimeoutError, type NatsConnection } from "@nats-io/nats-core";
import { setTimeout as sleep } from "node:timers/promises";
import type { z } from "zod";
import {
  CALLERS,
  CompleteReply,
  EmbedReply,
  FleetError,
  isPermissionViolation,
  RouteDecision,
  TeachReply,
  UsageReply,
  requestTyped,
  type CodecName,
  type CompleteRequest,
  type FleetNames,
  type RouteRequest,
  type RouterOperation,
  type TeachRequest,
} from "../protocol/index.js";

export interface RouterClientOptions {
  codec?: CodecName;
  /** how long one request may take: long enough for a tier's timeout times its fallback chain */
  timeoutMs?: number;
  /**
   * How often a complete is sent again, with the same callId, when no router answers in time or none is there: a router
   * that died holding the request loses nothing but the time, and the retry is not billed twice (reservations are keyed
   * by callId).
   */
  retries?: number;
  /** told each time a premium call has to wait, so the agent can log it and keep its task's working-acks going */
  onWaiting?: (callId: string, retryAfterMs: number) => void;
  signal?: AbortSignal;
  /** told of every answered complete, where the call was made: the agent process counts each task's tokens here */
  onReply?: (request: CompleteRequest, reply: CompleteReply) => void;
}

/**
 * How agents and the CLI talk to the router. A premium call that has to wait (PROVIDER_WAITING) is retried with the same
 * callId after the delay the router names, so the wait survives a router dying and is never billed twice.
 */
/** The cause of the TIMEOUT a request in flight gets when the connection is re-established (not a lost router). */
const RECONNECTED = new Error("the connection to NATS was re-established");

export class RouterClient {
  private reconnected: Promise<void>;
  private signalReconnect: () => void = () => undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly names: FleetNames,
    private readonly options: RouterClientOptions = {},
  ) {
    this.reconnected = this.nextReconnect();
    void this.watchReconnects();
  }

  private nextReconnect(): Promise<void> {
    return new Promise<void>((resolve) => (this.signalReconnect = resolve));
  }

  /**
   * A reply cannot cross a reconnect: a request in flight when the connection dropped would wait out its whole timeout
   * (minutes, for a model call). On reconnect every such request is sent again at once, with its callId.
   */
  private async watchReconnects(): Promise<void> {
    for await (const status of this.nc.status()) {
      if (status.type !== "reconnect") continue;
      const signal = this.signalReconnect;
      this.reconnected = this.nextReconnect();
      signal();
    }
  }

  route(request: RouteRequest): Promise<RouteDecision> {
    return this.request("route", request.agentId, request, RouteDecision);
  }

  async complete(request: CompleteRequest): Promise<CompleteReply> {
    const withId = { ...request, callId: request.callId ?? crypto.randomUUID() };
    let retriesLeft = this.options.retries ?? 2;
    for (;;) {
      try {
        const reply = await this.request("complete", withId.agentId, withId, CompleteReply);
        this.options.onReply?.(withId, reply);
        return reply;
      } catch (err) {
        if (!(err instanceof FleetError)) throw err;
        if ((err.code === "TIMEOUT" || err.code === "ROUTER_UNAVAILABLE" || err.code === "CONFLICT") && retriesLeft-- > 0) {
          // resent after a reconnect, the router holding it is probably alive: it says so (see CompleteRequest)
          if (err.cause === RECONNECTED) withId.resentAfterReconnect = true;
          else delete withId.resentAfterReconnect;
          // no router, or the one we reached died: back off a little so a restarting router can join
          await sleep(err.code === "ROUTER_UNAVAILABLE" ? 1_000 : 0, undefined, this.signalOption());
          continue;
        }
        if (err.code !== "PROVIDER_WAITING") throw err;
        const delay = err.retryAfterMs ?? 30_000;
        this.options.onWaiting?.(withId.callId, delay);
        await sleep(delay, undefined, this.signalOption());
      }
    }
  }

  private signalOption(): { signal?: AbortSignal } {
    return this.options.signal ? { signal: this.options.signal } : {};
  }

  embed(agentId: string, texts: string[]): Promise<EmbedReply> {
    return this.request("embed", agentId, { agentId, texts }, EmbedReply);
  }

  /** The operator's view of the fleet's spend (`agentId` narrows it to one agent); an agent asks as itself with `self`. */
  usage(agentId?: string, options: { self?: boolean } = {}): Promise<UsageReply> {
    const caller = options.self && agentId ? agentId : CALLERS.operator;
    return this.request("usage", caller, agentId ? { agentId } : {}, UsageReply);
  }

  /** The operator's correction of the local classifier: `title` calls for `tier` from now on, in every router. */
  teach(request: TeachRequest): Promise<TeachReply> {
    return this.request("teach", CALLERS.operator, request, TeachReply);
  }

  /** `caller` goes in the subject: the broker lets this connection use only its own id there (or ids it acts for). */
  private async request<S extends z.ZodType>(op: RouterOperation, caller: string, body: unknown, result: S): Promise<z.infer<S>> {
    const codec = this.options.codec ?? "msgpack";
    try {
      const reconnected = this.reconnected.then(() => {
        throw new FleetError("TIMEOUT", `the connection to NATS was re-established while ${op} was in flight`, { cause: RECONNECTED });
      });
      reconnected.catch(() => undefined);
      return await Promise.race([
        requestTyped(this.nc, this.names.router(op, caller), body, result, { codec, timeoutMs: this.options.timeoutMs ?? 300_000 }),
        reconnected,
      ]);
    } catch (err) {
      if (err instanceof FleetError) throw err;
      // the broker lets a connection ask only as itself (or whom it may act for): not retried, named as such
      if (isPermissionViolation(err)) throw new FleetError("PERMISSION_DENIED", `the broker refuses this process ${op} as "${caller}"`, { cause: err });
      const cause = err instanceof RequestError && err.cause ? err.cause : err;
      if (cause instanceof NoRespondersError || (err instanceof RequestError && err.isNoResponders())) {
        throw new FleetError("ROUTER_UNAVAILABLE", "no router answers (start one with `fleet run router`)", { cause: err });
      }
      if (cause instanceof TimeoutError) throw new FleetError("TIMEOUT", `the router did not answer ${op} in time`, { cause: err });
      throw FleetError.from(err);
    }
  }
}
