import type { KV } from "@nats-io/kv";
import { z } from "zod";
import { BudgetState, decode, encode, type CodecName } from "../protocol/index.js";
import { InboxNote, PlanNotice, PlannedAssignment } from "./atlas-plan.js";

/*
 * What Atlas keeps between cycles, in KV `plans` (Atlas is a singleton behind its lease, so plain puts suffice):
 * - `cursor`: per input, the stream sequence read up to, and the budget states last seen, so a restarted Atlas neither
 *   plans an input twice nor misses one;
 * - `notes`: inbox notes waiting for the next cycle (the chart hands them to whichever step runs first);
 * - `held`: assignments waiting for the work on their target to end;
 * - `plan.<id>`: each plan, with what was assigned, held, skipped or refused, and why.
 */

export const PlanCursor = z.object({
  findings: z.number().int().nonnegative().optional(),
  events: z.number().int().nonnegative().optional(),
  tasks: z.number().int().nonnegative().optional(),
  dlq: z.number().int().nonnegative().optional(),
  proposals: z.number().int().nonnegative().optional(),
  /** the fleet's day the budget states belong to: a new day starts them at normal again */
  budgetDay: z.string().optional(),
  budgets: z.record(z.string(), BudgetState).default({}),
});
export type PlanCursor = z.infer<typeof PlanCursor>;

export const PendingNotes = z.object({ notes: z.array(InboxNote) });

/** What a held assignment waits for: a task or a proposal on the same target. */
export const Blocker = z.object({
  kind: z.enum(["task", "proposal"]),
  id: z.string(),
  agentId: z.string(),
});
export type Blocker = z.infer<typeof Blocker>;

export const HeldAssignment = z.object({
  assignment: PlannedAssignment,
  planId: z.string(),
  reason: z.string(),
  blockedBy: Blocker,
  heldAt: z.number(),
});
export type HeldAssignment = z.infer<typeof HeldAssignment>;

export const HeldList = z.object({ held: z.array(HeldAssignment) });

export const PlanRecord = z.object({
  id: z.string(),
  at: z.number(),
  inputs: z.record(z.string(), z.number()),
  attempts: z.array(z.object({ tier: z.string(), servedTier: z.string(), costUsd: z.number(), failures: z.array(z.string()) })),
  assigned: z.array(z.object({ agent: z.string(), taskId: z.string(), what: z.string(), target: z.string().nullable(), pipeline: z.string().nullable(), state: z.string() })),
  held: z.array(z.object({ agent: z.string(), what: z.string(), target: z.string().nullable(), reason: z.string() })),
  skipped: z.array(z.object({ agent: z.string(), what: z.string(), reason: z.string() })),
  refused: z.array(z.object({ agent: z.string(), what: z.string(), reasons: z.array(z.string()) })),
  notices: z.array(PlanNotice),
});
export type PlanRecord = z.infer<typeof PlanRecord>;

/** At most this many notes wait; the oldest go first (they are in the session log by then). */
const MAX_NOTES = 50;

export class PlanBook {
  constructor(
    private readonly kv: KV,
    private readonly codec: CodecName,
  ) {}

  async cursor(): Promise<PlanCursor | undefined> {
    return this.read("cursor", PlanCursor);
  }

  async saveCursor(cursor: PlanCursor): Promise<void> {
    await this.kv.put("cursor", encode(cursor, this.codec));
  }

  async notes(): Promise<InboxNote[]> {
    return (await this.read("notes", PendingNotes))?.notes ?? [];
  }

  /** Keeps notes for the next cycle; one already kept (the same message id) is not kept twice. */
  async addNotes(notes: readonly InboxNote[]): Promise<void> {
    if (notes.length === 0) return;
    const kept = await this.notes();
    const known = new Set(kept.map((n) => n.messageId));
    const all = [...kept, ...notes.filter((n) => !known.has(n.messageId))];
    await this.kv.put("notes", encode({ notes: all.slice(Math.max(0, all.length - MAX_NOTES)) }, this.codec));
  }

  /** Drops the notes a plan has taken (by id): notes that came meanwhile stay. */
  async dropNotes(ids: ReadonlySet<string>): Promise<void> {
    if (ids.size === 0) return;
    const kept = await this.notes();
    await this.kv.put("notes", encode({ notes: kept.filter((n) => !ids.has(n.messageId)) }, this.codec));
  }

  async held(): Promise<HeldAssignment[]> {
    return (await this.read("held", HeldList))?.held ?? [];
  }

  async saveHeld(held: readonly HeldAssignment[]): Promise<void> {
    await this.kv.put("held", encode({ held }, this.codec));
  }

  async savePlan(record: PlanRecord): Promise<void> {
    await this.kv.put(`plan.${record.id}`, encode(record, this.codec));
  }

  async plan(id: string): Promise<PlanRecord | undefined> {
    return this.read(`plan.${id}`, PlanRecord);
  }

  private async read<S extends z.ZodType>(key: string, schema: S): Promise<z.infer<S> | undefined> {
    const entry = await this.kv.get(key);
    if (!entry || entry.operation !== "PUT") return undefined;
    const decoded = decode(schema, entry.value, { codec: this.codec });
    // a record that no longer decodes is started afresh rather than stopping every cycle
    return decoded.ok ? decoded.value : undefined;
  }
}
