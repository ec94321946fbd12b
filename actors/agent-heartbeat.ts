import type { KV } from "@nats-io/kv";
import type { Logger } from "pino";
import { encode, type AgentCard, type AgentRecord, type CodecName } from "../protocol/index.js";
import { buildAgentRecord } from "./agent-record.js";
import type { HostedAgent } from "./behaviour.js";
import type { BreakerSummary } from "./breaker-machine.js";
import { CoalescedWriter } from "./coalesced-writer.js";
import type { TaskDedup } from "./task-dedup.js";

/** The live parts of an agent's record, read at each write. */
export interface AgentLiveState {
  /** the chart's state value */
  state: string;
  currentTaskId: string | undefined;
  completed: number;
  failed: number;
  breaker: BreakerSummary;
  breakerSnapshot: unknown;
}

export interface AgentHeartbeatOptions {
  /** KV `agents` */
  kv: KV;
  codec: CodecName;
  agent: HostedAgent;
  card: AgentCard;
  runId: string;
  heartbeatMs: number;
  now: () => number;
  dedup: TaskDedup;
  /** the record an earlier run of this agent left, if any: restarts are counted within one run */
  previous: AgentRecord | undefined;
  live: () => AgentLiveState;
  /** the chart's persisted snapshot: what a restarted process resumes from (taken only when written) */
  persistedSnapshot: () => unknown;
  log: Logger;
}

/**
 * The agent's record in KV `agents` (card, chart state and snapshot, breaker, counters) and its heartbeat: what
 * `fleet status` reads and what a restarted process resumes from. Nothing is written before `announce()`, since a record
 * tells clients the agent is reachable.
 */
export class AgentHeartbeat {
  readonly restarts: number;
  private readonly startedAt: number;
  private dedupSuppressed = 0;
  private announced = false;
  private lastPersistedState = "";
  private timer: NodeJS.Timeout | undefined;
  // starting and finishing work are written at most every 250 ms: under load, one write carries many state changes
  private readonly writer = new CoalescedWriter(() => this.put(), 250, (err) => this.options.log.debug({ err }, "snapshot not persisted"));

  constructor(private readonly options: AgentHeartbeatOptions) {
    this.startedAt = options.now();
    this.restarts = options.previous && options.previous.runId === options.runId ? options.previous.restarts + 1 : 0;
  }

  /** Writes the record for the first time and starts the heartbeat. */
  async announce(): Promise<void> {
    this.announced = true;
    // the heartbeat keeps its own interval: Node runs every interval of one duration off one native timer, so 10,000 of
    // them cost their callbacks (a KV put each, the heartbeat's point) and nothing a shared heap would save
    this.timer ??= setInterval(() => void this.beat(), this.options.heartbeatMs);
    await this.put();
  }

  /**
   * Persists the record when the agent starts or finishes work: the snapshot in `acting` is what a restarted process
   * resumes from, `idle` is what `fleet status` shows between tasks. Other steps wait for the heartbeat.
   */
  stateChanged(value: string): void {
    if (!this.announced) return;
    if (value === this.lastPersistedState) return;
    this.lastPersistedState = value;
    if (value !== "acting" && value !== "idle") return;
    this.writer.request();
  }

  /** The breaker changed: written at once, an operator watches it. */
  breakerChanged(): void {
    if (this.announced) void this.put().catch((err) => this.options.log.debug({ err }, "breaker not persisted"));
  }

  /** No more heartbeats (the agent is stopping); the final record comes with `stopped()`. */
  stopBeating(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The last record: stopped (a heartbeat of 0), with the snapshot taken while the chart still ran. */
  async stopped(snapshot: unknown): Promise<void> {
    this.stopBeating();
    this.writer.cancel();
    await this.put("stopped", snapshot);
  }

  private async beat(): Promise<void> {
    try {
      this.dedupSuppressed = (await this.options.dedup.counts(this.options.agent.id)).suppressed;
      await this.put();
    } catch (err) {
      this.options.log.warn({ err }, "heartbeat failed");
    }
  }

  private async put(state?: string, persisted?: unknown): Promise<void> {
    const live = this.options.live();
    const record = buildAgentRecord({
      agent: this.options.agent,
      card: this.options.card,
      state: state ?? live.state,
      currentTaskId: live.currentTaskId,
      runId: this.options.runId,
      restarts: this.restarts,
      startedAt: this.startedAt,
      // a stopped agent's record says so by a heartbeat of 0
      heartbeatAt: state === "stopped" ? 0 : this.options.now(),
      heartbeatMs: this.options.heartbeatMs,
      completed: live.completed,
      failed: live.failed,
      snapshot: persisted ?? this.options.persistedSnapshot(),
      breaker: live.breaker,
      breakerSnapshot: live.breakerSnapshot,
      dedupSuppressed: this.dedupSuppressed,
    });
    await this.options.kv.put(this.options.agent.id, encode(record, this.options.codec));
  }
}
