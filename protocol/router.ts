import { z } from "zod";
import { Trigger } from "./autonomy.js";
import { plainObject } from "./wire-types.js";

/**
 * The router's wire: what agents send to `fleet.router.<op>` and what comes back, and the USAGE record every model call
 * publishes. The router owns the model; a caller asks by intent (an explicit tier, an alias, or nothing) and gets told
 * which tier served it and why.
 */

/** The tiers, in order of capability (cheapest-to-run is a matter of prices in config, not of this order). */
export const TIER_NAMES = ["nano", "workhorse", "capable", "power", "premium"] as const;
export const TierName = z.enum(TIER_NAMES);
export type TierName = z.infer<typeof TierName>;

/**
 * A tool call the model asked for: OpenAI's `tool_calls[]` entry, flattened. `arguments` is the JSON text the model wrote,
 * unparsed: it is model output, and whoever runs the call parses and checks it.
 */
export const ModelToolCall = z.object({
  id: z.string().min(1).max(256),
  name: z.string().min(1).max(128),
  arguments: z.string(),
});
export type ModelToolCall = z.infer<typeof ModelToolCall>;

export const ChatMessage = z
  .object({
    role: z.enum(["system", "user", "assistant", "tool"]),
    /** may be "" on an assistant message that only calls tools */
    content: z.string(),
    name: z.string().optional(),
    /** assistant: the tool calls it made; the conversation goes on with one `tool` message per call */
    toolCalls: z.array(ModelToolCall).min(1).optional(),
    /** tool: the id of the call this message answers */
    toolCallId: z.string().min(1).max(256).optional(),
  })
  // Providers refuse these mix-ups with a 400 that would say nothing about whose mistake it was; refused here, it is the sender's.
  .refine((m) => m.toolCalls === undefined || m.role === "assistant", { message: "only an assistant message carries toolCalls", path: ["toolCalls"] })
  .refine((m) => m.toolCallId === undefined || m.role === "tool", { message: "only a tool message carries toolCallId", path: ["toolCallId"] });
export type ChatMessage = z.infer<typeof ChatMessage>;

/** What decides the tier of a step. `task kind` scopes the cache and the cost report ("research", "health-check", ...). */
export const RouteRequest = z.object({
  agentId: z.string().regex(/^[a-z][a-z0-9-]{0,31}$/),
  taskId: z.string().optional(),
  kind: z.string().max(64).optional(),
  /** the step in a few words (a task title); pattern rules and the classifier read it */
  title: z.string().max(2000),
  tier: TierName.optional(),
  alias: z.string().optional(),
  /** who named the tier or alias: the task, the skill, a pipeline step, a duty or a cron job (recorded in the decision) */
  askedBy: z.enum(["task", "skill", "step", "duty", "cron"]).optional(),
});
export type RouteRequest = z.infer<typeof RouteRequest>;

export const BudgetState = z.enum(["normal", "downgraded", "nanoOnly"]);
export type BudgetState = z.infer<typeof BudgetState>;

/** `local-classifier`: the in-process model learned from labelled titles; `classifier`: the nano-tier model call. */
export const RouteReason = z.enum(["explicit", "alias", "rule", "local-classifier", "classifier", "default"]);
export type RouteReason = z.infer<typeof RouteReason>;

export const RouteDecision = z.object({
  /** the tier the policy chose, before the budget had its say */
  requestedTier: TierName,
  /** the tier that will be asked first, after any budget downgrade */
  tier: TierName,
  reason: RouteReason,
  /** why, in words: the rule that matched, the alias, the classifier's answer */
  detail: z.string(),
  budgetState: BudgetState,
  /** the tiers tried after `tier` when its provider fails: only ever more expensive ones */
  fallbackChain: z.array(TierName),
  /** the alias that was asked for, if any */
  alias: z.string().optional(),
  /** who named the tier or alias (RouteRequest.askedBy) */
  askedBy: z.string().optional(),
  /** how sure the classifier was (its best tier's probability, 0–1) when a classifier decided */
  confidence: z.number().min(0).max(1).optional(),
});
export type RouteDecision = z.infer<typeof RouteDecision>;

export const CompleteRequest = RouteRequest.extend({
  /** idempotency: a retried request with the same callId is not billed twice */
  callId: z.string().min(1).max(128).optional(),
  /**
   * this request was sent again only because the caller's connection was re-established while it was in flight: the
   * router that first took it is probably alive and still calling, so a step it claimed is waited for, not taken over
   * (a retry after a timeout, when that router may be dead, takes the claim over at once)
   */
  resentAfterReconnect: z.boolean().optional(),
  messages: z.array(ChatMessage).min(1),
  maxOutputTokens: z.number().int().positive().max(200_000).optional(),
  temperature: z.number().min(0).max(2).optional(),
  /** structured output: sent as the JSON-schema response format and validated on return (a failure escalates) */
  responseSchema: z.object({ name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/), schema: z.record(z.string(), z.unknown()) }).optional(),
  /** named deterministic checks the answer must pass (see router/checks.ts); a failure escalates the step */
  checks: z.array(z.string()).optional(),
  /** a tool-calling turn: passed through to the provider and never cached */
  tools: z.array(z.unknown()).optional(),
  /**
   * which model call of the task this is ("0", "1", ... in the order the task makes them): with taskId it names the
   * step, whose answer the router keeps for the task's lifetime, so a redelivered task that asks again is answered from
   * it and not billed twice
   */
  step: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).optional(),
  /** what started the task this call works for (protocol/autonomy.ts triggerOf): carried into its USAGE record */
  trigger: Trigger.optional(),
});
export type CompleteRequest = z.infer<typeof CompleteRequest>;

