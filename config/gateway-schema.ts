import { z } from "zod";
import { strict } from "./strict-object.js";

/*
 * The A2A HTTP gateway: where `fleet run gateway` (and `fleet up` when enabled) serves the fleet's agents over A2A
 * v1.0's JSON-RPC and HTTP+JSON bindings, and who may call it. Each peer (another company's fleet, a partner's client)
 * has its own bearer token, named here by the NAME of the variable that holds it (the value never sits in the file), and
 * is granted agents and, optionally, only some of their skills. Loopback by default: a gateway is put on a network on
 * purpose, behind TLS termination.
 */

const EnvName = z.string().regex(/^[A-Z_][A-Z0-9_]*$/, "must be the NAME of an environment variable, e.g. GATEWAY_TOKEN_ACME");
const PeerId = z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, "must be 1-32 lowercase letters, digits or '-', starting with a letter");

/** A token bucket: `requests` per `perSeconds`, refilled evenly; a burst may use the whole bucket at once. */
export const GatewayRateLimit = strict({
  requests: z.number().int().positive(),
  perSeconds: z.number().positive(),
});
export type GatewayRateLimit = z.infer<typeof GatewayRateLimit>;

export const GatewayPeer = strict({
  /** who the peer is in logs and in the tasks it creates */
  id: PeerId,
  /** the NAME of the variable holding the peer's bearer token (at least 16 characters) */
  tokenEnv: EnvName,
  /** agent ids the peer may call, or ["*"] for every agent of the fleet */
  agents: z
    .array(z.string().min(1))
    .min(1)
    .refine((agents) => !agents.includes("*") || agents.length === 1, 'the wildcard "*" must be the only entry'),
  /** skill ids the peer may ask for (among its agents' skills); omitted: every skill of those agents */
  skills: z.array(z.string().min(1)).min(1).optional(),
  /** this peer's own rate limit instead of the gateway's */
  rateLimit: GatewayRateLimit.optional(),
});
export type GatewayPeer = z.infer<typeof GatewayPeer>;

export const GatewayConfig = strict({
  /** false: `fleet up` does not start it (`fleet run gateway` still does) */
  enabled: z.boolean().default(true),
  host: z.string().min(1).default("127.0.0.1"),
  /** 0 picks a free port (the log line at start says which) */
  port: z.number().int().min(0).max(65535).default(8420),
  /** the base URL the AgentCards name (behind a proxy or TLS terminator); default http://<host>:<port> */
  publicUrl: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).optional(),
  /** the largest request body taken, in bytes; a larger one is refused before it is read */
  maxBodyBytes: z.number().int().min(1024).max(16 * 1024 * 1024).default(256 * 1024),
  /** every peer's rate limit unless it has its own */
  rateLimit: GatewayRateLimit.prefault({ requests: 120, perSeconds: 60 }),
  /** how long a blocking SendMessage (returnImmediately false) waits for a terminal state before answering with the task as it is */
  blockingTimeoutSeconds: z.number().positive().max(3600).default(60),
  peers: z.array(GatewayPeer).default([]),
});
export type GatewayConfig = z.infer<typeof GatewayConfig>;

/** Read tolerantly: the rules below run even while other fields are broken (each field reports its own errors). */
const View = z
  .object({
    agents: z.array(z.object({ id: z.string().optional().catch(undefined), skills: z.array(z.object({ id: z.string().optional().catch(undefined) }).catch({})).optional().catch(undefined) }).catch({})).catch([]),
    gateway: z
      .object({
        peers: z.array(z.object({ id: z.unknown(), tokenEnv: z.unknown(), agents: z.array(z.unknown()).optional().catch(undefined), skills: z.array(z.unknown()).optional().catch(undefined) }).catch({ id: undefined, tokenEnv: undefined })).catch([]),
      })
      .optional()
      .catch(undefined),
  })
  .catch({ agents: [], gateway: undefined });

/** A peer names agents of this fleet and skills those agents have; peer ids and token variables are each used once. */
export function gatewayCrossRules(value: unknown, report: (path: PropertyKey[], message: string) => void): void {
  const { agents, gateway } = View.parse(value);
  if (!gateway) return;
  const ids = agents.map((a) => a.id).filter((id): id is string => id !== undefined);
  const seenIds = new Map<unknown, number>();
  const seenEnv = new Map<unknown, number>();
  gateway.peers.forEach((peer, i) => {
    const at = (...rest: PropertyKey[]) => ["gateway", "peers", i, ...rest];
    if (typeof peer.id === "string" && seenIds.has(peer.id)) report(at("id"), `duplicate peer id "${peer.id}" (also gateway.peers[${seenIds.get(peer.id)}])`);
    seenIds.set(peer.id, i);
    // one token per peer: two peers sharing a variable could not be told apart
    if (typeof peer.tokenEnv === "string" && seenEnv.has(peer.tokenEnv)) report(at("tokenEnv"), `${peer.tokenEnv} is also gateway.peers[${seenEnv.get(peer.tokenEnv)}]'s token: each peer needs its own`);
    seenEnv.set(peer.tokenEnv, i);
    const granted = peer.agents?.includes("*") ? ids : (peer.agents ?? []).filter((a): a is string => typeof a === "string");
    peer.agents?.forEach((agent, k) => {
      if (agent !== "*" && typeof agent === "string" && !ids.includes(agent)) report(at("agents", k), `no agent "${agent}" in this fleet (agents: ${ids.join(", ")})`);
    });
    const skills = new Set(agents.filter((a) => a.id !== undefined && granted.includes(a.id)).flatMap((a) => (a.skills ?? []).map((s) => s.id)));
    peer.skills?.forEach((skill, k) => {
      if (typeof skill === "string" && !skills.has(skill)) report(at("skills", k), `no skill "${skill}" among the peer's agents (their skills: ${[...skills].join(", ") || "none"})`);
    });
  });
}
