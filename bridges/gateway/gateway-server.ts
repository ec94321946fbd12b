import { A2A_VERSION_HEADER, type AgentCard } from "@a2a-js/sdk";
import { A2AError, ContentTypeNotSupportedError, RequestMalformedError } from "@a2a-js/sdk/errors";
import { JsonRpcTransportHandler, validateVersion } from "@a2a-js/sdk/server";
import type { NatsConnection } from "@nats-io/nats-core";
import Fastify, { type FastifyReply, type FastifyRequest } from "fastify";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import { z } from "zod";
import type { AgentConfig, FleetConfig, GatewayConfig } from "../../config/index.js";
import { FleetError, type Clock, type FleetNames } from "../../protocol/index.js";
import { AgentA2aHandler, PeerCallContext } from "./agent-a2a-handler.js";
import { agentCard, cardJson, CARD_PATH, fleetCard } from "./agent-cards.js";
import { GatewayPeers, mayCall, type Peer } from "./gateway-peers.js";
import { announceGateway } from "./gateway-presence.js";
import { jsonRpcError, refuse, streamSse, type Binding } from "./http-binding.js";
import { serveRest } from "./rest-binding.js";

/*
 * The A2A HTTP gateway (fastify): the fleet's agents over A2A v1.0's JSON-RPC and HTTP+JSON bindings, with SSE for the
 * streaming operations, each operation carried to the agent over NATS by AgentA2aHandler. Before a request may reach
 * NATS it passes, in this order and before its body is read: a peer's bearer token (401), the peer's grant for the agent
 * (403), the A2A-Version header (the spec's VersionNotSupported), the peer's rate limit (429) and the body size (413);
 * after it is read, the JSON and the schema (the spec's parse and invalid-params errors) and the skill grant (403).
 */

export interface GatewayOptions {
  nc: NatsConnection;
  /** where it answers NATS micro discovery (its serving twin on a secured fleet); `nc` when omitted */
  serveNc?: NatsConnection | undefined;
  names: FleetNames;
  config: FleetConfig;
  settings: GatewayConfig;
  /** the values of the variables the peers' `tokenEnv` name */
  tokens: Readonly<Record<string, string | undefined>>;
  clock: Clock;
  log: Logger;
  /** the cards' version; the package's by default */
  version?: string;
  /** a request to an agent that gets no answer in this time fails with TIMEOUT */
  requestTimeoutMs?: number;
}

interface Admitted {
  target: Target;
  context: PeerCallContext;
}

interface Target {
  handler: AgentA2aHandler;
  card: AgentCard;
  agentId: string;
}

const AgentParams = z.object({ agent: z.string().regex(/^[a-z][a-z0-9-]{0,31}$/) });
const JsonRpcEnvelope = z.object({ method: z.string().optional(), id: z.union([z.string(), z.number(), z.null()]).optional() }).loose();

export class Gateway {
  private app: ReturnType<typeof Fastify> | undefined;
  private address: AddressInfo | undefined;
  private readonly peers: GatewayPeers;
  private readonly targets = new Map<string, Target>();
  private fleet: Target | undefined;
  private fleetCardJson: unknown;
  private readonly jsonRpc = new Map<string, JsonRpcTransportHandler>();
  /** what the onRequest check admitted, for the handler */
  private readonly admitted = new WeakMap<FastifyRequest, Admitted>();
  /** calls under way: stop() ends their waits (streams, blocking sends) so that closing does not wait on a long task */
  private readonly active = new Set<PeerCallContext>();
  /** takes the gateway off NATS micro discovery */
  private unannounce: (() => void) | undefined;

  private constructor(private readonly o: GatewayOptions) {
    // refuses at once a peer whose token variable is unset: before anything listens
    this.peers = new GatewayPeers(o.settings, o.config.agents, o.tokens, o.clock);
  }

  static async start(options: GatewayOptions): Promise<Gateway> {
    const gateway = new Gateway(options);
    try {
      await gateway.listen();
    } catch (err) {
      await gateway.stop();
      throw err;
    }
    return gateway;
  }

  get url(): string {
    if (!this.address) throw new Error("the gateway is not listening");
    const host = this.address.family === "IPv6" ? `[${this.address.address}]` : this.address.address;
    return `http://${host}:${this.address.port}`;
  }

  /** The base URL the cards name: `publicUrl`, else where it listens. */
  get baseUrl(): string {
    return (this.o.settings.publicUrl ?? this.url).replace(/\/+$/, "");
  }

