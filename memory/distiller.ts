import { createHash } from "node:crypto";
import type { KV } from "@nats-io/kv";
import { z } from "zod";
import { FleetError, decode, encode, type Clock, type CodecName, type CompleteReply, type CompleteRequest, type SessionLogEntry, type TierName } from "../protocol/index.js";
import type { MemoryPoint, VectorStore } from "./vector-store.js";

/*
 * Nightly distillation: a day's session log becomes insights in MEMORY.md and points in the semantic store. Three stores
 * (KV, the vector store, MEMORY.md's KV key) cannot share a transaction, so "never half-applied" is had by plan-then-apply:
 * the model's answer and everything derived from it are stored first (`distilled.<agentId>.<day>`, status "planned"),
 * then applied by steps that are each idempotent (upsert by stable ids, a merge that is a no-op on its own result,
 * pruning), then marked "applied". A retry of a planned or failed day re-applies the stored plan without asking the
 * model again, so it converges on exactly what the first attempt meant to write.
 */

const DAY_MS = 86_400_000;
/** a MEMORY.md line is read back into every prompt: it must stay one short line */
const MAX_LINE_CHARS = 300;
/** the day's log is cut to its newest entries beyond this, so one busy day cannot blow the capable tier's context */
const MAX_LOG_CHARS = 60_000;
const EMBED_BATCH = 256;
const MAX_CAS_ATTEMPTS = 3;
const PRUNE_PAGE = 500;

const oneLine = (s: string): string => s.replace(/\s+/g, " ").trim();
/** how two lines are compared: a bullet, case, spacing or a final full stop do not make a different fact */
const lineKey = (s: string): string => oneLine(s).replace(/^[-*]\s+/, "").replace(/\.$/, "").toLowerCase();

export const INSIGHT_KINDS = ["fact", "lesson", "decision", "insight"] as const;

const Line = z.string().transform(oneLine).pipe(z.string().min(1).max(MAX_LINE_CHARS));

/**
 * The model's answer. Every field is required and `replaces` is nullable rather than optional because OpenAI's strict
 * JSON-schema mode allows no optional fields; the length limits live only on the zod side (strict mode rejects them).
 */
export const DistillAnswer = z.object({
  insights: z.array(
    z.object({
      text: Line.describe(`one self-contained line, at most ${MAX_LINE_CHARS} characters`),
      kind: z.enum(INSIGHT_KINDS),
      replaces: z.string().nullable().describe("the MEMORY.md line, exactly as written, that this contradicts; else null")
        .transform((s) => (s === null ? undefined : oneLine(s) || undefined)),
    }).strict(),
  ),
}).strict();

const { $schema: _dialect, ...RESPONSE_SCHEMA } = z.toJSONSchema(DistillAnswer, { io: "input" });

export const Insight = z.object({ text: z.string(), kind: z.enum(INSIGHT_KINDS), replaces: z.string().optional() });
export type Insight = z.infer<typeof Insight>;
export const Replacement = z.object({ old: z.string(), new: z.string(), at: z.number() });
export type Replacement = z.infer<typeof Replacement>;

/** The run record in the memory bucket: what was planned, whether it is applied, and why the last attempt failed. */
export const DistillRecord = z.object({
  agentId: z.string(),
  day: z.string(),
  status: z.enum(["empty", "planned", "applied", "failed"]),
  attempts: z.number().int().nonnegative(),
  updatedAt: z.number(),
  plan: z.object({
    plannedAt: z.number(),
    servedTier: z.string(),
    entries: z.number().int().nonnegative(),
    insights: z.array(Insight),
    baseRevision: z.number(),
    lines: z.array(z.string()),
    added: z.array(z.string()),
    replaced: z.array(Replacement),
    dropped: z.array(z.string()),
    pointIds: z.array(z.string()),
  }).optional(),
  pruned: z.number().int().nonnegative().optional(),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
});
export type DistillRecord = z.infer<typeof DistillRecord>;
type Plan = NonNullable<DistillRecord["plan"]>;

