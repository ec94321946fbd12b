import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import {
  CALLERS,
  CompleteRequest,
  EmbedRequest,
  endpoint,
  FleetService,
  RouteRequest,
  TeachRequest,
  UsageQuery,
  type CodecName,
  type EmbedReply,
  type FleetError,
  type FleetNames,
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

/** The queue group every router process joins: a request goes to one of them, and survives any one of them dying. */
export const ROUTER_QUEUE = "router";

/**
 * Serves `fleet.router.{route,complete,embed,usage}.<caller>` in one queue group, on the fleet's one service skeleton (validation,
 * typed errors, dead letters, micro discovery). Requests run concurrently: a slow provider holds only its own request.
 */
export class RouterService {
  private readonly service: FleetService;

  constructor(options: RouterServiceOptions) {
    const { names, router } = options;
    this.service = new FleetService({
      nc: options.nc,
      name: "fleet-router",
      version: "1.0.0",
      description: "routes each model step to the cheapest tier that can do it, within budget",
      queue: ROUTER_QUEUE,
      subscribe: [names.routerOperations()],
      endpoints: [
        // the agent a call is for (and billed to) is the caller the subject names: the payload may only repeat it
        endpoint({ name: "route", subject: names.router("route", "*"), request: RouteRequest, claims: (r) => r.agentId, handle: (request) => router.route(request) }),
        endpoint({ name: "complete", subject: names.router("complete", "*"), request: CompleteRequest, claims: (r) => r.agentId, handle: (request) => router.complete(request),
          // the call's USAGE record goes out in the reply's socket write
          beforeReply: (reply) => router.releaseUsage((reply as { callId: string }).callId) }),
        endpoint({ name: "embed", subject: names.router("embed", "*"), request: EmbedRequest, claims: (r) => r.agentId, handle: (request) => options.embed(request.texts) }),
        // only the operator teaches the local classifier: an agent must not steer its own steps to a dearer tier
        endpoint({ name: "teach", subject: names.router("teach", "*"), request: TeachRequest, claims: () => CALLERS.operator, handle: (request) => router.teach(request) }),
        // an agent sees its own spend; the operator the whole fleet's, or one agent's
        endpoint({
          name: "usage",
          subject: names.router("usage", "*"),
          request: UsageQuery,
          claims: (r) => r.agentId,
          delegates: [CALLERS.operator],
          handle: (request, call) => options.usage(call.caller === CALLERS.operator ? request.agentId : call.caller),
        }),
      ],
      codec: options.codec,
      maxPayloadBytes: options.maxPayloadBytes,
      deadLetter: options.deadLetter,
      log: options.log,
    });
  }

  start(): void {
    this.service.start();
  }

  /** Stops taking requests, then waits for the ones under way (their callers are owed an answer). */
  async stop(): Promise<void> {
    await this.service.stop();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  get busy(): number {
    return this.service.busy;
  }
}
