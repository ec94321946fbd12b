import { z } from "zod";
import { RiskLevel } from "../protocol/index.js";
import { strict } from "./strict-object.js";

/*
 * Peers (`peers:` in the fleet config): other companies' A2A agents this fleet may call. Each skill granted here becomes
 * the governed tool `<peer>.<skill>` (served by the tool hosts, behind allow lists, risk, proposals, the audit trail) and
 * a delegation target for Atlas's plan (`peer:<peer>` with that skill). The bearer token never sits in the config: `tokenEnv`
 * names the variable holding it, read where the tool host or Atlas is wired.
 */

/** A peer's name is the first token of its tools' names and subjects, like an MCP server's. */
export const PeerName = z.string().regex(/^[a-z][a-z0-9_]{0,31}$/, "must be 1-32 lowercase letters, digits or '_', starting with a letter (the first token of its tools' names)");
/** A granted skill as the fleet names it: the second token of the tool's name. */
export const PeerSkillName = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, "must be 1-64 lowercase letters, digits, '_' or '-' (one subject token); name the peer's own skill id in `id` when it differs");
/** the longest a call of a peer's skill may take: past an hour, a delegation is not a call but a project */
export const PEER_MAX_TIMEOUT_SECONDS = 3600;
const EnvName = z.string().regex(/^[A-Z_][A-Z0-9_]*$/, "must be the NAME of an environment variable, e.g. ACME_A2A_TOKEN");

export const PeerSkillConfig = strict({
  /** the skill's id on the peer's AgentCard, when it is not this key */
  id: z.string().min(1).max(128).optional(),
  /** this skill's risk; the peer's `risk` when omitted */
  risk: RiskLevel.optional(),
  /** what the fleet's models and Atlas are told it does; the peer card's description when omitted */
  description: z.string().min(1).max(1000).optional(),
  /** this skill's own `timeoutSeconds` (a skill whose task takes longer than the peer's others); the peer's when omitted */
  timeoutSeconds: z.number().positive().max(PEER_MAX_TIMEOUT_SECONDS).optional(),
});
export type PeerSkillConfig = z.infer<typeof PeerSkillConfig>;

export const PeerConfig = strict({
  /** the peer's AgentCard (`https://…/.well-known/agent-card.json`); its interfaces say where to send */
  card: z.url({ protocol: /^https?$/, error: "must be the http(s) URL of the peer's AgentCard" }),
  /** the NAME of the variable holding the bearer token the peer gave us; no Authorization header when omitted */
  tokenEnv: EnvName.optional(),
  /** the skills we may ask for, by the name the fleet uses (`<peer>.<skill>`); nothing else of the peer is reachable */
  skills: z.record(PeerSkillName, PeerSkillConfig.nullable().transform((s) => s ?? {})).refine((s) => Object.keys(s).length > 0, "grant at least one skill"),
  /** the risk of every granted skill that names none: PROPOSE (runs after Sentinel) unless the operator says otherwise */
  risk: RiskLevel.default("PROPOSE"),
  /**
   * one call (send, then following its task) that has not finished in this time is PEER_TIMEOUT (retryable); it is also
   * how long a tool host lets the governed tool `<peer>.<skill>` run (other tools get the host's 30 s)
   */
  timeoutSeconds: z.number().positive().max(PEER_MAX_TIMEOUT_SECONDS).default(120),
  /** the longest wait between two polls (GetTask) of a running task of a peer that does not stream (or whose stream broke) */
  pollSeconds: z.number().positive().max(60).default(1),
  /** retries of a call that failed retryably (down, 5xx, timeout): the delays between attempts (the last repeats) */
  retry: strict({
    attempts: z.number().int().min(1).max(50).default(5),
    backoffSeconds: z.array(z.number().positive().max(3600)).min(1).default([1, 2, 5, 10, 30]),
  }).prefault({}),
});
export type PeerConfig = z.infer<typeof PeerConfig>;

export const PeersConfig = z.record(PeerName, PeerConfig).default({});
export type PeersConfig = z.infer<typeof PeersConfig>;

/** `peer:<name>`: how Atlas's plan names a peer as the one to do the work. */
export const PEER_ASSIGNEE_PREFIX = "peer:";

/** How long one call of a granted skill may take, in seconds: the skill's own timeout, else the peer's. */
export function peerSkillTimeoutSeconds(peer: PeerConfig, skill: string): number {
  return peer.skills[skill]?.timeoutSeconds ?? peer.timeoutSeconds;
}

/** The risk a granted skill runs at. */
export function peerSkillRisk(peer: PeerConfig, skill: string): RiskLevel | undefined {
  const granted = peer.skills[skill];
  return granted === undefined ? undefined : (granted.risk ?? peer.risk);
}
