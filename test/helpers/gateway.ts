import type { NatsConnection } from "@nats-io/nats-core";
import { ClientFactory, ClientFactoryOptions, JsonRpcTransportFactory, RestTransportFactory, type Client } from "@a2a-js/sdk/client";
import { pino } from "pino";
import { Gateway } from "../../bridges/index.js";
import { GatewayConfig, loadFleetConfig, type FleetConfig } from "../../config/index.js";
import { connectNats, FleetNames, systemClock } from "../../protocol/index.js";

/** A peer as a test describes it: its token given directly (the gateway sees it as the value of `<ID>_TOKEN`). */
export interface TestPeer {
  id: string;
  token: string;
  agents: string[];
  skills?: string[];
  rateLimit?: { requests: number; perSeconds: number };
}

export interface TestGateway {
  gateway: Gateway;
  /** where it listens, e.g. http://127.0.0.1:40123 */
  url: string;
  nc: NatsConnection;
  stop(): Promise<void>;
}

function envName(peerId: string): string {
  return `${peerId.toUpperCase().replace(/-/g, "_")}_TOKEN`;
}

/**
 * Starts an A2A gateway in this process for the fleet whose config is at `configFile` (or given), on a free loopback
 * port, connected to `natsUrl` (with `nkeySeedFile` on a secured server). Stop it in an after-hook.
 */
export async function startGateway(options: {
  natsUrl: string;
  configFile?: string;
  config?: FleetConfig;
  peers: TestPeer[];
  prefix?: string;
  nkeySeedFile?: string;
  settings?: Partial<GatewayConfig>;
}): Promise<TestGateway> {
  const config = options.config ?? loadFleetConfig(options.configFile ?? "");
  const settings = GatewayConfig.parse({
    port: 0,
    ...options.settings,
    peers: options.peers.map((p) => ({ id: p.id, tokenEnv: envName(p.id), agents: p.agents, ...(p.skills ? { skills: p.skills } : {}), ...(p.rateLimit ? { rateLimit: p.rateLimit } : {}) })),
  });
  const tokens = Object.fromEntries(options.peers.map((p) => [envName(p.id), p.token]));
  const nc = await connectNats({ servers: options.natsUrl, name: "test-gateway", ...(options.nkeySeedFile ? { nkeySeedFile: options.nkeySeedFile } : {}) });
  const gateway = await Gateway.start({
    nc,
    names: new FleetNames(options.prefix ?? config.fleet.prefix),
    config,
    settings,
    tokens,
    clock: systemClock,
    log: pino({ level: "silent" }),
  });
  return {
    gateway,
    url: gateway.url,
    nc,
    stop: async () => {
      await gateway.stop();
      await nc.close();
    },
  };
}

/** A fetch that sends `Authorization: Bearer <token>` with every request. */
export function bearerFetch(token: string): typeof fetch {
  return (input, init) => {
    const headers = new Headers(init?.headers);
    headers.set("authorization", `Bearer ${token}`);
    return fetch(input, { ...init, headers });
  };
}

/** An @a2a-js/sdk client for the agent whose card is at `<baseUrl>/.well-known/agent-card.json`, over one binding. */
export function a2aClient(baseUrl: string, token: string, binding: "JSONRPC" | "HTTP+JSON"): Promise<Client> {
  const fetchImpl = bearerFetch(token);
  const factory = new ClientFactory(
    ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
      transports: [new JsonRpcTransportFactory({ fetchImpl }), new RestTransportFactory({ fetchImpl })],
      preferredTransports: [binding],
    }),
  );
  // the card path is resolved against the base URL: without the trailing slash, its last segment would be replaced
  return factory.createFromUrl(baseUrl.endsWith("/") ? baseUrl : `${baseUrl}/`);
}