export interface DistillLog {
  read(agentId: string, day: string): Promise<SessionLogEntry[]>;
}
export interface DistillMemory {
  read(agentId: string): Promise<{ lines: string[]; revision: number; replaced: Replacement[] }>;
  write(agentId: string, lines: readonly string[], expectedRevision: number, replaced?: readonly Replacement[]): Promise<number>;
}
export interface DistillRouter {
  complete(request: CompleteRequest): Promise<Pick<CompleteReply, "parsed" | "servedTier">>;
  embed(agentId: string, texts: string[]): Promise<{ vectors: number[][] }>;
}
export interface DistillerDeps {
  log: DistillLog;
  memory: DistillMemory;
  store: VectorStore;
  router: DistillRouter;
  /** the memory bucket: the run record lives beside MEMORY.md */
  kv: Pick<KV, "get" | "put">;
  maxLines: number;
  staleDays: number;
  clock: Clock;
  codec?: CodecName;
  /** the tier the distillation asks for (`memory.distillTier`); capable when omitted */
  tier?: TierName | undefined;
}

export interface DistillResult {
  agentId: string;
  day: string;
  status: "applied" | "empty";
  /** the day had been distilled before: nothing was asked or written now */
  alreadyDone: boolean;
  /** false when the day was done or a stored plan was re-applied */
  modelCalled: boolean;
  entries: number;
  insights: Insight[];
  added: string[];
  replaced: Replacement[];
  /** lines dropped (oldest first) to keep MEMORY.md within its cap */
  dropped: string[];
  pruned: number;
}

/** `memory.distillTier`'s default: the day's log is long and its insights need judgment, but not a power tier's */
export const DEFAULT_DISTILL_TIER: TierName = "capable";

export const distillKey = (agentId: string, day: string): string => `distilled.${agentId}.${day}`;

/** The same (agent, day, insight) is the same point, so a re-run upserts over itself; stores map ids as they need. */
export function pointId(agentId: string, day: string, text: string): string {
  return `${agentId}.${day}.${createHash("sha256").update(lineKey(text)).digest("hex").slice(0, 32)}`;
}

/**
 * The new MEMORY.md. Deterministic and idempotent (merging the same insights into its own result changes nothing): an
 * insight already present adds nothing; one whose `replaces` matches a line takes that line's place and is recorded;
 * over the cap the oldest lines this merge did not add, replace or restate go first. At most `maxLines` insights are
 * taken, so a line an insight touched is never itself dropped (which a re-run would add back).
 */
export function mergeInsights(current: readonly string[], insights: readonly Insight[], maxLines: number, at: number) {
  const lines = current.map((text) => ({ text, touched: false }));
  const added: string[] = [];
  const replaced: Replacement[] = [];
  const find = (text: string) => lines.findIndex((l) => lineKey(l.text) === lineKey(text));
  for (const insight of insights.slice(0, maxLines)) {
    const present = find(insight.text);
    const old = insight.replaces === undefined ? -1 : find(insight.replaces);
    if (old >= 0 && old !== present) {
      replaced.push({ old: lines[old]!.text, new: insight.text, at });
      if (present >= 0) {
        lines[present]!.touched = true;
        lines.splice(old, 1);
      } else lines[old] = { text: insight.text, touched: true };
    } else if (present >= 0) {
      // restated today: dropping it for room would have a re-run add it back (and drop another)
      lines[present]!.touched = true;
    } else {
      lines.push({ text: insight.text, touched: true });
      added.push(insight.text);
    }
  }
  const dropped: string[] = [];
  while (lines.length > maxLines) {
    const oldest = Math.max(0, lines.findIndex((l) => !l.touched));
    dropped.push(...lines.splice(oldest, 1).map((l) => l.text));
  }
  return { lines: lines.map((l) => l.text), added, replaced, dropped };
}

/** Distils one agent's day. Throws a FleetError when it fails; the run record then says "failed" and keeps any plan. */
export async function distillDay(deps: DistillerDeps, agentId: string, day: string): Promise<DistillResult> {
  const codec = deps.codec ?? "msgpack";
  const key = distillKey(agentId, day);
  const previous = await readRecord(deps.kv, key, codec);
  if (previous && (previous.status === "applied" || previous.status === "empty")) return resultOf(previous, true, false);
  const attempts = (previous?.attempts ?? 0) + 1;
  const save = async (record: Omit<DistillRecord, "agentId" | "day" | "attempts" | "updatedAt">) => {
    const full: DistillRecord = { agentId, day, attempts, updatedAt: deps.clock.now(), ...record };
    await deps.kv.put(key, encode(full, codec));
    return full;
  };
  let plan = previous?.plan;
  try {
    const modelCalled = plan === undefined;
    if (plan === undefined) {
      const entries = await deps.log.read(agentId, day);
      if (entries.length === 0) return resultOf(await save({ status: "empty" }), false, false);
      plan = await makePlan(deps, agentId, day, entries, previous?.error && { attempt: attempts, reason: previous.error.message });
      await save({ status: "planned", plan });
    }
    const pruned = await applyPlan(deps, agentId, day, plan);
    return resultOf(await save({ status: "applied", plan, pruned }), false, modelCalled);
  } catch (err) {
    const error = FleetError.from(err);
    // the failure is what matters: a record that cannot be written either (NATS gone) leaves the previous one to retry
    await save({ status: "failed", ...(plan ? { plan } : {}), error: { code: error.code, message: error.message } }).catch(() => undefined);
    throw error;
  }
}

