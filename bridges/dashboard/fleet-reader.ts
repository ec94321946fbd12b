import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { z } from "zod";
import { actualOfTask, estimateOfTask, listHeld } from "../../actors/index.js";
import type { FleetConfig } from "../../config/index.js";
import { ProposalStore } from "../../governance/index.js";
import {
  AgentRecord,
  Finding,
  HEADERS,
  heldOf,
  isAlive,
  partsText,
  readStream,
  Task,
  taskWorkOf,
  type FleetNames,
  type HeldTask,
  type ProposalRecord,
  type UsageReply,
} from "../../protocol/index.js";
import { RouterClient } from "../../router/index.js";
import { decodeRecord } from "./record-codec.js";
import type { TaskIndex, TaskQuery } from "./task-index.js";
import type { ProposalEntries } from "./proposal-entries.js";

export { decodeRecord } from "./record-codec.js";

/*
 * What the dashboard and /metrics show, read from the fleet's own records each time they are asked (agents, tasks,
 * proposals and held work from KV, dead letters and findings from their streams, spend from the router): the dashboard
 * keeps no second truth, so what it shows is what `fleet status` would print at the same moment.
 */

export interface FleetBuckets {
  agents: KV;
  tasks: KV;
  proposals: KV;
  held: KV;
}

export interface AgentRow {
  agentId: string;
  name: string;
  /** the chart's state, "DOWN" when its heartbeat stopped, "never started" without a record */
  state: string;
  alive: boolean;
  tier: string;
  defaultTier: string;
  breaker: "closed" | "open" | "half-open";
  breakerUntil: number | undefined;
  consecutiveFailures: number;
  spentUsd: number | undefined;
  capUsd: number;
  budgetState: string | undefined;
  heartbeatAt: number | undefined;
  host: string | undefined;
  currentTaskId: string | undefined;
  tasksCompleted: number;
  tasksFailed: number;
}

export interface TaskRow {
  agentId: string;
  id: string;
  state: string;
  trigger: string;
  title: string;
  updatedAt: string;
  held: string | undefined;
  /** story points (1 point = 1,000 tokens) estimated when the agent claimed it; `default` when its kind had no history */
  estimate: { points: number; basis: string } | undefined;
  /** story points of the tokens its model calls used, once it ended */
  actualPoints: number | undefined;
}

/** A page of the tasks page: its rows, and what the whole bucket holds. */
export interface TaskPage {
  rows: TaskRow[];
  matching: number;
  byState: Map<string, number>;
  query: TaskQuery;
}

export function taskRow(agentId: string, task: Task): TaskRow {
  const held = heldOf(task.metadata);
  return {
    agentId,
    id: task.id,
    state: task.status.state.replace("TASK_STATE_", ""),
    trigger: taskWorkOf(task.metadata)?.trigger ?? "operator",
    title: partsText(task.history?.[0]?.parts ?? [], " ").slice(0, 120),
    updatedAt: task.status.timestamp,
    held: held?.detail,
    estimate: estimateOfTask(task),
    actualPoints: actualOfTask(task)?.points,
  };
}

export interface DeadLetterRow {
  seq: number;
  subject: string;
  /** the subject the message was first sent on */
  original: string;
  code: string;
  reason: string;
  at: number;
}

export class FleetReader {
  private readonly router: RouterClient;

  constructor(
    private readonly deps: { nc: NatsConnection; js: JetStreamClient; jsm: JetStreamManager; names: FleetNames; kv: FleetBuckets; config: FleetConfig },
  ) {
    this.router = new RouterClient(deps.nc, deps.names, { timeoutMs: 2_000, retries: 0 });
  }

  get config(): FleetConfig {
    return this.deps.config;
  }

  /** Today's budgets as the router keeps them; undefined when no router answers. */
  async usage(): Promise<UsageReply | undefined> {
    return this.router.usage().catch(() => undefined);
  }

  async agentRecords(): Promise<AgentRecord[]> {
    const out: AgentRecord[] = [];
    for await (const key of await this.deps.kv.agents.keys()) {
      const entry = await this.deps.kv.agents.get(key).catch(() => null);
      if (entry?.operation !== "PUT") continue;
      const record = decodeRecord(AgentRecord, entry.value, this.deps.config.fleet.codec);
      if (record) out.push(record);
    }
    return out;
  }

