import type { KV, KvEntry } from "@nats-io/kv";
import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { z } from "zod";
import { CompleteReply, decode, encode, FleetError, nowOf, type Clock } from "../protocol/index.js";

/*
 * The answers of a task's model steps (KV `answers`), so that a task redelivered after its agent died does not pay for a
 * call that was already made. A step is named by the caller: (agent, task, step), and a redelivered task makes the same
 * calls in the same order, so it names the same steps. The first call of a step claims the key with a KV create (only
 * one router can); the claim becomes the answer once the call succeeded, before the reply goes out. A repeat finds the
 * answer and is given it at no cost; a repeat that arrives while the first call is still under way (its agent died and
 * came back quickly) waits for it, bounded. A claim whose router died goes stale at `expiresAt` and is taken over by CAS,
 * so one router at a time holds it. A call that fails gives its claim up: nothing was paid for, the next try calls.
 */

const KEY_TOKEN = /^[A-Za-z0-9_-]{1,64}$/;

export const StepRecord = z.discriminatedUnion("state", [
  z.object({ state: z.literal("claimed"), callId: z.string(), expiresAt: z.number() }),
  z.object({ state: z.literal("answered"), callId: z.string(), at: z.number(), reply: CompleteReply }),
]);
export type StepRecord = z.infer<typeof StepRecord>;

export interface StepAnswersOptions {
  kv: KV;
  log: Logger;
  /** how long a claim holds before a router presumes its holder dead: the longest a call may take */
  claimTtlMs: number;
  /** how long a repeat waits for a claimed step's answer before it gives up with a retryable TIMEOUT (default 60 s) */
  maxWaitMs?: number;
  pollMs?: number;
  clock?: Clock;
}

/** What `begin` hands back: the stored answer of a repeat, or the claim this call now holds. */
export type StepBegin = { kind: "replay"; reply: CompleteReply; callId: string } | { kind: "claimed"; key: string; revision: number };

/** The step's key: `<agentId>.<taskId>.<step>`, the task id hashed when it is no key token (a client may choose it). */
export function stepKey(agentId: string, taskId: string, step: string): string {
  const task = KEY_TOKEN.test(taskId) ? taskId : `h-${createHash("sha256").update(taskId).digest("hex").slice(0, 32)}`;
  return `${agentId}.${task}.${step}`;
}

export class StepAnswers {
  private readonly clock: () => number;

  constructor(private readonly options: StepAnswersOptions) {
    this.clock = nowOf(options.clock);
  }

  /** Claims the step for this call, or finds its answer (waiting, bounded, for one under way elsewhere). */
  async begin(key: string, callId: string, options: { ownClaimMayBeLive?: boolean } = {}): Promise<StepBegin> {
    const waitUntil = this.clock() + (this.options.maxWaitMs ?? 60_000);
    for (let attempt = 0; ; attempt++) {
      const entry = await this.options.kv.get(key);
      const record = entry && entry.operation === "PUT" ? this.decodeOrReport(key, entry) : undefined;
      if (record?.state === "answered") return { kind: "replay", reply: record.reply, callId: record.callId };
      const now = this.clock();
      // a live claim of another call: wait for its answer. A claim under this callId is this call retried: after a
      // timeout (the router it first reached may have died) it is taken over like a stale one; resent only because the
      // caller reconnected, the first router is likely still calling, and taking over would pay twice: wait for it too
      const waitsForOwn = options.ownClaimMayBeLive === true;
      if (record?.state === "claimed" && (record.callId !== callId || waitsForOwn) && record.expiresAt > now) {
        if (now >= waitUntil) {
          throw new FleetError("TIMEOUT", `model step ${key} is being answered by another call (${record.callId}); try again later`);
        }
        await sleep(Math.min(this.options.pollMs ?? 100 * Math.min(10, attempt + 1), Math.max(1, waitUntil - now)));
        continue;
      }
      const claim = encode({ state: "claimed", callId, expiresAt: now + this.options.claimTtlMs } satisfies StepRecord, "json");
      try {
        // nothing there (or a delete marker): create fails if another router claimed it first; otherwise CAS over what we read
        const revision = entry === null ? await this.options.kv.create(key, claim) : await this.options.kv.update(key, claim, entry.revision);
        return { kind: "claimed", key, revision };
      } catch (err) {
        if (!isWrongRevision(err)) throw FleetError.from(err);
        // lost the race: read again and see whose claim it is
      }
    }
  }

  /** Keeps the answer of a paid call under its step, over this call's claim; before the reply goes out. */
  async answer(claim: Extract<StepBegin, { kind: "claimed" }>, callId: string, reply: CompleteReply): Promise<void> {
    const record: StepRecord = { state: "answered", callId, at: this.clock(), reply };
    try {
      await this.options.kv.update(claim.key, encode(record, "json"), claim.revision);
    } catch (err) {
      // another router took the claim over (ours outlived its TTL) and may call again: one double under that race
      this.options.log.warn({ err, key: claim.key, callId }, "step answer not kept: the claim was taken over");
    }
  }

  /** The call failed: nothing was paid, so the claim goes and the next try of the step calls the model. */
  async release(claim: Extract<StepBegin, { kind: "claimed" }>): Promise<void> {
    await this.options.kv.delete(claim.key, { previousSeq: claim.revision }).catch((err: unknown) => {
      this.options.log.warn({ err, key: claim.key }, "step claim not released; it expires on its own");
    });
  }

  /** A record that does not decode is reported and treated as absent: the step is claimed (by CAS) and paid again. */
  private decodeOrReport(key: string, entry: KvEntry): StepRecord | undefined {
    const decoded = decode(StepRecord, entry.value, { codec: "json" });
    if (decoded.ok) return decoded.value;
    this.options.log.error({ key, revision: entry.revision, reason: decoded.error.message }, "step answer record does not decode; the step is answered anew");
    return undefined;
  }
}

function isWrongRevision(err: unknown): boolean {
  return err instanceof Error && /wrong last sequence|key exists/i.test(err.message);
}
