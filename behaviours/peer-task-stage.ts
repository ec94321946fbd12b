import { randomUUID } from "node:crypto";
import { z } from "zod";
import type { TaskStore } from "../actors/index.js";
import { peerSkillRisk, type FleetConfig } from "../config/index.js";
import { askWithRetries, peerToolOutput, type PeerClients } from "../governance/index.js";
import { FleetError, type DelegationReport, type Message } from "../protocol/index.js";
import type { BehaviourStage } from "./stage.js";

/** A task that delegates to a peer names it in a data part: `{ peerTask: { peer, skill, data? } }` (Atlas's plan writes it). */
export const PeerTaskRequest = z.object({
  peerTask: z.strictObject({ peer: z.string().min(1), skill: z.string().min(1), data: z.unknown().optional() }),
});
export type PeerTaskRequest = z.infer<typeof PeerTaskRequest>["peerTask"];

/** What the task records of its delegation while it runs and after (`metadata.peer`): `fleet tasks --json` shows it. */
export interface PeerTaskRecord {
  peer: string;
  skill: string;
  /** the peer's task, once it exists: a retry (or this process restarted) resumes it instead of sending again */
  taskId?: string | undefined;
  /** the last failed attempt, while the task waits to try again */
  waiting?: { attempt: number; code: string; reason: string; retryAt: number } | undefined;
  attempts?: number | undefined;
  latencyMs?: number | undefined;
  costUsd?: number | undefined;
}

export function peerTaskOf(message: Message | undefined): PeerTaskRequest | undefined {
  for (const part of message?.parts ?? []) {
    if ("data" in part) {
      const parsed = PeerTaskRequest.safeParse(part.data);
      if (parsed.success) return parsed.data.peerTask;
    }
  }
  return undefined;
}

export interface PeerTaskStageOptions {
  self: string;
  config: FleetConfig;
  clients: PeerClients;
  store: TaskStore;
  now: () => number;
  /** injected so the backoff runs on a simulated clock in tests */
  sleep?: ((ms: number, signal?: AbortSignal) => Promise<void>) | undefined;
  /** reports the ended delegation to the audit trail (AgentTools.reportDelegation); false when it was not recorded */
  audit?: ((report: DelegationReport) => Promise<boolean>) | undefined;
}

/**
 * Atlas's delegation to another company's agent: a task naming `{ peerTask: { peer, skill } }` is sent to the peer's skill
 * through the A2A client (the message's text is the request, its messageId the task's id), the peer's task polled until
 * it ends, and its artifacts become the task's. A peer that is down or slow is retried with the peer's backoff while the
 * task stays WORKING, each wait written to the task's `metadata.peer.waiting`; after the last attempt the task fails with
 * the typed error (PEER_UNAVAILABLE, PEER_TIMEOUT) as its reason. A skill config does not grant fails the task at once
 * (PEER_SKILL_NOT_GRANTED), whoever sent it: the plan check refuses such an assignment before it becomes a task.
 * A delegation that ended (completed or failed, not handed back by a stopping host) is reported to the audit trail as a
 * call of the tool `<peer>.<skill>` in Atlas's name, with the input and output that tool's own record has: the trail and
 * the dashboard count a delegation's spend and latency with the agent and the peer like any call of the peer's skill.
 */
