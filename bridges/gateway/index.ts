export { AgentA2aHandler, ownerOf, PEER_METADATA_KEY, PeerCallContext, type AgentHandlerOptions } from "./agent-a2a-handler.js";
export { agentCard, bindingPaths, CARD_PATH, fleetCard } from "./agent-cards.js";
export { checkPeerTokens, GatewayPeers, type Peer } from "./gateway-peers.js";
export { Gateway, type GatewayOptions } from "./gateway-server.js";
export { announceGateway, GATEWAY_SERVICE, type GatewayPresenceInfo } from "./gateway-presence.js";