type Refused = { attempt: number; reason: string } | undefined;

async function makePlan(deps: DistillerDeps, agentId: string, day: string, entries: SessionLogEntry[], refused: Refused): Promise<Plan> {
  const memory = await deps.memory.read(agentId);
  const reply = await deps.router.complete({
    agentId,
    kind: "distillation",
    title: `distil the session log of ${day} into long-term memory`,
    tier: deps.tier ?? DEFAULT_DISTILL_TIER,
    messages: prompt(agentId, day, memory.lines, deps.maxLines, entries, refused),
    responseSchema: { name: "distillation", schema: RESPONSE_SCHEMA },
    maxOutputTokens: 4096,
  });
  const answer = DistillAnswer.safeParse(reply.parsed);
  if (!answer.success) {
    const first = answer.error.issues[0];
    throw new FleetError("CHECK_FAILED", `the distillation answer breaks its schema at ${first?.path.join(".") || "(root)"}: ${first?.message ?? "invalid"}`);
  }
  // duplicates would upsert one id twice; beyond the cap an insight could only be dropped again by the merge
  const seen = new Set<string>();
  const insights: Insight[] = [];
  for (const i of answer.data.insights) {
    if (seen.has(lineKey(i.text)) || insights.length >= deps.maxLines) continue;
    seen.add(lineKey(i.text));
    insights.push(i.replaces === undefined ? { text: i.text, kind: i.kind } : { text: i.text, kind: i.kind, replaces: i.replaces });
  }
  const plannedAt = deps.clock.now();
  const merged = mergeInsights(memory.lines, insights, deps.maxLines, plannedAt);
  return {
    plannedAt,
    servedTier: reply.servedTier,
    entries: entries.length,
    insights,
    baseRevision: memory.revision,
    ...merged,
    pointIds: insights.map((i) => pointId(agentId, day, i.text)),
  };
}

/** Each step is idempotent, so a plan applied twice (a crash before "applied" was recorded) ends where one would. */
async function applyPlan(deps: DistillerDeps, agentId: string, day: string, plan: Plan): Promise<number> {
  const texts = plan.insights.map((i) => i.text);
  const points: MemoryPoint[] = [];
  for (let start = 0; start < texts.length; start += EMBED_BATCH) {
    const batch = texts.slice(start, start + EMBED_BATCH);
    const { vectors } = await deps.router.embed(agentId, batch);
    if (vectors.length !== batch.length) throw new FleetError("INTERNAL", `the router embedded ${vectors.length} of ${batch.length} insights`);
    batch.forEach((_, j) => {
      const insight = plan.insights[start + j]!;
      points.push({
        id: plan.pointIds[start + j] ?? pointId(agentId, day, insight.text),
        vector: vectors[j]!,
        payload: { agentId, kind: insight.kind, text: insight.text, updatedAt: plan.plannedAt, source: day },
      });
    });
  }
  if (points.length > 0) await deps.store.upsert(points);
  await writeMemory(deps, agentId, plan);
  return prune(deps, agentId, new Set(plan.pointIds));
}

/**
 * Merges onto MEMORY.md as it is now rather than writing the planned lines blindly: an agent may have written it since
 * the plan, and a plan already applied merges to no change at all (so nothing is written or recorded twice).
 */
