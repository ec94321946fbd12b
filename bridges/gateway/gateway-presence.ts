import { hostname } from "node:os";
import type { NatsConnection } from "@nats-io/nats-core";
import { registerDiscovery, type DiscoverableService } from "../../protocol/index.js";

/** The micro service name a running gateway answers discovery under; `fleet status` looks for it. */
export const GATEWAY_SERVICE = "fleet-gateway";

/** What a gateway tells discovery about itself (all strings: micro metadata is a string map). */
export interface GatewayPresenceInfo {
  /** where it listens */
  url: string;
  /** the fleet's AgentCard as peers are told to fetch it (publicUrl when set) */
  card: string;
  /** the peers it serves, by id */
  peers: readonly string[];
  /** how many bearer tokens it accepts (one per peer whose variable is set; the gateway refuses to start otherwise) */
  tokens: number;
}

/**
 * The gateway as NATS micro discovery sees it. It serves HTTP, not NATS requests, so it has no FleetService; it answers
 * `$SRV.PING|INFO|STATS` like every service does (on its serving twin's connection), with its address and its peers in
 * the metadata: `fleet status` learns of it the way it learns of the routers and tool hosts, from whoever answers, and a
 * gateway that stopped or died simply stops answering.
 */
export function announceGateway(nc: NatsConnection, info: GatewayPresenceInfo, version: string): () => void {
  const presence: DiscoverableService = {
    name: GATEWAY_SERVICE,
    id: `${GATEWAY_SERVICE}-${Math.random().toString(36).slice(2, 12)}`,
    version,
    description: "the A2A HTTP gateway: the fleet's agents for its peers",
    metadata: { host: hostname(), pid: String(process.pid), url: info.url, card: info.card, peers: info.peers.join(","), tokens: String(info.tokens) },
    started: new Date(),
    endpointStats: [],
  };
  return registerDiscovery(nc, presence);
}
