import { randomUUID } from "node:crypto";
import type { FleetConfig } from "../config/index.js";
import {
  heldOf,
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
import { AtlasPlanner, type PlannerRouter } from "./atlas-planner.js";
import { buildStatusReport, STATUS_REPORT_TASK } from "./atlas-status-report.js";

/** Atlas's own cycle work: the status report, then the plan. */
const CYCLE_WORK = "atlas-cycle";

/**
 * Atlas. Each cycle it writes the cross-site status report (from the findings, site by site, and the agents' records)
 * and plans from what changed since the last cycle (AtlasPlanner: no model call when nothing did). A task sent to Atlas
 * goes to the agent whose skill tags match it best (through TASKS, like any assignment); Atlas waits for that task and
 * gathers its artifacts; a request Atlas itself matches best ("status") is answered with the status report. Inbox notes
 * from other agents, whichever step they arrive with, are kept for the next plan.
 */
export function atlasBehaviour(self: HostedAgent, config: FleetConfig, deps: RuntimeDeps, router: PlannerRouter): AgentBehaviour {
  const fleet = config.agents;
  const store = new TaskStore(deps.kv.tasks, deps.names, deps.codec);
  const dedup = new TaskDedup({ kv: deps.kv.dedup, codec: deps.codec, now: () => deps.clock.now(), log: deps.log });
  const others = fleet.filter((a) => a.id !== self.id);
  const planner = new AtlasPlanner({ config, self: self.id, deps, router, log: deps.log.child({ component: "atlas-planner" }) });
  const statusReport = () => buildStatusReport(fleet, deps, store);

  return {
    async plan(input, ctx) {
      // the chart hands the inbox to whichever step runs next and then forgets it: kept for the next plan
      if (input.inbox.length > 0) await planner.noteInbox(input.inbox).catch((err: unknown) => ctx.log.warn({ err }, "inbox notes not kept"));
      if (input.trigger === "cycle" || !input.item) return { kind: "work", item: undefined, skillId: CYCLE_WORK };
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
      if (plan.skillId === CYCLE_WORK) {
        const report = await statusReport();
        const task: Task = {
          id: STATUS_REPORT_TASK,
          contextId: STATUS_REPORT_TASK,
          status: { state: "TASK_STATE_COMPLETED", timestamp: new Date(deps.clock.now()).toISOString() },
          artifacts: [report.artifact],
        };
        await store.put(self.id, task);
        ctx.log.info({ agents: report.lines.length, sites: report.sites.length, down: report.lines.filter((l) => !l.alive).map((l) => l.agentId) }, "status report written");
        try {
          await planner.cycle();
        } catch (err) {
          // the cursor did not move: the next cycle plans from the same inputs (and its calls are answered, not re-billed)
          ctx.log.warn({ err }, "atlas plan failed; the next cycle tries again");
        }
        return { ok: true, artifacts: [] };
      }
      if (plan.skillId === "status-report") {
        const report = await statusReport();
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
