import { createHash } from "node:crypto";
import type { Logger } from "pino";
import { submitTask, taskIdFor, TaskDedup, TaskStore, titleSimilarity, type RuntimeDeps } from "../actors/index.js";
import { PEER_ASSIGNEE_PREFIX, type FleetConfig } from "../config/index.js";
import {
  decode,
  encode,
  isFinalProposalState,
  isTerminal,
  ProposalRecord,
  TierName,
  textOf,
  titleOf,
  wireHeaders,
  type CompleteReply,
  type CompleteRequest,
  type Hold,
  type Message,
  type OutboxRecord,
  type TaskWork,
} from "../protocol/index.js";
import { referenceToolRisks } from "../governance/index.js";
import { offlinePlan } from "./atlas-offline-plan.js";
import { arbitrate, normalizeTarget, targetOfProposal, targetOfTask, type OpenWork } from "./atlas-conflicts.js";
import { AtlasInputs } from "./atlas-inputs.js";
import { checkPlan, failureLines, type CheckContext, type CheckedPlan } from "./atlas-plan-check.js";
import { ATLAS_PLAN_SCHEMA, AtlasPlan, planMessages, type AgentFacts, type InboxNote, type PlanInputs, type PlanNotice, type PlannedAssignment, type PlanRetry } from "./atlas-plan.js";
import { PlanBook, type HeldAssignment, type PlanRecord } from "./atlas-records.js";

/** The part of the router client the planner uses. */
export interface PlannerRouter {
  complete(request: CompleteRequest): Promise<CompleteReply>;
}

export interface AtlasPlannerOptions {
  config: FleetConfig;
  /** Atlas's own id */
  self: string;
  deps: RuntimeDeps;
  router: PlannerRouter;
  log: Logger;
}

export type CycleResult =
  | { kind: "quiet"; released: string[] }
  | { kind: "held"; hold: Hold; released: string[] }
  | { kind: "planned"; record: PlanRecord; released: string[] };

/** What is under way now: open tasks per agent and the work (tasks, proposals) on each target. */
interface OpenState {
  tasks: Map<string, { id: string; title: string; target: string | undefined }[]>;
  work: OpenWork[];
}

/**
 * Atlas's cycle: release held work whose target is free again, gather what changed, and when something did, ask for one
 * plan at the planning tier, check it deterministically, and only when the check fails ask once more at the escalation
 * tier with the failures in the prompt; what still fails becomes a notice to the operator, never a third call.
 * Assignments that pass go out as tasks (arbitrated per target), notices to the OUTBOX. The cursor moves only once all
 * of that is done, so a cycle that dies half-way is repeated with the same plan id: its model calls are answered from
 * the router's kept answers and its tasks have the same ids. With no model configured the plan is the offline
 * simulation's (atlas-offline-plan.ts), checked the same way.
 */
export class AtlasPlanner {
  readonly book: PlanBook;
  private readonly inputs: AtlasInputs;
  private readonly store: TaskStore;
  private readonly dedup: TaskDedup;

  constructor(private readonly options: AtlasPlannerOptions) {
    const { deps } = options;
    this.book = new PlanBook(deps.kv.plans, deps.codec);
    this.inputs = new AtlasInputs({ config: options.config, self: options.self, deps, book: this.book, log: options.log });
    this.store = new TaskStore(deps.kv.tasks, deps.names, deps.codec);
    this.dedup = new TaskDedup({ kv: deps.kv.dedup, codec: deps.codec, now: () => deps.clock.now(), log: options.log });
  }

  /** Inbox notes from other agents, kept for the next cycle's plan. */
  async noteInbox(messages: readonly Message[]): Promise<void> {
    const notes: InboxNote[] = messages.map((m) => ({
      messageId: m.messageId,
      from: typeof m.metadata?.from === "string" ? m.metadata.from : "unknown",
      text: textOf(m).slice(0, 2000),
      at: this.options.deps.clock.now(),
    }));
    await this.book.addNotes(notes);
  }