  /** Every configured agent (and any other that reported), with its record and today's spend. */
  async agents(now: number, usage?: UsageReply): Promise<AgentRow[]> {
    const records = new Map((await this.agentRecords()).map((r) => [r.agentId, r]));
    const ids = [...new Set([...this.deps.config.agents.map((a) => a.id), ...records.keys()])].sort();
    return ids.map((agentId) => {
      const r = records.get(agentId);
      const configured = this.deps.config.agents.find((a) => a.id === agentId);
      const budget = usage?.agents[agentId];
      const alive = r ? isAlive(r, now) : false;
      return {
        agentId,
        name: configured?.name ?? r?.card.name ?? agentId,
        state: !r ? "never started" : alive ? r.state : r.heartbeatAt === 0 ? "stopped" : "DOWN",
        alive,
        tier: r?.tier ?? configured?.defaultTier ?? "-",
        defaultTier: configured?.defaultTier ?? "-",
        breaker: r?.breaker?.state ?? "closed",
        breakerUntil: r?.breaker?.openUntil,
        consecutiveFailures: r?.breaker?.consecutiveFailures ?? 0,
        spentUsd: budget?.spentUsd,
        capUsd: budget?.capUsd ?? configured?.dailyCapUsd ?? 0,
        budgetState: budget?.state,
        heartbeatAt: r?.heartbeatAt || undefined,
        host: r ? `${r.host}:${r.pid}` : undefined,
        currentTaskId: r?.currentTaskId,
        tasksCompleted: r?.tasksCompleted ?? 0,
        tasksFailed: r?.tasksFailed ?? 0,
      };
    });
  }

  /**
   * One page of tasks, newest first: the index says which (and how many there are by state), and only the Tasks on
   * the page are read from KV `tasks`, by key.
   */
  async taskPage(index: TaskIndex, query: TaskQuery): Promise<TaskPage> {
    const page = await index.page(query);
    const tasks = await Promise.all(page.entries.map((e) => this.deps.kv.tasks.get(e.key).catch(() => null)));
    const rows: TaskRow[] = [];
    for (const [i, entry] of tasks.entries()) {
      if (entry?.operation !== "PUT") continue;
      const task = decodeRecord(Task, entry.value, this.deps.config.fleet.codec);
      if (task) rows.push(taskRow(page.entries[i]!.agentId, task));
    }
    return { rows, matching: page.matching, byState: page.byState, query };
  }

  /** The proposals the proposals page shows (all awaiting a human, the newest `recent` others), read by key. */
  async proposals(index: ProposalEntries, recent: number): Promise<ProposalRecord[]> {
    const shown = await index.shown(recent);
    const store = this.proposalStore();
    const read = await Promise.all([...shown.waiting, ...shown.recent].map((id) => store.get(id).catch(() => undefined)));
    return read.flatMap((stored) => (stored ? [stored.record] : []));
  }

  proposalStore(): ProposalStore {
    return new ProposalStore(this.deps.kv.proposals, this.deps.js, this.deps.names, this.deps.config.fleet.codec);
  }

  async held(): Promise<HeldTask[]> {
    return listHeld(this.deps.kv.held, undefined).catch(() => []);
  }

  async dlqDepth(): Promise<number> {
    return (await this.deps.jsm.streams.info(this.deps.names.stream("DLQ"))).state.messages;
  }

  /** The newest dead letters with why they are there: our own (reason headers) and TASKS' max-deliveries advisories. */
  async deadLetters(limit = 50): Promise<DeadLetterRow[]> {
    const stream = this.deps.names.stream("DLQ");
    const state = (await this.deps.jsm.streams.info(stream)).state;
    const out: DeadLetterRow[] = [];
    for (let seq = state.last_seq; seq >= state.first_seq && seq > 0 && out.length < limit; seq--) {
      const m = await this.deps.jsm.streams.getMessage(stream, { seq }).catch(() => undefined);
      if (!m) continue;
      const h = m.header;
      const original = h?.get(HEADERS.dlqSubject) || "";
      if (original) {
        out.push({ seq, subject: m.subject, original, code: h?.get(HEADERS.dlqCode) || "", reason: h?.get(HEADERS.dlqReason) || "", at: m.timestamp ? Date.parse(m.timestamp) : 0 });
        continue;
      }
      // a max-deliveries advisory: the task message that was delivered too often stays in TASKS at stream_seq
      const advisory = MaxDeliveries.safeParse(safeJson(m.data));
      out.push({
        seq,
        subject: m.subject,
        original: advisory.success ? `${advisory.data.stream} #${advisory.data.stream_seq}` : m.subject,
        code: "MAX_DELIVERIES",
        reason: advisory.success ? `delivered ${advisory.data.deliveries} times to ${advisory.data.consumer} without an ack` : "max deliveries reached",
        at: m.timestamp ? Date.parse(m.timestamp) : 0,
      });
    }
    return out;
  }

  /** The findings of the last `limit` FINDINGS messages, newest first. */
  async findings(limit = 500): Promise<Finding[]> {
    const stream = this.deps.names.stream("FINDINGS");
    const last = (await this.deps.jsm.streams.info(stream)).state.last_seq;
    const out: Finding[] = [];
    for await (const m of readStream(this.deps.js, stream, { fromSeq: Math.max(1, last - limit + 1) })) {
      const finding = decodeRecord(Finding, m.data, this.deps.config.fleet.codec);
      if (finding) out.push(finding);
    }
    return out.sort((a, b) => b.at - a.at);
  }
}

const MaxDeliveries = z.object({ stream: z.string(), consumer: z.string(), stream_seq: z.number(), deliveries: z.number() });

function safeJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return undefined;
  }
}
