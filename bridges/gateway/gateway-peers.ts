import { timingSafeEqual } from "node:crypto";
import type { AgentConfig, GatewayConfig, GatewayRateLimit } from "../../config/index.js";
import { FleetError, type Clock } from "../../protocol/index.js";

/*
 * Who may call the gateway and what for. Each peer's bearer token comes from the variable its config entry names (the
 * CLI reads it, as the loader never does); a token is compared in constant time against every peer's, so the time a
 * refusal takes says nothing about which peer came close. Grants are by agent and, optionally, by skill; each peer has
 * its own token bucket.
 */

export interface Peer {
  id: string;
  /** agent ids it may call */
  agents: ReadonlySet<string>;
  /** skill ids it may ask for; undefined: every skill of its agents */
  skills: ReadonlySet<string> | undefined;
}

interface Bucket {
  tokens: number;
  at: number;
}

const MIN_TOKEN_LENGTH = 16;

export class GatewayPeers {
  private readonly peers: { token: Buffer; peer: Peer; limit: GatewayRateLimit }[] = [];
  private readonly buckets = new Map<string, Bucket>();

  /** `tokens` maps each peer's token variable to its value (checked by checkPeerTokens). */
  constructor(
    config: GatewayConfig,
    agents: readonly Pick<AgentConfig, "id">[],
    tokens: Readonly<Record<string, string | undefined>>,
    private readonly clock: Clock,
  ) {
    checkPeerTokens(config, tokens);
    config.peers.forEach((p) => {
      const token = tokens[p.tokenEnv] ?? "";
      const granted = p.agents.includes("*") ? agents.map((a) => a.id) : p.agents;
      this.peers.push({ token: Buffer.from(token), peer: { id: p.id, agents: new Set(granted), skills: p.skills ? new Set(p.skills) : undefined }, limit: p.rateLimit ?? config.rateLimit });
    });
  }

  /** How many distinct bearer tokens it accepts (each peer has its own variable; two peers may share a value). */
  get tokens(): number {
    return new Set(this.peers.map((p) => p.token.toString("hex"))).size;
  }

  /** The peer an `Authorization: Bearer <token>` header proves, or undefined. */
  authenticate(authorization: string | undefined): Peer | undefined {
    const candidate = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "")?.[1];
    if (!candidate) return undefined;
    const given = Buffer.from(candidate);
    let found: Peer | undefined;
    // every peer is compared, so the time taken does not depend on which one matched
    for (const entry of this.peers) {
      const same = given.length === entry.token.length && timingSafeEqual(given, entry.token);
      if (same) found = entry.peer;
    }
    return found;
  }

  /** Takes one request from the peer's bucket; RATE_LIMITED with the wait until the next one otherwise. */
  take(peer: Peer): void {
    const entry = this.peers.find((p) => p.peer === peer);
    if (!entry) throw new FleetError("UNAUTHENTICATED", "unknown peer");
    const { requests, perSeconds } = entry.limit;
    const ratePerMs = requests / (perSeconds * 1000);
    const now = this.clock.now();
    const bucket = this.buckets.get(peer.id) ?? { tokens: requests, at: now };
    bucket.tokens = Math.min(requests, bucket.tokens + (now - bucket.at) * ratePerMs);
    bucket.at = now;
    this.buckets.set(peer.id, bucket);
    if (bucket.tokens < 1) {
      const retryAfterMs = Math.ceil((1 - bucket.tokens) / ratePerMs);
      throw new FleetError("RATE_LIMITED", `peer ${peer.id} is over its rate limit (${requests} requests per ${perSeconds} s)`, { retryAfterMs });
    }
    bucket.tokens -= 1;
  }
}

/** Whether a peer may call the agent at all. */
export function mayCall(peer: Peer, agentId: string): boolean {
  return peer.agents.has(agentId);
}

/**
 * Refuses a peer whose token variable is unset or too short, with the field's path: a gateway that silently let nobody
 * (or anybody) in would be worse than none. `fleet run gateway` calls it before connecting to NATS.
 */
export function checkPeerTokens(config: Pick<GatewayConfig, "peers">, tokens: Readonly<Record<string, string | undefined>>): void {
  const issues = config.peers.flatMap((p, i) => {
    const token = tokens[p.tokenEnv];
    if (token && token.length >= MIN_TOKEN_LENGTH) return [];
    return [{ path: `gateway.peers[${i}].tokenEnv`, message: `${p.tokenEnv} ${token ? `holds fewer than ${MIN_TOKEN_LENGTH} characters` : "is not set"}` }];
  });
  if (issues.length > 0) throw new FleetError("CONFIG_INVALID", issues.map((i) => `${i.path}: ${i.message}`).join("\n"), { details: issues });
}
