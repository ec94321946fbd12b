export { PeerClient, type PeerAnswer, type PeerCallOptions, type PeerClientOptions, type PeerRequest } from "./peer-client.js";
export { peerArtifacts, peerCostUsd } from "./peer-parts.js";
export { askWithRetries, peerBackoffMs, type PeerRetryOptions } from "./peer-retry.js";
export { peerClients, peerToolOutput, peerToolRisks, peerTools, peerToolTimeoutMs, ungrantedPeerSkill, PeerToolInput, PeerToolOutput, type PeerClients } from "./peer-tools.js";
