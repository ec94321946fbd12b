import type { Logger } from "pino";
import type { RuntimeDeps } from "../actors/index.js";
import { fleetDay, type FleetConfig } from "../config/index.js";
import {
  codecForContentType,
  deadLetter,
  decode,
  eventFromStored,
  Finding,
  FleetError,
  HEADERS,
  ProposalRecord,
  readAfter,
  storedCodec,
  Task,
  TaskAssignment,
  textOf,
  titleOf,
  type BudgetState,
  type ReadAfter,
} from "../protocol/index.js";
import { BudgetRecord, budgetStateOf, roundUsd } from "../router/index.js";
import { inputCount, type PlanInputs } from "./atlas-plan.js";
import type { PlanBook, PlanCursor } from "./atlas-records.js";

/** What one gathering found, and the cursor to save once the plan made of it is done. */
export interface Gathered {
  inputs: PlanInputs;
  next: PlanCursor;
  /** the ids of the notes taken, dropped from the waiting notes when the plan is done */
  noteIds: Set<string>;
  /** every agent's budget state now (for the check), changed or not */
  budgets: Map<string, BudgetState>;
  /** how many inputs in all; 0 is a cycle with nothing new */
  count: number;
  /** some input had more than one cycle takes: the next cycle goes on from here */
  more: boolean;
}

type Source = "findings" | "events" | "tasks" | "dlq" | "proposals";

/**
 * Reads what changed since Atlas's last cycle, each input from its own durable cursor (a stream sequence in KV
 * `plans`): new findings, events of sources no agent handles directly, tasks that failed, task messages that were
 * dead-lettered, proposals now awaiting a human, budgets whose state changed, and the inbox notes kept for it. A first
 * cycle (no cursor yet) looks back `planning.lookbackHours`. Nothing is marked read here: the caller saves `next` once
 * the plan is done, so a cycle that fails half-way reads the same inputs again.
 */
export class AtlasInputs {
  constructor(
    private readonly options: { config: FleetConfig; self: string; deps: RuntimeDeps; book: PlanBook; log: Logger },
  ) {}