async function writeMemory(deps: DistillerDeps, agentId: string, plan: Plan): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const current = await deps.memory.read(agentId);
    const merged = mergeInsights(current.lines, plan.insights, deps.maxLines, plan.plannedAt);
    const unchanged = merged.lines.length === current.lines.length && merged.lines.every((l, i) => l === current.lines[i]);
    if (unchanged) return;
    try {
      await deps.memory.write(agentId, merged.lines, current.revision, merged.replaced);
      return;
    } catch (err) {
      if (!(err instanceof FleetError && err.code === "CONFLICT") || attempt >= MAX_CAS_ATTEMPTS) throw err;
    }
  }
}

/** Semantic memories of this agent not refreshed for `staleDays`; this plan's own points are never among them. */
async function prune(deps: DistillerDeps, agentId: string, keep: ReadonlySet<string>): Promise<number> {
  const updatedBefore = deps.clock.now() - deps.staleDays * DAY_MS;
  let pruned = 0;
  for (;;) {
    const page = await deps.store.list({ agentId, updatedBefore }, PRUNE_PAGE);
    const stale = page.map((h) => h.id).filter((id) => !keep.has(id));
    if (stale.length > 0) await deps.store.delete(stale);
    pruned += stale.length;
    // a short page was the last one; a page of only kept ids would otherwise come back forever
    if (page.length < PRUNE_PAGE || stale.length === 0) return pruned;
  }
}

function prompt(agentId: string, day: string, lines: readonly string[], maxLines: number, entries: readonly SessionLogEntry[], refused: Refused): CompleteRequest["messages"] {
  const shown: string[] = [];
  let chars = 0;
  for (const e of [...entries].sort((a, b) => b.at - a.at)) {
    const line = `[${new Date(e.at).toISOString().slice(11, 16)}Z ${e.kind}${e.taskId ? ` ${e.taskId}` : ""}] ${oneLine(e.text)}`;
    if (chars + line.length > MAX_LOG_CHARS && shown.length > 0) break;
    shown.unshift(line);
    chars += line.length + 1;
  }
  const omitted = entries.length - shown.length;
  // MEMORY.md and the day go in the system message: the router's cache compares only the last user message between
  // requests whose other messages are identical, so another day or another memory is never served a cached answer. A
  // retry names its attempt and why the last answer was refused, so it is not served the refused answer from the cache
  // (the router caches what passes its JSON-schema check, and our own validation is stricter).
  const system = [
    "You distil an agent's day into its long-term memory, MEMORY.md. From the day's log, extract the few durable",
    "facts, lessons, decisions and insights worth knowing beyond today, one self-contained line each, at most",
    `${MAX_LINE_CHARS} characters. Leave out what MEMORY.md already says and what only mattered today.`,
    "When a new fact contradicts a MEMORY.md line, set `replaces` to that line exactly as written; otherwise null.",
    "Answer with JSON only, matching the schema. An empty list is a fine answer for an uneventful day.",
    ...(refused ? [`This is attempt ${refused.attempt}; an earlier answer was refused: ${refused.reason}`] : []),
    "",
    `Agent: ${agentId}. Day: ${day}.`,
    `MEMORY.md (${lines.length} lines, at most ${maxLines}):`,
    ...(lines.length > 0 ? lines.map((l) => `- ${l}`) : ["(empty)"]),
  ].join("\n");
  const log = [`The session log of ${day}${omitted > 0 ? ` (the ${omitted} oldest entries omitted)` : ""}:`, ...shown].join("\n");
  return [{ role: "system", content: system }, { role: "user", content: log }];
}

async function readRecord(kv: Pick<KV, "get">, key: string, codec: CodecName): Promise<DistillRecord | undefined> {
  const entry = await kv.get(key);
  if (!entry || entry.operation !== "PUT") return undefined;
  const decoded = decode(DistillRecord, entry.value, { codec });
  // a record we cannot read is treated as absent: the day is distilled afresh, which is safe (every step is idempotent)
  return decoded.ok ? decoded.value : undefined;
}

function resultOf(record: DistillRecord, alreadyDone: boolean, modelCalled: boolean): DistillResult {
  const plan = record.plan;
  return {
    agentId: record.agentId,
    day: record.day,
    status: record.status === "empty" ? "empty" : "applied",
    alreadyDone,
    modelCalled,
    entries: plan?.entries ?? 0,
    insights: plan?.insights ?? [],
    added: plan?.added ?? [],
    replaced: plan?.replaced ?? [],
    dropped: plan?.dropped ?? [],
    pruned: record.pruned ?? 0,
  };
}