  async cycle(): Promise<CycleResult> {
    const { config, log } = this.options;
    // what is under way is read only when something needs it: held work to release, or a plan to check
    const held = await this.book.held();
    const released = held.length > 0 ? await this.releaseHeld(held, await this.openState()) : [];
    const gathered = await this.inputs.gather();
    if (gathered.count === 0) {
      // budget days roll over here too; nothing else moved
      await this.book.saveCursor(gathered.next);
      log.debug({ released: released.length }, "atlas cycle: nothing new, no plan");
      return { kind: "quiet", released };
    }
    // quiet hours or Atlas's spent cap: the inputs stay unread (the cursor does not move) for the plan after the hold
    const hold = this.options.deps.gate?.check({ agentId: this.options.self, work: { trigger: "atlas", tier: config.planning.tier }, title: "atlas plan" });
    if (hold) {
      log.info({ inputs: gathered.count, until: new Date(hold.until).toISOString(), reason: hold.reason }, "atlas cycle: planning held");
      return { kind: "held", hold, released };
    }
    const open = await this.openState();
    // the plan id names the inputs (every cursor, the budget states, the notes): a cycle repeated after a crash gets the
    // same id, any other plan a new one, so the router's kept answer of one plan never answers another
    const planId = createHash("sha256").update(JSON.stringify({ next: gathered.next, notes: [...gathered.noteIds] })).digest("hex").slice(0, 16);
    const facts = new Map<string, AgentFacts>(
      config.agents.filter((a) => a.id !== this.options.self).map((a) => [a.id, { openTasks: open.tasks.get(a.id)?.length ?? 0, budget: gathered.budgets.get(a.id) ?? "normal" }]),
    );
    const ctx: CheckContext = { config, self: this.options.self, facts, wipLimit: config.planning.wipLimit, duplicateOf: (agent, title) => this.duplicateOf(open, agent, title) };
    const attempts: PlanRecord["attempts"] = [];

    let plan = await this.ask(planId, 0, config.planning.tier, facts, gathered.inputs);
    let checked = await this.check(plan.plan, ctx);
    attempts.push({ tier: config.planning.tier, servedTier: plan.servedTier, costUsd: plan.costUsd, failures: failureLines(checked) });
    if (checked.failed.length > 0) {
      const retry: PlanRetry = { previous: plan.plan ?? { assignments: [], notices: [] }, failures: plan.plan ? failureLines(checked) : [plan.error ?? "the plan did not parse"] };
      plan = await this.ask(planId, 1, config.planning.escalateTo, facts, gathered.inputs, retry);
      checked = await this.check(plan.plan, ctx);
      attempts.push({ tier: config.planning.escalateTo, servedTier: plan.servedTier, costUsd: plan.costUsd, failures: failureLines(checked) });
    }
    const notices: PlanNotice[] = [...(plan.plan?.notices ?? [])];
    if (checked.failed.length > 0) {
      notices.push({ severity: "warning", text: `Atlas could not assign ${checked.failed.length} piece(s) of work after asking twice:\n${failureLines(checked).join("\n")}` });
    }

    const messageIdOf = (a: PlannedAssignment) => `atlas:${planId}:${a.agent}:${titleSimilarityKey(a.what)}`;
    const decided = arbitrate(checked.passed, open.work, (a) => taskIdFor(this.assigneeOf(a.agent), messageIdOf(a)));
    const assigned: PlanRecord["assigned"] = [];
    for (const { assignment, holds } of decided.go) {
      const task = await this.submit(assignment, messageIdOf(assignment), planId, { holds });
      assigned.push({ agent: assignment.agent, taskId: task.id, what: assignment.what, target: assignment.target, pipeline: assignment.pipeline, state: task.status.state });
    }
    if (decided.held.length > 0) {
      const now = this.options.deps.clock.now();
      const held: HeldAssignment[] = decided.held.map((h) => ({ assignment: h.assignment, planId, reason: h.reason, blockedBy: h.blockedBy, heldAt: now }));
      await this.book.saveHeld([...(await this.book.held()), ...held]);
    }
    for (const notice of notices) await this.notify(notice, planId);

    const record: PlanRecord = {
      id: planId,
      at: this.options.deps.clock.now(),
      inputs: Object.fromEntries(Object.entries(gathered.inputs).map(([k, list]: [string, unknown[]]) => [k, list.length])),
      attempts,
      assigned,
      held: decided.held.map((h) => ({ agent: h.assignment.agent, what: h.assignment.what, target: h.assignment.target, reason: h.reason })),
      skipped: checked.skipped.map((s) => ({ agent: s.assignment.agent, what: s.assignment.what, reason: s.reason })),
      refused: checked.failed.map((f) => ({ agent: f.assignment.agent, what: f.assignment.what, reasons: f.reasons })),
      notices,
    };
    await this.book.savePlan(record);
    await this.book.saveCursor(gathered.next);
    await this.book.dropNotes(gathered.noteIds);
    log.info(
      { planId, inputs: gathered.count, assigned: assigned.length, held: record.held.length, skipped: record.skipped.length, refused: record.refused.length, notices: notices.length, calls: attempts.length },
      "atlas planned",
    );
    return { kind: "planned", record, released };
  }

