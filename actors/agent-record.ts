import { hostname } from "node:os";
import type { KV } from "@nats-io/kv";
import { AgentRecord, decode, NATS_BINDING_URI, type AgentCard, type CodecName, type FleetNames } from "../protocol/index.js";
import type { HostedAgent } from "./behaviour.js";

/** The AgentCard an agent publishes in its record: A2A's description of it, naming our NATS binding. */
export function agentCard(agent: HostedAgent, names: FleetNames): AgentCard {
  return {
    name: agent.name,
    description: agent.role,
    version: "0.1.0",
    supportedInterfaces: [{ url: `nats:${names.agentOperations(agent.id)}`, protocolBinding: NATS_BINDING_URI }],
    capabilities: { streaming: true, pushNotifications: false },
    defaultInputModes: ["text/plain", "application/json"],
    defaultOutputModes: ["text/plain", "application/json"],
    skills: agent.skills.map((s) => ({ id: s.id, name: s.name, description: s.description, tags: [...s.tags], ...(s.examples ? { examples: [...s.examples] } : {}) })),
  };
}

/** The record an earlier run of this agent left in KV `agents`, if it is readable. */
const HOST = hostname(); // read once: a record is written every heartbeat

/** What `fleet status` reads for an agent (KV `agents`), from the host's live state; pid and host are this process's. */
export function buildAgentRecord(o: {
  agent: HostedAgent & { defaultTier: string };
  card: AgentCard;
  state: string;
  currentTaskId: string | undefined;
  runId: string;
  restarts: number;
  startedAt: number;
  heartbeatAt: number;
  heartbeatMs: number;
  completed: number;
  failed: number;
  snapshot: unknown;
  breaker: AgentRecord["breaker"];
  breakerSnapshot: unknown;
  dedupSuppressed: number;
}): AgentRecord {
  return {
    agentId: o.agent.id,
    card: o.card,
    state: o.state,
    ...(o.currentTaskId ? { currentTaskId: o.currentTaskId } : {}),
    tier: o.agent.defaultTier,
    pid: process.pid,
    host: HOST,
    runId: o.runId,
    restarts: o.restarts,
    startedAt: o.startedAt,
    heartbeatAt: o.heartbeatAt,
    heartbeatMs: o.heartbeatMs,
    tasksCompleted: o.completed,
    tasksFailed: o.failed,
    snapshot: o.snapshot,
    breaker: o.breaker,
    dedupSuppressed: o.dedupSuppressed,
    breakerSnapshot: o.breakerSnapshot,
  };
}

export async function readAgentRecord(kv: KV, agentId: string, codec: CodecName): Promise<AgentRecord | undefined> {
  const entry = await kv.get(agentId);
  if (!entry || entry.operation !== "PUT") return undefined;
  const decoded = decode(AgentRecord, entry.value, { codec });
  return decoded.ok ? decoded.value : undefined;
}

/** A snapshot worth restoring: one persisted while the actor ran (a stopped one would restore as a dead actor). */
export function isRunningSnapshot(snapshot: unknown): boolean {
  return typeof snapshot === "object" && snapshot !== null && (snapshot as { status?: unknown }).status === "active";
}
