import type { KV } from "@nats-io/kv";
import { z } from "zod";
import { decode, encode, ErrorPayload, FleetError, type CodecName } from "../protocol/index.js";
import { sha256Hex } from "./audit-hash.js";

/**
 * Tool calls by idempotency key (KV `toolruns`): the same key never has an effect twice. A call first creates a "started"
 * record (only one creator wins), runs, then records "done" with its output or "failed". A repeat of a done call gets the
 * recorded output; of a failed one, runs again; of a started one, waits while the first may still be running
 * (TOOL_IN_PROGRESS) and is refused for good once that run's deadline has passed (TOOL_OUTCOME_UNKNOWN): its effect may
 * or may not have happened, and guessing either way is worse than asking a person.
 */

export const ToolRunRecord = z.discriminatedUnion("state", [
  z.object({ state: z.literal("started"), host: z.string(), startedAt: z.number(), until: z.number() }),
  z.object({ state: z.literal("done"), host: z.string(), startedAt: z.number(), finishedAt: z.number(), output: z.unknown(), durationMs: z.number() }),
  z.object({ state: z.literal("failed"), host: z.string(), startedAt: z.number(), finishedAt: z.number(), error: ErrorPayload }),
]);
export type ToolRunRecord = z.infer<typeof ToolRunRecord>;

export type ToolRunMode = "run" | "rollback";

/**
 * Whose idempotency key it is: an agent's own (the caller the subject proves), or governance's, whose keys are proposal
 * ids. An agent's key is its own, so another agent reusing it neither gets that run's output nor rolls it back.
 */
export type ToolRunScope = { agent: string } | "governance";

/**
 * `<tool>.<mode>.<first 32 hex of sha256(scoped key)>`: any key (spaces, dots) becomes a valid KV key of fixed length.
 * An agent's key is hashed with its id (`<agent>:<key>`; ids have no ":"); governance's proposal-keyed runs are hashed
 * from the proposal id alone, as before, so a run recorded before agents' keys were scoped is still found. The two never
 * meet: a proposal id has no ":" either.
 */
export function toolRunKey(tool: string, mode: ToolRunMode, idempotencyKey: string, scope: ToolRunScope): string {
  const scoped = scope === "governance" ? idempotencyKey : `${scope.agent}:${idempotencyKey}`;
  return `${tool}.${mode}.${sha256Hex(scoped).slice(0, 32)}`;
}

/** This host now owns the run under `key` and must finish it. */
export interface ToolRunClaim {
  kind: "claimed";
  key: string;
  revision: number;
  startedAt: number;
}

export type ClaimResult = ToolRunClaim | { kind: "done"; output: unknown; durationMs: number };

export type ToolRunOutcome = { ok: true; output: unknown; durationMs: number } | { ok: false; error: FleetError };

/** a record can be taken over (failed → started) or vanish between our reads; a few rounds settle any such race */
const CLAIM_ATTEMPTS = 5;

export class ToolRuns {
  constructor(
    private readonly kv: KV,
    private readonly codec: CodecName,
    private readonly host: string,
    private readonly now: () => number,
  ) {}

  /**
   * Claims the run of `tool` under the idempotency key, or says why it must not run: the recorded result of a finished
   * run (done), TOOL_IN_PROGRESS, TOOL_OUTCOME_UNKNOWN. `runMs` bounds how long the claim's run may take.
   */
  async claim(tool: string, mode: ToolRunMode, idempotencyKey: string, scope: ToolRunScope, runMs: number): Promise<ClaimResult> {
    const key = toolRunKey(tool, mode, idempotencyKey, scope);
    for (let attempt = 0; attempt < CLAIM_ATTEMPTS; attempt++) {
      const startedAt = this.now();
      const started = encode({ state: "started", host: this.host, startedAt, until: startedAt + runMs } satisfies ToolRunRecord, this.codec);
      try {
        return { kind: "claimed", key, revision: await this.kv.create(key, started), startedAt };
      } catch (createError) {
        const existing = await this.read(key);
        if (!existing) continue;
        const { record, revision } = existing;
        switch (record.state) {
          case "done":
            return { kind: "done", output: record.output, durationMs: record.durationMs };
          case "failed":
            try {
              return { kind: "claimed", key, revision: await this.kv.update(key, started, revision), startedAt };
            } catch {
              continue;
            }
          case "started": {
            const now = this.now();
            if (now < record.until) {
              throw new FleetError("TOOL_IN_PROGRESS", `a call of ${tool} with this idempotency key is running on ${record.host}`, { retryAfterMs: record.until - now, cause: createError });
            }
            throw new FleetError(
              "TOOL_OUTCOME_UNKNOWN",
              `a call of ${tool} with this idempotency key started on ${record.host} at ${new Date(record.startedAt).toISOString()} and never finished; it is not run again`,
            );
          }
        }
      }
    }
    throw new FleetError("CONFLICT", `could not claim the run of ${tool} under its idempotency key after ${CLAIM_ATTEMPTS} attempts`);
  }

  /** Records how the claimed run ended. */
  async finish(claim: ToolRunClaim, outcome: ToolRunOutcome): Promise<void> {
    const finishedAt = this.now();
    const record: ToolRunRecord = outcome.ok
      ? { state: "done", host: this.host, startedAt: claim.startedAt, finishedAt, output: outcome.output, durationMs: outcome.durationMs }
      : { state: "failed", host: this.host, startedAt: claim.startedAt, finishedAt, error: outcome.error.toPayload() };
    await this.kv.update(claim.key, encode(record, this.codec), claim.revision);
  }

  /** The record of a run, if any (a rollback reads the output of the call it undoes). */
  async recorded(tool: string, mode: ToolRunMode, idempotencyKey: string, scope: ToolRunScope): Promise<ToolRunRecord | undefined> {
    return (await this.read(toolRunKey(tool, mode, idempotencyKey, scope)))?.record;
  }

  private async read(key: string): Promise<{ record: ToolRunRecord; revision: number } | undefined> {
    const entry = await this.kv.get(key);
    if (!entry || entry.operation !== "PUT") return undefined;
    const decoded = decode(ToolRunRecord, entry.value, { codec: this.codec });
    if (!decoded.ok) {
      // never run a call whose earlier run we cannot read: it may have had its effect
      throw new FleetError("TOOL_OUTCOME_UNKNOWN", `the run record ${key} does not decode: ${decoded.error.message}`, { cause: decoded.error });
    }
    return { record: decoded.value, revision: entry.revision };
  }
}