  private build(): void {
    const { config, names, nc, log } = this.o;
    const version = this.o.version ?? "1.0.0";
    const handler = (agent: AgentConfig, card: AgentCard, skills: AgentConfig["skills"]) =>
      new AgentA2aHandler({
        nc,
        names,
        agentId: agent.id,
        card,
        skills,
        requestTimeoutMs: this.o.requestTimeoutMs ?? 10_000,
        blockingTimeoutMs: this.o.settings.blockingTimeoutSeconds * 1000,
        pollMs: 2_000,
        log: log.child({ component: "gateway", agentId: agent.id }),
      });
    for (const agent of config.agents) {
      const card = agentCard(agent, names, this.baseUrl, version);
      const target = { handler: handler(agent, card, agent.skills), card, agentId: agent.id };
      this.targets.set(agent.id, target);
      this.jsonRpc.set(agent.id, new JsonRpcTransportHandler(target.handler));
    }
    const orchestrator = config.agents.find((a) => a.layer === "orchestration") ?? config.agents[0];
    if (!orchestrator) throw new FleetError("CONFIG_INVALID", "the fleet has no agents to serve");
    const card = fleetCard(config, orchestrator, names, this.baseUrl, version);
    // the fleet's door is the orchestrator, asked for any skill of the fleet (it assigns the work by skill)
    this.fleet = { card, handler: handler(orchestrator, card, config.agents.flatMap((a) => a.skills)), agentId: orchestrator.id };
    this.jsonRpc.set("", new JsonRpcTransportHandler(this.fleet.handler));
    this.fleetCardJson = cardJson(card);
  }

