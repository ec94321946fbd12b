import type { Msg, NatsConnection, Subscription } from "@nats-io/nats-core";
import type { Logger } from "pino";
import type { z } from "zod";
import {
  CompleteRequest,
  EmbedRequest,
  FleetError,
  RouteRequest,
  UsageQuery,
  decode,
  isBadInput,
  negotiate,
  replyError,
  replyResult,
  type CodecName,
  type EmbedReply,
  type FleetNames,
  type RouterOperation,
  type UsageReply,
} from "../protocol/index.js";
import type { ModelRouter } from "./model-router.js";

export interface RouterServiceOptions {
  nc: NatsConnection;
  names: FleetNames;
  codec: CodecName;
  maxPayloadBytes: number;
  router: ModelRouter;
  embed: (texts: string[]) => Promise<EmbedReply>;
  usage: (agentId: string | undefined) => Promise<UsageReply>;
  deadLetter: (subject: string, data: Uint8Array, error: FleetError) => Promise<void>;
  log: Logger;
}

const OPERATIONS = {
  route: RouteRequest,
  complete: CompleteRequest,
  embed: EmbedRequest,
  usage: UsageQuery,
} satisfies Record<RouterOperation, z.ZodType>;

/** The queue group every router process joins: a request goes to one of them, and survives any one of them dying. */
export const ROUTER_QUEUE = "router";

/**
 * Serves `fleet.router.{route,complete,embed,usage}` in one queue group. Each request is validated here, once; bad input
 * gets a typed error reply and is dead-lettered. Requests run concurrently: a slow provider holds only its own request.
 */
export class RouterService {
  private readonly subs: Subscription[] = [];
  private inFlight = new Set<Promise<void>>();

  constructor(private readonly o: RouterServiceOptions) {}

  start(): void {
    for (const op of Object.keys(OPERATIONS) as RouterOperation[]) {
      this.subs.push(
        this.o.nc.subscribe(this.o.names.router(op), {
          queue: ROUTER_QUEUE,
          callback: (err, msg) => {
            if (err) return;
            const handling = this.handle(op, msg).finally(() => this.inFlight.delete(handling));
            this.inFlight.add(handling);
          },
        }),
      );
    }
  }

  /** Stops taking requests, then waits for the ones under way (their callers are owed an answer). */
  async stop(): Promise<void> {
    for (const sub of this.subs) sub.unsubscribe();
    await Promise.allSettled([...this.inFlight]);
  }

  get busy(): number {
    return this.inFlight.size;
  }

  private async handle(op: RouterOperation, msg: Msg): Promise<void> {
    const negotiated = negotiate(msg, this.o.codec);
    const codec = negotiated.ok ? negotiated.codec : this.o.codec;
    try {
      if (!negotiated.ok) throw negotiated.error;
      const result = await this.run(op, msg.data, codec);
      if (msg.reply) replyResult(msg, result, codec);
    } catch (err) {
      const error = FleetError.from(err);
      if (isBadInput(error)) this.o.log.warn({ op, code: error.code }, "router request refused");
      else this.o.log.info({ op, code: error.code, reason: error.message }, "router request answered with an error");
      if (msg.reply) replyError(msg, error, codec);
      if (isBadInput(error) || !msg.reply) await this.o.deadLetter(msg.subject, msg.data, error);
    }
  }

  private async run(op: RouterOperation, data: Uint8Array, codec: CodecName): Promise<unknown> {
    const options = { codec, maxBytes: this.o.maxPayloadBytes };
    switch (op) {
      case "route":
        return this.o.router.route(unwrap(decode(RouteRequest, data, options)));
      case "complete":
        return this.o.router.complete(unwrap(decode(CompleteRequest, data, options)));
      case "embed":
        return this.o.embed(unwrap(decode(EmbedRequest, data, options)).texts);
      case "usage":
        return this.o.usage(unwrap(decode(UsageQuery, data, options)).agentId);
    }
  }
}

function unwrap<T>(decoded: { ok: true; value: T } | { ok: false; error: FleetError }): T {
  if (!decoded.ok) throw decoded.error;
  return decoded.value;
}