export function peerTaskStage(o: PeerTaskStageOptions): BehaviourStage {
  return {
    name: "peer-task",
    async act(input, ctx, next) {
      const item = input.plan.item;
      const request = peerTaskOf(item?.message);
      if (!request || !item) return next(input, ctx);
      const peer = o.config.peers[request.peer];
      const risk = peer ? peerSkillRisk(peer, request.skill) : undefined;
      const client = o.clients.get(request.peer);
      if (!peer || risk === undefined || !client) {
        return { ok: false, reason: `PEER_SKILL_NOT_GRANTED: peer "${request.peer}" is not granted skill "${request.skill}" in this fleet's config` };
      }
      if (risk === "BLOCK" || risk === "CONFIRM") return { ok: false, reason: `${risk === "BLOCK" ? "TOOL_BLOCKED" : "PROPOSAL_REQUIRED"}: ${request.peer}.${request.skill} is ${risk}; it is not delegated` };

      const record = (patch: Partial<PeerTaskRecord>) =>
        o.store
          .update(o.self, item.taskId, (task) => ({ ...task, metadata: { ...task.metadata, peer: { ...(isRecord(task.metadata?.["peer"]) ? task.metadata["peer"] : {}), peer: request.peer, skill: request.skill, ...patch } } }))
          .catch((err: unknown) => ctx.log.warn({ err }, "peer delegation not recorded on the task"));
      const stored = await o.store.get(o.self, item.taskId).catch(() => undefined);
      const before = isRecord(stored?.metadata?.["peer"]) ? stored.metadata["peer"] : undefined;
      const resumeTaskId = typeof before?.["taskId"] === "string" ? before["taskId"] : undefined;
      const text = item.message.parts.flatMap((p) => ("text" in p ? [p.text] : [])).join("\n");
      const asked = { text, ...(request.data !== undefined ? { data: request.data } : {}) };
      const startedAt = o.now();
      const audit = async (outcome: Pick<DelegationReport, "ok" | "output" | "error" | "costUsd">) => {
        if (!o.audit) return;
        const report = { tool: `${request.peer}.${request.skill}`, input: asked, durationMs: Math.max(0, o.now() - startedAt), at: startedAt, taskId: item.taskId, ...outcome };
        if (!(await o.audit(report))) ctx.log.warn({ peer: request.peer, skill: request.skill }, "peer delegation not recorded in the audit trail");
      };
      try {
        const answer = await askWithRetries(client, request.skill, asked, {
          messageId: item.taskId,
          signal: ctx.signal,
          resumeTaskId,
          retry: peer.retry,
          log: ctx.log,
          sleep: o.sleep,
          onTaskId: async (taskId) => void (await record({ taskId })),
          onRetry: async (attempt, error, waitMs) => void (await record({ waiting: { attempt, code: error.code, reason: error.message.slice(0, 500), retryAt: o.now() + waitMs } })),
        });
        await record({ taskId: answer.taskId, waiting: undefined, attempts: answer.attempts, latencyMs: answer.latencyMs, ...(answer.costUsd !== undefined ? { costUsd: answer.costUsd } : {}) });
        ctx.log.info({ peer: request.peer, skill: request.skill, peerTaskId: answer.taskId, attempts: answer.attempts, latencyMs: answer.latencyMs, costUsd: answer.costUsd }, "peer delegation completed");
        // the output the tool <peer>.<skill> returns (peer-tools.ts): the same record for a delegation as for a call
        await audit({ ok: true, output: peerToolOutput(answer), costUsd: answer.costUsd ?? 0 });
        const note = {
          artifactId: randomUUID(),
          name: "delegation",
          parts: [
            { text: `delegated to peer ${request.peer} (${request.skill}${answer.taskId ? `, its task ${answer.taskId}` : ""}): completed after ${answer.attempts} attempt(s) in ${answer.latencyMs} ms` },
            { data: { peer: request.peer, skill: request.skill, taskId: answer.taskId ?? null, attempts: answer.attempts, latencyMs: answer.latencyMs, costUsd: answer.costUsd ?? null } },
          ],
        };
        return { ok: true, artifacts: [note, ...answer.artifacts] };
      } catch (err) {
        const error = FleetError.from(err, "PEER_UNAVAILABLE");
        // the host is stopping: the task comes back to this or another process, which resumes the peer's task
        if (ctx.signal.aborted) return { ok: false, retry: true, reason: `${error.code}: ${error.message}` };
        ctx.log.warn({ peer: request.peer, skill: request.skill, code: error.code, reason: error.message }, "peer delegation failed");
        await audit({ ok: false, error: error.toPayload(), costUsd: 0 });
        return { ok: false, reason: `${error.code}: ${error.message}` };
      }
    },
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