  private async listen(): Promise<void> {
    const { settings, log } = this.o;
    const app = Fastify({ loggerInstance: log.child({ component: "gateway" }, { level: "warn" }), bodyLimit: settings.maxBodyBytes });
    this.app = app;
    app.removeAllContentTypeParsers();
    // the body is kept as text: the bindings parse it themselves, so a malformed one gets the spec's parse error
    app.addContentTypeParser(["application/json", "application/a2a+json"], { parseAs: "string" }, (_req, body, done) => done(null, body));
    app.setErrorHandler((err: { code?: string; statusCode?: number; message: string }, req, reply) => {
      const binding = bindingOf(req);
      if (err.code === "FST_ERR_CTP_BODY_TOO_LARGE") return refuse(reply, binding, new FleetError("MESSAGE_TOO_LARGE", `the body exceeds gateway.maxBodyBytes (${settings.maxBodyBytes} bytes)`));
      if (err.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE") return refuse(reply, binding, new ContentTypeNotSupportedError(`Content-Type ${req.headers["content-type"] ?? "(none)"} is not supported: send application/json`), 200);
      if ((err.statusCode ?? 500) < 500) return refuse(reply, binding, new RequestMalformedError(err.message), 200);
      log.error({ err, url: req.url }, "gateway request failed");
      return refuse(reply, binding, new FleetError("INTERNAL", "an unexpected failure in the gateway; its log has the cause"));
    });

    // every A2A call is checked before its body is read; a refused one never gets further
    app.addHook("onRequest", async (req, reply) => {
      // the cards name the address, known once listening: the instant before they are built, nothing is served
      if (this.fleetCardJson === undefined) return reply.code(503).header("retry-after", "1").send();
      if (!req.url.includes("/a2a/")) return;
      const admitted = this.admit(req, reply, bindingOf(req));
      if (!admitted) return reply;
      this.admitted.set(req, admitted);
    });
    app.get(CARD_PATH, async (_req, reply) => reply.type("application/json").header("cache-control", "public, max-age=300").send(this.fleetCardJson));
    app.get(`/agents/:agent${CARD_PATH}`, async (req, reply) => {
      const target = this.targets.get(AgentParams.safeParse(req.params).data?.agent ?? "");
      if (!target) return reply.code(404).type("application/json").send({ error: "no such agent" });
      return reply.type("application/json").header("cache-control", "public, max-age=300").send(cardJson(target.card));
    });
    for (const prefix of ["", "/agents/:agent"]) {
      app.post(`${prefix}/a2a/jsonrpc`, async (req, reply) => this.jsonRpcCall(req, reply));
      app.route({ method: ["GET", "POST"], url: `${prefix}/a2a/rest/*`, handler: async (req, reply) => this.restCall(req, reply) });
    }
    await app.listen({ host: settings.host, port: settings.port });
    const address = app.server.address();
    if (!address || typeof address === "string") throw new Error("the gateway has no TCP address");
    this.address = address;
    this.build();
    this.unannounce = announceGateway(this.o.serveNc ?? this.o.nc, { url: this.url, card: `${this.baseUrl}${CARD_PATH}`, peers: settings.peers.map((p) => p.id), tokens: this.peers.tokens }, this.o.version ?? "1.0.0");
    log.info({ url: this.url, card: `${this.baseUrl}${CARD_PATH}`, peers: settings.peers.map((p) => p.id) }, "a2a gateway listening");
  }

  /**
   * Everything checked before a request may reach an agent: the reply already says why when undefined comes back. Runs
   * when the request arrives, before its body is read.
   */
  private admit(req: FastifyRequest, reply: FastifyReply, binding: Binding): Admitted | undefined {
    const peer: Peer | undefined = this.peers.authenticate(req.headers.authorization);
    if (!peer) {
      this.o.log.warn({ ip: req.ip, url: req.url }, "a2a request refused: no valid bearer token");
      void refuse(reply, binding, new FleetError("UNAUTHENTICATED", "send Authorization: Bearer <token>, the token this fleet's operator gave you"));
      return undefined;
    }
    const named = (req.params as { agent?: string }).agent;
    const target = named === undefined ? this.fleet : this.targets.get(named);
    if (!target || !mayCall(peer, target.agentId)) {
      this.o.log.warn({ peer: peer.id, agent: named ?? target?.agentId }, "a2a request refused: agent not granted");
      void refuse(reply, binding, new FleetError("PERMISSION_DENIED", `peer ${peer.id} may not call ${named === undefined ? "the fleet" : `agent "${named}"`}`));
      return undefined;
    }
    const header = req.headers[A2A_VERSION_HEADER.toLowerCase()];
    const requestedVersion = (Array.isArray(header) ? header[0] : header) || undefined;
    try {
      // absent means 0.3 (the spec's rule, and the SDK's): only versions the card lists are served
      validateVersion(requestedVersion ?? "0.3", target.card, binding === "jsonrpc" ? "JSONRPC" : "HTTP+JSON");
      this.peers.take(peer);
    } catch (err) {
      // a refused version is the protocol's own error (HTTP 200 on JSON-RPC), a rate limit the HTTP layer's (429)
      if (err instanceof FleetError) void refuse(reply, binding, err);
      else void refuse(reply, binding, err instanceof A2AError ? err : new FleetError("INTERNAL", String(err)), 200);
      return undefined;
    }
    const context = new PeerCallContext(peer, { requestedVersion: requestedVersion ?? "0.3" });
    // a caller that goes away stops what waits for it (a stream's or a blocking send's subscription to the agent's events)
    this.active.add(context);
    reply.raw.once("close", () => {
      this.active.delete(context);
      context.abort.abort();
    });
    return { target, context };
  }

  private async jsonRpcCall(req: FastifyRequest, reply: FastifyReply) {
    const admitted = this.admitted.get(req);
    if (!admitted) throw new FleetError("INTERNAL", "an A2A call reached its handler unchecked");
    let body: unknown;
    try {
      body = JSON.parse(typeof req.body === "string" ? req.body : "");
    } catch {
      return reply.type("application/json").send({ jsonrpc: "2.0", id: null, error: { code: -32700, message: "the body is not valid JSON" } });
    }
    const envelope = JsonRpcEnvelope.safeParse(body);
    const id = envelope.success ? (envelope.data.id ?? null) : null;
    const transport = this.jsonRpc.get((req.params as { agent?: string }).agent ?? "")!;
    const out = await transport.handle(envelope.success ? envelope.data : {}, admitted.context);
    if (!isAsyncGenerator(out)) return reply.type("application/json").send(out);
    await streamSse(reply, out, { event: (e) => e, error: (err) => jsonRpcError(err, id), failed: (err) => void reply.type("application/json").send(jsonRpcError(err, id)) }, this.o.log);
    return reply;
  }

  private async restCall(req: FastifyRequest, reply: FastifyReply) {
    const admitted = this.admitted.get(req);
    if (!admitted) throw new FleetError("INTERNAL", "an A2A call reached its handler unchecked");
    let body: unknown = undefined;
    if (typeof req.body === "string" && req.body !== "") {
      try {
        body = JSON.parse(req.body);
      } catch {
        return refuse(reply, "rest", new RequestMalformedError("the body is not valid JSON"));
      }
    }
    const path = "/" + ((req.params as { "*"?: string })["*"] ?? "");
    return serveRest(req.method, path, body, req.query, admitted.target.handler, admitted.context, reply, this.o.log);
  }

  /** Stops taking calls; streams and blocking sends under way end now (a stream's caller can subscribe again elsewhere). */
  async stop(): Promise<void> {
    this.unannounce?.();
    this.unannounce = undefined;
    const closing = this.app?.close();
    for (const context of this.active) context.abort.abort();
    await closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

function bindingOf(req: FastifyRequest): Binding {
  return req.url.includes("/a2a/rest") ? "rest" : "jsonrpc";
}

function isAsyncGenerator(value: unknown): value is AsyncGenerator<unknown, void, undefined> {
  return typeof value === "object" && value !== null && Symbol.asyncIterator in value;
}

