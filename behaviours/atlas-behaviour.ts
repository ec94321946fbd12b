import { randomUUID } from "node:crypto";
import {
  AgentRecord,
  decode,
  heldOf,
  isAlive,
  isTerminal,
  textOf,
  type Artifact,
  type Message,
  type Task,
} from "../protocol/index.js";
import {
  heldOutcome,
  matchSkill,
  submitTask,
  TaskDedup,
  TaskStore,
  type AgentBehaviour,
  type HostedAgent,
  type RuntimeDeps,
} from "../actors/index.js";

/** The id of the Task holding Atlas's latest cross-agent status report (overwritten each cycle; KV keeps the history). */
export const STATUS_REPORT_TASK = "status-report";

export interface AgentStatusLine {
  agentId: string;
  state: string;
  alive: boolean;
  currentTaskId: string | undefined;
  openTasks: number;
  completed: number;
  failed: number;
  restarts: number;
}

/**
 * Atlas, rule-based until the router exists: a task sent to Atlas goes to the agent whose skill tags match it best
 * (through TASKS, like any assignment), Atlas waits for that task to finish and gathers its artifacts; a request Atlas
 * itself matches best ("status") and every cycle produce the cross-agent status report.
 */
export function atlasBehaviour(self: HostedAgent, fleet: readonly HostedAgent[], deps: RuntimeDeps): AgentBehaviour {
  const store = new TaskStore(deps.kv.tasks, deps.names, deps.codec);
  const dedup = new TaskDedup({ kv: deps.kv.dedup, codec: deps.codec, now: () => deps.clock.now(), log: deps.log });
  const others = fleet.filter((a) => a.id !== self.id);

  async function statusReport(): Promise<{ lines: AgentStatusLine[]; artifact: Artifact }> {
    const now = deps.clock.now();
    const lines: AgentStatusLine[] = [];
    for (const agent of fleet) {
      const entry = await deps.kv.agents.get(agent.id);
      const decoded = entry && entry.operation === "PUT" ? decode(AgentRecord, entry.value, { codec: deps.codec }) : undefined;
      const record = decoded?.ok ? decoded.value : undefined;
      const tasks = await store.list(agent.id);
      lines.push({
        agentId: agent.id,
        state: record?.state ?? "never started",
        alive: record ? isAlive(record, now) : false,
        currentTaskId: record?.currentTaskId,
        openTasks: tasks.filter((t) => !isTerminal(t.status.state) && t.id !== STATUS_REPORT_TASK).length,
        completed: record?.tasksCompleted ?? 0,
        failed: record?.tasksFailed ?? 0,
        restarts: record?.restarts ?? 0,
      });
    }
    const text = lines
      .map((l) => `${l.agentId}: ${l.alive ? l.state : "DOWN"}, ${l.openTasks} open, ${l.completed} done, ${l.failed} failed, ${l.restarts} restarts`)
      .join("\n");
    return {
      lines,
      artifact: { artifactId: randomUUID(), name: "status-report", parts: [{ text }, { data: { at: new Date(now).toISOString(), agents: lines } }] },
    };
  }

  return {
    async plan(input) {
      if (input.trigger === "cycle" || !input.item) return { kind: "work", item: undefined, skillId: "status-report" };
      const text = textOf(input.item.message);
      let best: { agentId: string; score: number } | undefined;
      for (const agent of others) {
        const match = matchSkill(agent, text);
        if (match && (!best || match.score > best.score)) best = { agentId: agent.id, score: match.score };
      }
      const own = matchSkill(self, text);
      if (!best || (own && own.score >= best.score)) return { kind: "work", item: input.item, skillId: "status-report" };
      return { kind: "work", item: input.item, skillId: `delegate:${best.agentId}` };
    },

    async act(input, ctx) {
      const { plan } = input;
      if (plan.skillId === "status-report") {
        const report = await statusReport();
        if (!plan.item) {
          const stamp = new Date(deps.clock.now()).toISOString();
          const task: Task = {
            id: STATUS_REPORT_TASK,
            contextId: STATUS_REPORT_TASK,
            status: { state: "TASK_STATE_COMPLETED", timestamp: stamp },
            artifacts: [report.artifact],
          };
          await store.put(self.id, task);
          ctx.log.info({ agents: report.lines.length, down: report.lines.filter((l) => !l.alive).map((l) => l.agentId) }, "status report written");
        }
        return { ok: true, artifacts: [report.artifact] };
      }
      const target = plan.skillId?.startsWith("delegate:") ? plan.skillId.slice("delegate:".length) : undefined;
      if (!target || !plan.item) return { ok: false, reason: `atlas cannot act on plan ${plan.skillId}` };
      // derived from Atlas's own task, so a re-run after a crash re-finds the same delegated task instead of a second one
      const delegated: Message = {
        messageId: `${plan.item.taskId}:${target}`,
        role: "ROLE_USER",
        parts: plan.item.message.parts,
        referenceTaskIds: [plan.item.taskId],
        // what the work is (urgent, its trigger, tier) travels with it: an urgent task stays urgent when delegated
        ...(plan.item.message.metadata?.work !== undefined ? { metadata: { work: plan.item.message.metadata.work } } : {}),
      };
      const submitted = await submitTask(
        { js: deps.js, store, dedup, log: ctx.log, names: deps.names, codec: deps.codec, now: () => deps.clock.now() },
        target,
        delegated,
        self.id,
        "task",
      );
      // a near-copy of recent work is not created again: the answer is the earlier task's
      const duplicateOf = submitted.status.state === "TASK_STATE_REJECTED" ? submitted.metadata?.duplicateOf : undefined;
      const awaited = typeof duplicateOf === "string" ? duplicateOf : submitted.id;
      ctx.log.info({ target, delegatedTaskId: awaited, taskId: plan.item.taskId, deduplicated: awaited !== submitted.id }, "task delegated");
      // a delegated task that is held (quiet hours, a spent cap) holds Atlas's task until the same time, so Atlas's
      // queue is not blocked all night; a hold whose time has passed is stale (the task is about to be taken again)
      const done = await store.waitUntil(target, awaited, ctx.signal, (t) => isTerminal(t.status.state) || (heldOf(t.metadata)?.until ?? 0) > deps.clock.now());
      const held = isTerminal(done.status.state) ? undefined : heldOf(done.metadata);
      if (held) return heldOutcome({ reason: held.reason, until: held.until, detail: `delegated to ${target} (task ${done.id}), which waits: ${held.detail}` });
      if (done.status.state !== "TASK_STATE_COMPLETED") {
        return { ok: false, reason: `${target} ended task ${done.id} as ${done.status.state}` };
      }
      const note: Artifact = {
        artifactId: randomUUID(),
        name: "delegation",
        parts: [{ text: `delegated to ${target} (task ${done.id}): completed` }, { data: { agent: target, taskId: done.id } }],
      };
      return { ok: true, artifacts: [note, ...(done.artifacts ?? [])] };
    },
  };
}