  /** One planning call; a plan that does not parse is a plan with no assignments and an error for the retry prompt. */
  private async ask(planId: string, attempt: number, tier: string, facts: ReadonlyMap<string, AgentFacts>, inputs: PlanInputs, retry?: PlanRetry) {
    const { config, self, router } = this.options;
    const reply = await router.complete({
      agentId: self,
      // named as a step of the plan: a cycle repeated after a crash is answered from the router's kept answer, unbilled
      taskId: `plan-${planId}`,
      step: `plan-${attempt}`,
      kind: "plan",
      title: "atlas plan",
      ...(TierName.safeParse(tier).success ? { tier: TierName.parse(tier) } : { alias: tier }),
      messages: planMessages(config, self, facts, config.planning.wipLimit, inputs, retry),
      responseSchema: ATLAS_PLAN_SCHEMA,
    });
    // no model configured: the simulated provider's placeholder would assign nothing, so the plan is the offline
    // simulation's, made deterministically from the same inputs (and labelled so)
    const parsed = AtlasPlan.safeParse(reply.simulated ? offlinePlan(config, self, inputs, referenceToolRisks()) : (reply.parsed ?? safeJson(reply.text)));
    return {
      plan: parsed.success ? parsed.data : undefined,
      error: parsed.success ? undefined : `the plan does not match its schema: ${parsed.error.issues[0]?.message ?? "invalid"}`,
      servedTier: reply.servedTier,
      costUsd: reply.costUsd,
    };
  }

  private async check(plan: AtlasPlan | undefined, ctx: CheckContext): Promise<CheckedPlan> {
    if (plan) return checkPlan(plan, ctx);
    const nothing: PlannedAssignment = { agent: "-", what: "(the whole plan)", why: "-", priority: "normal", skill: null, pipeline: null, tier: null, target: null, tools: [] };
    return { passed: [], skipped: [], failed: [{ assignment: nothing, reasons: ["the plan did not parse"] }] };
  }

  /** Who takes the task: the agent, or for a peer (`peer:<name>`) Atlas itself, which calls the peer (peer-task-stage.ts). */
  private assigneeOf(agent: string): string {
    return agent.startsWith(PEER_ASSIGNEE_PREFIX) ? this.options.self : agent;
  }

  private async duplicateOf(open: OpenState, assigned: string, title: string): Promise<string | undefined> {
    const agentId = this.assigneeOf(assigned);
    const verdict = await this.dedup.peek(agentId, title, "discovery");
    if (!verdict.admitted) return verdict.reason;
    const same = open.tasks.get(agentId)?.find((t) => titleSimilarity(t.title, title) > 0.7);
    return same ? `duplicate of ${agentId}'s open task ${same.id} ("${same.title}")` : undefined;
  }

  private async submit(assignment: PlannedAssignment, messageId: string, planId: string, extra: { holds?: { agent: string; what: string }[]; heldFor?: string }) {
    const { deps, self } = this.options;
    const work: TaskWork = {
      trigger: "atlas",
      ...(assignment.pipeline ? { pipeline: assignment.pipeline, input: { ...(assignment.target ? { target: assignment.target, subject: assignment.target } : {}) } } : {}),
      ...(assignment.tier ? { tier: assignment.tier } : {}),
    };
    const peer = assignment.agent.startsWith(PEER_ASSIGNEE_PREFIX) ? assignment.agent.slice(PEER_ASSIGNEE_PREFIX.length) : undefined;
    const message: Message = {
      messageId,
      role: "ROLE_USER",
      parts: [
        { text: `${assignment.what}\n\nWhy: ${assignment.why}` },
        // a delegation to a peer is Atlas's own task: the peer stage sends it to the peer's skill and keeps the artifact
        ...(peer !== undefined && assignment.skill !== null ? [{ data: { peerTask: { peer, skill: assignment.skill } } }] : []),
      ],
      metadata: {
        work,
        ...(assignment.target ? { target: normalizeTarget(assignment.target) } : {}),
        atlas: {
          planId,
          why: assignment.why,
          priority: assignment.priority,
          ...(extra.holds && extra.holds.length > 0 ? { holds: extra.holds } : {}),
          ...(extra.heldFor ? { heldFor: extra.heldFor } : {}),
        },
      },
    };
    return submitTask(
      { js: deps.js, store: this.store, dedup: this.dedup, log: this.options.log, names: deps.names, codec: deps.codec, now: () => deps.clock.now() },
      this.assigneeOf(assignment.agent),
      message,
      self,
      "discovery",
    );
  }

