import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import { z } from "zod";
import { peerSkillRisk, peerSkillTimeoutSeconds, type FleetConfig, type PeerConfig } from "../../config/index.js";
import { FleetError, type RiskLevel } from "../../protocol/index.js";
import { defineTool, type ToolDefinition } from "../tool.js";
import { PeerClient, type PeerAnswer } from "./peer-client.js";
import { askWithRetries } from "./peer-retry.js";

/** What an agent sends a peer's skill: the request in words, and structured input when the skill takes some. */
export const PeerToolInput = z.strictObject({
  text: z.string().min(1).max(20_000),
  data: z.unknown().optional(),
});

/** What the agent gets back (and the audit trail records): the peer's artifacts, its task, what it cost and took. */
export const PeerToolOutput = z.object({
  peer: z.string(),
  skill: z.string(),
  taskId: z.string().optional(),
  text: z.string(),
  artifacts: z.array(z.unknown()),
  costUsd: z.number().nonnegative().optional(),
  latencyMs: z.number().nonnegative(),
  attempts: z.number().int().positive(),
});

/** A call's answer as the tool `<peer>.<skill>` returns it and the audit trail keeps it (Atlas's delegations too). */
export function peerToolOutput(answer: PeerAnswer & { attempts: number }): z.infer<typeof PeerToolOutput> {
  return { peer: answer.peer, skill: answer.skill, ...(answer.taskId ? { taskId: answer.taskId } : {}), text: answer.text, artifacts: answer.artifacts, ...(answer.costUsd !== undefined ? { costUsd: answer.costUsd } : {}), latencyMs: answer.latencyMs, attempts: answer.attempts };
}

/** Every granted skill's tool name and risk, from config alone: what the broker's grants and the agents' checks use. */
export function peerToolRisks(config: FleetConfig): Record<string, RiskLevel> {
  const out: Record<string, RiskLevel> = {};
  for (const [name, peer] of Object.entries(config.peers)) {
    for (const skill of Object.keys(peer.skills)) out[`${name}.${skill}`] = peerSkillRisk(peer, skill) ?? peer.risk;
  }
  return out;
}

/** a peer tool runs this long past its call's own timeout on the tool host, so the call ends with its own PEER_TIMEOUT */
const PEER_TOOL_MARGIN_MS = 5_000;

/**
 * How long a call of the tool `<peer>.<skill>` may run (the skill's or the peer's `timeoutSeconds`, plus a margin), or
 * undefined for a tool that is no granted peer skill: the tool host's timeout for it, and how long its callers wait.
 */
export function peerToolTimeoutMs(config: FleetConfig, tool: string): number | undefined {
  const dot = tool.indexOf(".");
  const peer = dot > 0 ? config.peers[tool.slice(0, dot)] : undefined;
  const skill = tool.slice(dot + 1);
  if (!peer || !(skill in peer.skills)) return undefined;
  return peerSkillTimeoutSeconds(peer, skill) * 1000 + PEER_TOOL_MARGIN_MS;
}

/** The refusal of `<peer>.<skill>` for a configured peer whose skill config does not grant (the tool gate's answer). */
export function ungrantedPeerSkill(config: FleetConfig, tool: string): FleetError | undefined {
  const dot = tool.indexOf(".");
  const peer = dot > 0 ? config.peers[tool.slice(0, dot)] : undefined;
  if (!peer || tool.slice(dot + 1) in peer.skills) return undefined;
  return new FleetError("PEER_SKILL_NOT_GRANTED", `${tool}: peer ${tool.slice(0, dot)} is granted only ${Object.keys(peer.skills).join(", ")} (peers.${tool.slice(0, dot)}.skills)`);
}

export interface PeerClients {
  get(peer: string): PeerClient | undefined;
}

/**
 * One client per configured peer, its token read from `env` (the process's environment, handed in where it is wired;
 * nothing here reads process.env). A peer whose token variable is unset still gets a client: its calls fail
 * PEER_REFUSED, and the log says which variable is missing.
 */
export function peerClients(config: FleetConfig, env: Readonly<Record<string, string | undefined>>, log: Logger, extra: { now?: () => number; sleep?: (ms: number, signal?: AbortSignal) => Promise<void> } = {}): PeerClients {
  const clients = new Map<string, PeerClient>();
  for (const [name, peer] of Object.entries(config.peers)) {
    const token = peer.tokenEnv ? env[peer.tokenEnv] : undefined;
    if (peer.tokenEnv && token === undefined) log.warn({ peer: name, variable: peer.tokenEnv }, "the variable holding a peer's token is not set; its calls will be refused");
    clients.set(name, new PeerClient({ name, config: peer, token, log: log.child({ component: "peer", peer: name }), ...extra }));
  }
  return { get: (peer) => clients.get(peer) };
}

/**
 * Each granted skill of each peer as the fleet tool `<peer>.<skill>`, served by the tool hosts like any tool: the
 * allow lists, its configured risk (PROPOSE by default: a proposal judged by Sentinel), the audit trail with the call's
 * duration and the cost the peer reports, one effect per idempotency key (the key is the A2A messageId, so the peer can
 * deduplicate too). Down or slow peers are retried within the call (peers.<name>.retry), then the call fails with the
 * retryable PEER_UNAVAILABLE or PEER_TIMEOUT and the task that made it comes back later.
 *
 * A PROPOSE skill's rollback asks the peer to cancel the task the call started; a peer that already finished it refuses
 * (PEER_REFUSED), and the rollback is recorded as failed: another company's finished work cannot be undone from here.
 */
export function peerTools(config: FleetConfig, clients: PeerClients): ToolDefinition[] {
  const tools: ToolDefinition[] = [];
  for (const [name, peer] of Object.entries(config.peers)) {
    for (const [skill, granted] of Object.entries(peer.skills)) tools.push(peerTool(name, peer, skill, granted.description, clients, peerToolTimeoutMs(config, `${name}.${skill}`)));
  }
  return tools;
}

function peerTool(name: string, peer: PeerConfig, skill: string, description: string | undefined, clients: PeerClients, timeoutMs: number | undefined): ToolDefinition {
  const risk = peerSkillRisk(peer, skill) ?? peer.risk;
  const client = () => {
    const found = clients.get(name);
    if (!found) throw new FleetError("INTERNAL", `no client for peer ${name}`);
    return found;
  };
  return defineTool({
    name: `${name}.${skill}`,
    description: description ?? `Ask ${name} (another company's A2A agent) to do its skill "${peer.skills[skill]?.id ?? skill}"; returns its artifacts.`,
    risk,
    input: PeerToolInput,
    source: `peer:${name}`,
    // a peer's task may legitimately take minutes: the host's 30 s would cut it
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    costUsd: 0,
    costOf: (output: unknown) => PeerToolOutput.safeParse(output).data?.costUsd,
    handler: async (input, ctx) => {
      const answer = await askWithRetries(client(), skill, { text: input.text, ...(input.data !== undefined ? { data: input.data } : {}) }, {
        messageId: ctx.idempotencyKey ?? randomUUID(),
        signal: ctx.signal,
        retry: peer.retry,
        log: ctx.log,
      });
      return peerToolOutput(answer);
    },
    ...(risk === "PROPOSE"
      ? {
          rollback: async (_input: unknown, output: unknown) => {
            const taskId = PeerToolOutput.safeParse(output).data?.taskId;
            if (!taskId) throw new FleetError("PEER_REFUSED", `${name}.${skill}: the peer answered without a task, there is nothing to cancel`);
            await client().cancel(taskId);
            return { canceled: taskId };
          },
        }
      : {}),
  });
}