  async gather(): Promise<Gathered> {
    const { deps, config, book } = this.options;
    const cursor = (await book.cursor()) ?? { budgets: {} };
    const next: PlanCursor = { ...cursor, budgets: { ...cursor.budgets } };
    const inputs: PlanInputs = { findings: [], events: [], failedTasks: [], deadLetters: [], notes: [], awaitingHuman: [], budgets: [] };
    const fromTime = deps.clock.now() - config.planning.lookbackHours * 3_600_000;
    let more = false;
    const read = async (source: Source, stream: string, subject: string): Promise<ReadAfter["messages"]> => {
      const got = await readAfter(deps.js, deps.jsm, stream, subject, { afterSeq: cursor[source], fromTime, max: config.planning.maxInputs });
      more ||= got.more;
      const last = got.messages.at(-1);
      if (last) next[source] = last.seq;
      return got.messages;
    };
    const { names } = deps;
    const p = names.prefix;

    for (const m of await read("findings", names.stream("FINDINGS"), names.finding("*"))) {
      const decoded = decode(Finding, m.data, { codec: storedCodec(m.data, m.contentType, deps.codec) });
      if (decoded.ok) inputs.findings.push(decoded.value);
      else await this.deadLetter("findings", m, decoded.error);
    }

    const routed = new Set(Object.keys(config.events.sources));
    for (const m of await read("events", names.stream("EVENTS"), names.event("*"))) {
      const source = m.subject.slice(`${p}.event.`.length);
      // a source the config hands to an agent is the event router's (it dead-letters those that do not parse)
      if (routed.has(source)) continue;
      const parsed = eventFromStored(source, m.data, m.contentType, deps.codec, { id: `${source}-${m.seq}`, at: m.timestampMs });
      if (parsed.ok) inputs.events.push(parsed.event);
      else await this.deadLetter("events", m, parsed.error);
    }

    const tasksBucket = names.bucket("tasks");
    for (const m of await read("tasks", `KV_${tasksBucket}`, `$KV.${tasksBucket}.>`)) {
      const agentId = m.subject.slice(`$KV.${tasksBucket}.`.length).split(".")[0] ?? "";
      if (agentId === this.options.self || m.data.length === 0) continue;
      const decoded = decode(Task, m.data, { codec: deps.codec });
      if (!decoded.ok || decoded.value.status.state !== "TASK_STATE_FAILED") continue;
      const task = decoded.value;
      const first = task.history?.[0];
      inputs.failedTasks.push({
        agentId,
        taskId: task.id,
        title: first ? titleOf(first) : task.id,
        reason: task.status.message ? textOf(task.status.message).slice(0, 300) : "failed",
      });
    }

    for (const m of await read("dlq", names.stream("DLQ"), names.dlq("tasks"))) {
      const assignment = decode(TaskAssignment, m.data, { codec: codecForContentType(m.contentType, deps.codec) ?? deps.codec });
      inputs.deadLetters.push({
        agentId: assignment.ok ? assignment.value.agentId : undefined,
        taskId: assignment.ok ? assignment.value.taskId : undefined,
        code: m.headers?.get(HEADERS.dlqCode) || "UNKNOWN",
        reason: (m.headers?.get(HEADERS.dlqReason) || "dead-lettered").slice(0, 300),
      });
    }

    const proposalsBucket = names.bucket("proposals");
    const awaiting = new Map<string, PlanInputs["awaitingHuman"][number]>();
    for (const m of await read("proposals", `KV_${proposalsBucket}`, `$KV.${proposalsBucket}.>`)) {
      if (m.data.length === 0) continue;
      const decoded = decode(ProposalRecord, m.data, { codec: deps.codec });
      if (!decoded.ok) continue;
      const proposal = decoded.value;
      // one line per proposal, in its latest state of this read
      if (proposal.state === "awaiting_human") awaiting.set(proposal.id, { proposalId: proposal.id, agentId: proposal.agentId, tool: proposal.tool, reason: proposal.reason.slice(0, 300) });
      else awaiting.delete(proposal.id);
    }
    inputs.awaitingHuman.push(...awaiting.values());

    const budgets = await this.budgets(next);
    inputs.budgets.push(...budgets.changed);

    const notes = await book.notes();
    inputs.notes.push(...notes);
    return { inputs, next, noteIds: new Set(notes.map((n) => n.messageId)), budgets: budgets.states, count: inputCount(inputs), more };
  }

  /** Every agent's budget state today; those that differ from the cursor's are news, and the cursor learns them. */
  private async budgets(next: PlanCursor): Promise<{ states: Map<string, BudgetState>; changed: PlanInputs["budgets"] }> {
    const { deps, config } = this.options;
    const day = fleetDay(deps.clock.now(), config.fleet.timeZone);
    if (next.budgetDay !== day) next.budgets = {};
    next.budgetDay = day;
    const states = new Map<string, BudgetState>();
    const changed: PlanInputs["budgets"] = [];
    for (const agent of config.agents) {
      const entry = await deps.kv.budgets.get(`${day}.${agent.id}`).catch(() => null);
      const decoded = entry && entry.operation === "PUT" ? decode(BudgetRecord, entry.value, { codec: "json" }) : undefined;
      const now = deps.clock.now();
      const spent = decoded?.ok
        ? roundUsd(decoded.value.spentUsd + Object.values(decoded.value.reservations).filter((r) => r.expiresAt > now).reduce((s, r) => s + r.usd, 0))
        : 0;
      const state = budgetStateOf(spent, agent.dailyCapUsd, config.routing.budget.downgradeAt);
      states.set(agent.id, state);
      if ((next.budgets[agent.id] ?? "normal") !== state) changed.push({ agentId: agent.id, state, spentUsd: spent, capUsd: agent.dailyCapUsd });
      next.budgets[agent.id] = state;
    }
    return { states, changed };
  }

  /** A record that does not parse is dead-lettered once (its id is its stream and sequence) and skipped. */
  private async deadLetter(source: string, m: ReadAfter["messages"][number], error: FleetError): Promise<void> {
    const { deps, log } = this.options;
    log.warn({ source, subject: m.subject, seq: m.seq, code: error.code }, "plan input refused; dead-lettered");
    await deadLetter(deps.js, deps.names, source, { subject: m.subject, data: m.data, msgId: `${source}-${m.seq}` }, error).catch((err: unknown) =>
      log.warn({ err }, "dead letter not stored"),
    );
  }
}