  /** Held work whose blocker ended goes out now, if it still passes the check and its target is free. */
  private async releaseHeld(held: readonly HeldAssignment[], open: OpenState): Promise<string[]> {
    const { config, self } = this.options;
    const still: HeldAssignment[] = [];
    const released: string[] = [];
    for (const h of held) {
      if (!(await this.ended(h))) {
        still.push(h);
        continue;
      }
      const facts = new Map<string, AgentFacts>([[h.assignment.agent, { openTasks: open.tasks.get(h.assignment.agent)?.length ?? 0, budget: "normal" }]]);
      const checked = await checkPlan({ assignments: [h.assignment], notices: [] }, { config, self, facts, wipLimit: config.planning.wipLimit, duplicateOf: (a, t) => this.duplicateOf(open, a, t) });
      if (checked.passed.length === 0) {
        const why = checked.failed[0]?.reasons.join("; ") ?? checked.skipped[0]?.reason ?? "it no longer passes the check";
        if (checked.failed.length > 0) await this.notify({ severity: "info", text: `Held work for ${h.assignment.agent} ("${h.assignment.what.slice(0, 120)}") was dropped: ${why}` }, h.planId);
        continue;
      }
      const again = arbitrate([h.assignment], open.work, () => "");
      const blocked = again.held[0];
      if (blocked) {
        still.push({ ...h, reason: blocked.reason, blockedBy: blocked.blockedBy });
        continue;
      }
      const task = await this.submit(h.assignment, `atlas:${h.planId}:${h.assignment.agent}:${titleSimilarityKey(h.assignment.what)}`, h.planId, { heldFor: h.reason });
      open.work.push(...(h.assignment.target ? [{ blocker: { kind: "task" as const, id: task.id, agentId: h.assignment.agent }, target: normalizeTarget(h.assignment.target), what: h.assignment.what }] : []));
      released.push(task.id);
    }
    await this.book.saveHeld(still);
    return released;
  }

  private async ended(h: HeldAssignment): Promise<boolean> {
    const { blockedBy } = h;
    if (blockedBy.kind === "task") {
      const task = await this.store.get(this.assigneeOf(blockedBy.agentId), blockedBy.id).catch(() => undefined);
      return !task || isTerminal(task.status.state);
    }
    const entry = await this.options.deps.kv.proposals.get(blockedBy.id).catch(() => null);
    const decoded = entry && entry.operation === "PUT" ? decode(ProposalRecord, entry.value, { codec: this.options.deps.codec }) : undefined;
    return !decoded?.ok || isFinalProposalState(decoded.value.state);
  }

  private async openState(): Promise<OpenState> {
    const { config, self, deps } = this.options;
    const tasks: OpenState["tasks"] = new Map();
    const work: OpenWork[] = [];
    for (const agent of config.agents) {
      if (agent.id === self) continue;
      const open = (await this.store.list(agent.id)).filter((t) => !isTerminal(t.status.state));
      tasks.set(agent.id, open.map((t) => ({ id: t.id, title: t.history?.[0] ? titleOf(t.history[0]) : t.id, target: targetOfTask(t) })));
      for (const t of tasks.get(agent.id) ?? []) if (t.target) work.push({ blocker: { kind: "task", id: t.id, agentId: agent.id }, target: t.target, what: t.title });
    }
    for await (const key of await deps.kv.proposals.keys()) {
      const entry = await deps.kv.proposals.get(key).catch(() => null);
      const decoded = entry && entry.operation === "PUT" ? decode(ProposalRecord, entry.value, { codec: deps.codec }) : undefined;
      if (!decoded?.ok || isFinalProposalState(decoded.value.state)) continue;
      const target = targetOfProposal(decoded.value);
      if (target) work.push({ blocker: { kind: "proposal", id: decoded.value.id, agentId: decoded.value.agentId }, target, what: `${decoded.value.tool}: ${decoded.value.reason.slice(0, 80)}` });
    }
    return { tasks, work };
  }

  /** A notice to the operator: the configured channel, else the first principal's; deduplicated by content for 4 h. */
  private async notify(notice: PlanNotice, planId: string): Promise<void> {
    const { config, deps, self, log } = this.options;
    const to = config.planning.notices ?? (config.principals[0] ? { channel: config.principals[0].channel, to: config.principals[0].to } : undefined);
    if (!to) {
      log.warn({ notice: notice.text }, "atlas notice has nowhere to go (no planning.notices and no principal)");
      return;
    }
    const text = `Atlas (${notice.severity}): ${notice.text}`;
    const record: OutboxRecord = { channel: to.channel, to: to.to, text, source: { agentId: self, taskId: `plan-${planId}` }, createdAt: deps.clock.now() };
    const contentId = createHash("sha256").update(`${to.channel}\u0000${to.to}\u0000${text}`).digest("hex");
    await deps.js.publish(deps.names.outbox(to.channel), encode(record, deps.codec), { headers: wireHeaders(deps.codec, contentId) });
  }
}

/** A short stable key of the work's wording, so one plan's two assignments to one agent get different task ids. */
function titleSimilarityKey(what: string): string {
  return createHash("sha256").update(what).digest("hex").slice(0, 12);
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
