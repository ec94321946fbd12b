import type { KV } from "@nats-io/kv";
import { z } from "zod";
import { decode, encode } from "../protocol/index.js";

/*
 * Premium never falls back: a premium step whose provider fails waits and is retried on a schedule. The wait is kept in
 * KV (bucket `budgets`, keys `waiting.<callId>`) rather than in one router's memory, so the schedule advances whichever
 * router the retry reaches, and `fleet costs` shows the operator every waiting call.
 */
export const WaitingCall = z.object({
  callId: z.string(),
  agentId: z.string(),
  since: z.number(),
  attempts: z.number().int().min(1),
  nextAttemptAt: z.number(),
  lastError: z.string(),
});
export type WaitingCall = z.infer<typeof WaitingCall>;

const PREFIX = "waiting.";

export class WaitingCalls {
  constructor(
    private readonly kv: KV,
    private readonly retryDelaysMs: readonly number[],
  ) {}

  private key(callId: string): string {
    // call ids are free text from callers; KV keys are not
    return PREFIX + callId.replace(/[^A-Za-z0-9_=-]/g, "_");
  }

  async get(callId: string): Promise<WaitingCall | undefined> {
    const entry = await this.kv.get(this.key(callId));
    if (!entry || entry.operation !== "PUT") return undefined;
    const decoded = decode(WaitingCall, entry.value);
    return decoded.ok ? decoded.value : undefined;
  }

  /** Records one more failed attempt and returns when the next one is due. */
  async failed(callId: string, agentId: string, error: string, now: number): Promise<WaitingCall> {
    const previous = await this.get(callId);
    const attempts = (previous?.attempts ?? 0) + 1;
    const delay = this.retryDelaysMs[Math.min(attempts - 1, this.retryDelaysMs.length - 1)] ?? 60_000;
    const record: WaitingCall = { callId, agentId, since: previous?.since ?? now, attempts, nextAttemptAt: now + delay, lastError: error };
    await this.kv.put(this.key(callId), encode(record, "msgpack"));
    return record;
  }

  async done(callId: string): Promise<void> {
    await this.kv.delete(this.key(callId));
  }

  async list(): Promise<WaitingCall[]> {
    const calls: WaitingCall[] = [];
    const keys = await this.kv.keys(`${PREFIX}>`);
    for await (const key of keys) {
      const entry = await this.kv.get(key);
      if (!entry || entry.operation !== "PUT") continue;
      const decoded = decode(WaitingCall, entry.value);
      if (decoded.ok) calls.push(decoded.value);
    }
    return calls;
  }
}