export const TokenUsage = z.object({
  inputTokens: z.number().int().nonnegative(),
  outputTokens: z.number().int().nonnegative(),
  cachedTokens: z.number().int().nonnegative(),
});
export type TokenUsage = z.infer<typeof TokenUsage>;

/** One step up after a failed check, or one step along the fallback chain after a failed provider. */
export const RouteStep = z.object({
  from: z.string(),
  to: z.string(),
  reason: z.string(),
});
export type RouteStep = z.infer<typeof RouteStep>;

export const CompleteReply = z.object({
  callId: z.string(),
  text: z.string(),
  /** the answer parsed as JSON when a responseSchema was given */
  parsed: z.unknown().optional(),
  servedTier: TierName,
  model: z.string(),
  deploymentId: z.string(),
  /** true when no model was called: the simulated provider estimated the tokens and the cost */
  simulated: z.boolean(),
  usage: TokenUsage,
  costUsd: z.number().nonnegative(),
  cacheHit: z.boolean(),
  escalations: z.array(RouteStep),
  fallbacks: z.array(RouteStep),
  decision: RouteDecision,
  latencyMs: z.number().nonnegative(),
  /** the tools the model asked to call instead of (or besides) answering; `text` may then be "" */
  toolCalls: z.array(ModelToolCall).min(1).optional(),
  /**
   * the step's answer kept from an earlier call (its callId and costUsd are that call's): this request called no model,
   * charged nothing and published no USAGE record
   */
  replayed: z.boolean().optional(),
});
export type CompleteReply = z.infer<typeof CompleteReply>;

export const EmbedRequest = z.object({
  agentId: z.string().regex(/^[a-z][a-z0-9-]{0,31}$/),
  texts: z.array(z.string()).min(1).max(256),
});
export type EmbedRequest = z.infer<typeof EmbedRequest>;

export const EmbedReply = z.object({
  vectors: z.array(z.array(z.number())),
  model: z.string(),
  simulated: z.boolean(),
});
export type EmbedReply = z.infer<typeof EmbedReply>;

/** `usage`: today's spend against the caps, as the budget chart sees it. */
export const UsageQuery = plainObject(z.object({ agentId: z.string().optional() }));
export type UsageQuery = z.infer<typeof UsageQuery>;

export const BudgetView = z.object({
  spentUsd: z.number(),
  reservedUsd: z.number(),
  capUsd: z.number(),
  state: BudgetState,
});
export type BudgetView = z.infer<typeof BudgetView>;

export const UsageReply = z.object({
  /** the fleet's day (yyyy-mm-dd in its time zone) the counters belong to */
  day: z.string(),
  fleet: BudgetView,
  agents: z.record(z.string(), BudgetView),
  /** calls waiting for a premium provider to come back (premium never falls back) */
  waiting: z.array(z.object({ callId: z.string(), agentId: z.string(), since: z.number(), nextAttemptAt: z.number() })),
});
export type UsageReply = z.infer<typeof UsageReply>;

/** The USAGE record (`fleet.usage.<agentId>.<servedTier>`), one per model call, including cache hits and failures. */
export const UsageRecord = z.object({
  callId: z.string(),
  agentId: z.string(),
  taskId: z.string().optional(),
  kind: z.string().optional(),
  requestedTier: TierName,
  servedTier: TierName,
  model: z.string(),
  deploymentId: z.string(),
  inputTokens: z.number().int().nonnegative(),
  outputTokens: z.number().int().nonnegative(),
  cachedTokens: z.number().int().nonnegative(),
  costUsd: z.number().nonnegative(),
  latencyMs: z.number().nonnegative(),
  cacheHit: z.boolean(),
  escalations: z.number().int().nonnegative(),
  fallbacks: z.number().int().nonnegative(),
  simulated: z.boolean(),
  decisionReason: RouteReason,
  ok: z.boolean(),
  error: z.string().optional(),
  /** which call of the step this was (0 = first; escalations and fallbacks count up); with callId it dedups the publish */
  attempt: z.number().int().nonnegative(),
  /** epoch ms */
  at: z.number(),
  /** what started the task (operator, cron, duty, ...): the weekly report groups work by it; absent on older records */
  trigger: Trigger.optional(),
  /** the task's title (its first line, clipped): the weekly report names its most expensive tasks by it */
  title: z.string().max(200).optional(),
});
export type UsageRecord = z.infer<typeof UsageRecord>;

/** `teach` (the operator only): this title calls for this tier, from now on, in every router. */
export const TeachRequest = z.object({
  title: z.string().min(1).max(2000),
  tier: TierName,
});
export type TeachRequest = z.infer<typeof TeachRequest>;

export const TeachReply = z.object({
  title: z.string(),
  tier: TierName,
  /** what the router would have decided before the lesson (the classifier's verdict, or nothing) */
  before: z.object({ tier: TierName, confidence: z.number() }).optional(),
  /** how many labels the local classifier learns from now: files plus what the fleet learned */
  labels: z.number().int().nonnegative(),
});
export type TeachReply = z.infer<typeof TeachReply>;
