import type { JetStreamClient } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { Logger } from "pino";
import { decode, encode, HeldTask, wireHeaders, type Clock, type CodecName, type FleetNames, type Hold, type TaskAssignment } from "../protocol/index.js";
import type { CycleScheduler } from "./cycle-scheduler.js";

export interface HeldWorkOptions {
  /** KV `held` */
  kv: KV;
  js: JetStreamClient;
  names: FleetNames;
  codec: CodecName;
  agentId: string;
  /** the runtime's one timer: a hold's release is an entry in it, due at the hold's `until` */
  scheduler: Pick<CycleScheduler, "schedule" | "cancel">;
  clock: Clock;
  log: Logger;
}

/** a release that failed (NATS away) is tried again this much later */
const RELEASE_RETRY_MS = 5_000;

/**
 * One agent's held work: an assignment whose model work must wait (quiet hours, a spent cap) is kept in KV `held` under
 * `<agentId>.<taskId>` and its message acked; at the hold's `until` the assignment is published on TASKS again and the
 * key deleted. Why not a nak with a delay: every nak is a delivery, so a task held a few times would reach max_deliver
 * and be dead-lettered, and the delay runs on the server's clock, not the fleet's (a simulated one in tests). Why not
 * keep the message in hand: the consumer takes one task at a time, so a held task would stop urgent and tier-0 work
 * behind it.
 *
 * Nothing is lost: the key is written before the message is acked (a crash in between redelivers the message, which is
 * held again under the same key); the assignment is published before the key is deleted (a crash in between publishes
 * it again at the next start, under the same message id, which the stream's duplicate window or the Task's terminal
 * state absorbs); and the delete is conditional on the revision released, so a newer hold of the same task stays.
 */
export class HeldWork {
  private readonly armed = new Set<string>();
  private stopped = false;

  constructor(private readonly options: HeldWorkOptions) {}

  private key(taskId: string): string {
    return `${this.options.agentId}.${taskId}`;
  }

  private timerKey(taskId: string): string {
    return `held:${this.options.agentId}:${taskId}`;
  }

  /** Keeps the assignment until `hold.until` and arms its release. Rejects when KV would not take it. */
  async hold(assignment: TaskAssignment, hold: Hold): Promise<void> {
    const record: HeldTask = { agentId: this.options.agentId, taskId: assignment.taskId, hold, since: this.options.clock.now(), assignment };
    await this.options.kv.put(this.key(assignment.taskId), encode(record, this.options.codec));
    this.arm(record.taskId, hold.until);
  }

  /** Arms the release of every assignment this agent had held (a restart loses no held work); returns how many. */
  async start(): Promise<number> {
    const records = await listHeld(this.options.kv, this.options.codec, this.options.agentId);
    for (const record of records) this.arm(record.taskId, record.hold.until);
    if (records.length > 0) this.options.log.info({ held: records.length }, "held work found; releases armed");
    return records.length;
  }

  stop(): void {
    this.stopped = true;
    for (const taskId of this.armed) this.options.scheduler.cancel(this.timerKey(taskId));
    this.armed.clear();
  }

  private arm(taskId: string, at: number): void {
    if (this.stopped) return;
    this.armed.add(taskId);
    this.options.scheduler.schedule(this.timerKey(taskId), at, () => {
      this.armed.delete(taskId);
      void this.release(taskId);
    });
  }

  /** Sends the assignment back to TASKS and forgets the hold; a hold that was renewed for later waits on. */
  private async release(taskId: string): Promise<void> {
    if (this.stopped) return;
    const log = this.options.log.child({ taskId });
    try {
      const entry = await this.options.kv.get(this.key(taskId));
      if (!entry || entry.operation !== "PUT") return;
      const decoded = decode(HeldTask, entry.value, { codec: this.options.codec });
      if (!decoded.ok) {
        // nothing could ever send it: keep it visible (fleet status lists keys it cannot read as such) and say so
        log.error({ err: decoded.error }, "held task record unreadable; not released");
        return;
      }
      const record = decoded.value;
      const now = this.options.clock.now();
      if (record.hold.until > now) return this.arm(taskId, record.hold.until);
      const msgId = `${taskId}:held:${record.since}`;
      await this.options.js.publish(this.options.names.task(this.options.agentId), encode(record.assignment, this.options.codec), {
        headers: wireHeaders(this.options.codec, msgId),
      });
      await this.options.kv.delete(this.key(taskId), { previousSeq: entry.revision }).catch((err: unknown) => {
        // a newer hold of the same task (it was released, taken and held again meanwhile) is not ours to delete
        log.debug({ err }, "held record changed since it was released; kept");
      });
      log.info({ reason: record.hold.reason, heldForMs: now - record.since }, "held task released");
    } catch (err) {
      log.warn({ err }, "held task not released; trying again shortly");
      this.arm(taskId, this.options.clock.now() + RELEASE_RETRY_MS);
    }
  }
}

/** Every held task (of one agent, or of all), oldest first: what `fleet status` shows. Unreadable records are skipped. */
export async function listHeld(kv: KV, codec: CodecName | undefined, agentId?: string): Promise<HeldTask[]> {
  const out: HeldTask[] = [];
  for await (const key of await kv.keys(agentId ? `${agentId}.>` : undefined)) {
    const entry = await kv.get(key).catch(() => null);
    if (!entry || entry.operation !== "PUT") continue;
    const decoded = decodeHeld(entry.value, codec);
    if (decoded) out.push(decoded);
  }
  return out.sort((a, b) => a.since - b.since);
}

function decodeHeld(bytes: Uint8Array, codec: CodecName | undefined): HeldTask | undefined {
  for (const c of codec ? [codec] : (["msgpack", "json"] as const)) {
    const d = decode(HeldTask, bytes, { codec: c });
    if (d.ok) return d.value;
  }
  return undefined;
}
