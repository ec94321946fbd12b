import { z } from "zod";
import { TIER_NAMES, TierName, Trigger } from "../protocol/index.js";
import { DEFAULT_ALIASES } from "./aliases.js";
import { crossFieldRules } from "./cross-field-rules.js";
import { BridgesConfig, GovernanceConfig } from "./governance-schema.js";
import { Layer } from "./layer.js";
import { DashboardConfig } from "./dashboard-schema.js";
import { TelemetryConfig } from "./telemetry-schema.js";
import { GatewayConfig } from "./gateway-schema.js";
import { DutyConfig, Interval, PipelineConfig } from "./pipeline-schema.js";
import { EventsConfig, PlanningConfig } from "./planning-schema.js";
import { McpServersConfig } from "./mcp-schema.js";
import { PeersConfig } from "./peers-schema.js";
import { CronExpression } from "./schedule.js";
import { strict } from "./strict-object.js";
import { AlertsConfig, RateLimit, ReportsConfig, SweeperConfig } from "./reports-schema.js";

/*
 * The fleet config: the single source of truth for what a fleet is. Every object is strict, so a typo in a key is an
 * error at boot rather than a silently ignored setting. The cross-field rules (config/cross-field-rules.ts) run as one
 * refinement at the end, so they are reported together with the field errors, not only once the fields are fixed.
 */

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return true;
  } catch (err) {
    if (err instanceof RangeError) return false;
    throw err;
  }
}

const MIB = 1024 * 1024;

/** A name that is used as one NATS subject token: no dots, wildcards or whitespace. */
const SubjectToken = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1-64 letters, digits, '-' or '_' (one subject token)");

export { TIER_NAMES, TierName };

export { DEFAULT_ALIASES, Layer };

const HourMinute = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, "must be HH:MM (24 h)");

/**
 * Which model work runs inside quiet hours anyway (besides a task whose `metadata.work.urgent` is true): work naming
 * one of `tiers` (a tier or an alias, as the task's `metadata.work.tier` or a pipeline step names it), started by one of
 * `triggers` (`metadata.work.trigger`), or whose title contains one of `titles` (case-insensitive). Empty by default:
 * nothing but explicitly urgent work wakes the fleet at night.
 */
export const UrgentPolicy = strict({
  tiers: z.array(z.string().min(1)).default([]),
  triggers: z.array(Trigger).default([]),
  titles: z.array(z.string().min(1)).default([]),
});
export type UrgentPolicy = z.infer<typeof UrgentPolicy>;

export const FleetSettings = strict({
  name: SubjectToken,
  prefix: SubjectToken.default("fleet"),
  timeZone: z.string().refine(isTimeZone, "not an IANA time zone (e.g. Europe/Berlin, UTC)"),
  dailyCapUsd: z.number().positive(),
  codec: z.enum(["msgpack", "json"]).default("msgpack"),
  // 8 MiB is the most a nats-server will accept as max_payload.
  maxPayloadBytes: z.number().int().positive().max(8 * MIB).default(MIB),
  // copies of every stream and bucket: 1 on one server, 3 on a three-node JetStream cluster (`fleet up --cluster 3`)
  replicas: z.union([z.literal(1), z.literal(3)]).default(1),
  // all model work (cycles, tasks, duties, cron jobs, delegations) waits inside this window of the fleet's time zone,
  // unless `urgent` says otherwise; tier-0 work (tools only) runs at any hour
  quietHours: strict({
    start: HourMinute.default("23:30"),
    end: HourMinute.default("06:30"),
    urgent: UrgentPolicy.prefault({}),
  }).prefault({}),
});
export type FleetSettings = z.infer<typeof FleetSettings>;

// The NAME of a variable holding a key; the value itself is read where the router is wired, never stored in config.
const EnvName = z.string().regex(/^[A-Z_][A-Z0-9_]*$/, "must be the NAME of an environment variable, e.g. OPENROUTER_API_KEY");
const HttpUrl = z.url({ protocol: /^https?$/, error: "must be an http(s) URL" });

/** One OpenAI-compatible endpoint serving a tier. A deployment that keeps failing cools down on its own. */
export const DeploymentConfig = strict({
  id: SubjectToken,
  baseUrl: HttpUrl,
  /** the model name at this endpoint; the tier's model when omitted */
  model: z.string().min(1).optional(),
  apiKeyEnv: EnvName.optional(),
  /** its share of the tier's calls when the tier's pool is `weighted` */
  weight: z.number().positive().default(1),
});
export type DeploymentConfig = z.infer<typeof DeploymentConfig>;

export const TierConfig = strict({
  model: z.string().min(1),
  inputPerM: z.number().nonnegative(),
  outputPerM: z.number().nonnegative(),
  cachedPerM: z.number().nonnegative().default(0),
  /** shorthand for one deployment; a tier without baseUrl or deployments runs on the simulated provider */
  baseUrl: HttpUrl.optional(),
  apiKeyEnv: EnvName.optional(),
  deployments: z.array(DeploymentConfig).min(1).optional(),
  /**
   * How the deployments share the tier's calls: `failover` (the first available, the next when it fails), `weighted`
   * (by each deployment's weight) or `least-busy` (the one with the fewest calls in flight in this router). Whatever
   * the pool picks first, the others are still tried when it fails or cools down.
   */
  pool: z.enum(["failover", "weighted", "least-busy"]).default("failover"),
  /** a provider that has not answered in this time has failed (and the step falls back) */
  timeoutSeconds: z.number().positive().default(60),
  /** the output budget of a call that names none; also the worst case a budget reservation assumes */
  maxOutputTokens: z.number().int().positive().default(1024),
  /** the tier's deployment pool's rate limits: the weekly report shows the headroom, alerts warn near them */
  rateLimit: RateLimit.optional(),
});
export type TierConfig = z.infer<typeof TierConfig>;

/**
 * How the router picks a tier and what it does when a tier fails. Chains are listed cheapest first and may only climb
 * in cost (checked below with the tiers' prices): a failed provider never falls back to a cheaper model.
 */

export const RoutingConfig = strict({
  /** intent names an agent may ask for instead of a tier, each with its own fallback chain */
  aliases: z
    .record(SubjectToken, strict({ tier: TierName, chain: z.array(TierName).optional() }))
    .default({})
    // the three every fleet speaks (pipelines, duties and skills name them) stay unless the config redefines them
    .transform((configured): Record<string, { tier: TierName; chain?: TierName[] | undefined }> => ({ ...DEFAULT_ALIASES, ...configured })),
  /** a step whose title contains any of the phrases (case-insensitive) goes to the tier; the first matching rule wins */
  rules: z.array(strict({ contains: z.array(z.string().min(1)).min(1), tier: TierName })).default([]),
  /** the tiers tried after a tier's provider fails, per tier; default: every more expensive tier, cheapest first */
  fallback: z.partialRecord(TierName, z.array(TierName)).default({}),
  /** a failed check escalates one tier at a time up to this tier */
  escalationCeiling: TierName.default("premium"),
  /** ask the nano tier to classify a step no rule matched (answers are cached per title) */
  classifier: z.boolean().default(true),
  /**
   * The in-process classifier learned from labelled titles ($0, microseconds): asked after the rules and before the nano
   * classifier, it decides when its confidence reaches `minConfidence`.
   */
  localClassifier: strict({
    enabled: z.boolean().default(true),
    /** the labels shipped with natsfleet (config/routing-labels.txt), written for the reference fleet's work */
    shippedLabels: z.boolean().default(true),
    /** more label files (`<tier> <title>` per line), relative to the config file */
    labels: z.array(z.string().min(1)).default([]),
    /** the probability of its best tier at or above which it decides; below, the nano classifier or the default does */
    minConfidence: z.number().gt(0).max(1).default(0.5),
    /** a step that escalated teaches its title the tier it ended on (kept in the labels bucket) */
    learnFromEscalations: z.boolean().default(true),
  }).prefault({}),
  cache: strict({
    enabled: z.boolean().default(true),
    /** cosine similarity of the whole request's embedding at or above which a cached answer is reused */
    similarity: z.number().min(0).max(1).default(0.97),
    ttlHours: z.number().positive().max(168).default(24),
  }).prefault({}),
  /** premium never falls back: a failed premium call waits and is retried after these delays (the last one repeats) */
  premiumRetrySeconds: z.array(z.number().positive()).min(1).default([30, 60, 120, 300, 600]),
  cooldown: strict({
    /** consecutive failures after which a deployment cools down */
    failures: z.number().int().min(1).default(3),
    seconds: z.number().positive().default(60),
    maxSeconds: z.number().positive().default(900),
  }).prefault({}),
  budget: strict({
    /** at this share of a daily cap every tier is downgraded one step cheaper */
    downgradeAt: z.number().gt(0).lt(1).default(0.8),
    /** at the cap only nano runs, and only until spend reaches cap × (1 + this); then nothing runs until midnight */
    nanoGrace: z.number().min(0).max(1).default(0.1),
    /** a reservation whose router died before settling it is released after this long */
    reservationTtlSeconds: z.number().positive().default(600),
    /** a busy router reserves its calls in memory from an allowance of this share of the smaller cap (0: every call reserves in KV) */
    allowanceShare: z.number().min(0).max(0.2).default(0.02),
  }).prefault({}),
  /** where embeddings come from; without it the router uses a local hashed embedding (labelled simulated) */
  embeddings: strict({ baseUrl: HttpUrl, model: z.string().min(1), apiKeyEnv: EnvName.optional() }).optional(),
});
export type RoutingConfig = z.infer<typeof RoutingConfig>;

export const SkillConfig = strict({
  id: z.string().regex(/^[a-z][a-z0-9-]{0,63}$/, "must be lowercase letters, digits and '-', starting with a letter"),
  name: z.string().min(1),
  description: z.string().min(1),
  // Tags are the keywords Atlas routes work by, so a skill without any could never be picked.
  tags: z.array(z.string().min(1)).min(1),
  examples: z.array(z.string().min(1)).optional(),
  /** the tier or alias (`triage`, `standard`, `heavy`, or one of routing.aliases) the skill's model steps ask for */
  tier: z.string().min(1).optional(),
});
export type SkillConfig = z.infer<typeof SkillConfig>;

// a built-in or module tool, or an MCP server's tool, all its tools or a glob of them: `files.read_file`, `files.*`, `files.read_*`
const ToolName = z.string().regex(/^[a-z][a-z0-9_]*(\.[a-z0-9_*-]{1,64})?$/, 'must be a tool name (lowercase, digits, "_"), "<mcp server>.<tool>" ("<server>.*" and globs allowed) or the wildcard "*"');

export const AgentConfig = strict({
  // Agent ids become subject tokens and KV keys, hence the narrow alphabet.
  id: z
    .string()
    .regex(/^[a-z][a-z0-9-]{0,31}$/, "must be 1-32 lowercase letters, digits or '-', starting with a letter")
    // the budget's fleet-wide counter is the key `<day>.fleet`: an agent of that name would share it
    .refine((id) => id !== "fleet", '"fleet" is reserved for the fleet-wide budget'),
  name: z.string().min(1),
  role: z.string().min(1),
  layer: Layer,
  defaultTier: TierName,
  cycleMinutes: z.number().positive(),
  dailyCapUsd: z.number().positive(),
  tools: z
    .array(z.union([z.literal("*"), ToolName]))
    .refine((tools) => !tools.includes("*") || tools.length === 1, 'the wildcard "*" must be the only entry'),
  skills: z.array(SkillConfig).min(1),
  /** the agent's own provider key per tier (the NAME of its variable), so spend and failures are attributable to it */
  apiKeys: z.partialRecord(TierName, EnvName).optional(),
  /** standing work: pipelines on a schedule */
  duties: z.array(DutyConfig).default([]),
  /** an agent this one sends a note of each completed task to (its inbox: the next cycle's plan input), e.g. atlas */
  reportsTo: z.string().min(1).optional(),
});
export type AgentConfig = z.infer<typeof AgentConfig>;

export const TasksConfig = strict({
  maxDeliver: z.number().int().min(1).default(5),
  ackWaitSeconds: z.number().positive().default(30),
  // nats-server takes backoff[n-1] as the ack wait of the nth delivery, so each entry must outlast a working-ack interval
  backoffSeconds: z.array(z.number().positive()).min(1).default([30, 60, 300]),
  workingAckSeconds: z.number().positive().default(10),
});
export type TasksConfig = z.infer<typeof TasksConfig>;

export const SupervisorConfig = strict({
  intensity: z.number().int().nonnegative().default(5),
  periodSeconds: z.number().positive().default(60),
  shutdownTimeoutSeconds: z.number().positive().default(10),
});
export type SupervisorConfig = z.infer<typeof SupervisorConfig>;

/**
 * A scheduled job. Its delivery is explicit: a channel and a recipient, or "none". A job without one is refused at start,
 * so a report can never land with a default recipient at 2 AM. It runs on one schedule (a daily local time `at`, an
 * interval `every` or a 5-field `cron` expression, all in the fleet's time zone) and does one thing: sends its agent a
 * `message` (a model step), runs a `tool` (tier 0, as the agent, within its allow list) or runs a `pipeline`.
 */
export const CronJob = strict({
  id: SubjectToken,
  agent: z.string(),
  /** local time in the fleet's time zone, DST-correct */
  at: HourMinute.optional(),
  /** weekdays it runs on (with `at`); all when omitted */
  days: z.array(z.enum(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])).min(1).optional(),
  /** an interval on a grid from the epoch: `15m` runs at :00, :15, :30 and :45 */
  every: Interval.optional(),
  /** minute hour day-of-month month day-of-week, in the fleet's time zone */
  cron: CronExpression.optional(),
  message: z.string().min(1).optional(),
  /** a tool the agent may use, run with `input` at tier 0 (no model) */
  tool: z.string().regex(/^[a-z][a-z0-9_]*(\.[a-z0-9_*-]+)?$/, 'must be a tool name (lowercase, digits, "_"), or "<server>.<tool>"').optional(),
  /** a pipeline of this config, run with `input` merged over the pipeline's own */
  pipeline: z.string().min(1).optional(),
  input: z.record(z.string(), z.unknown()).optional(),
  /** a tier name or alias for a pipeline's model steps that name none */
  tier: z.string().min(1).optional(),
  delivery: z.union([z.literal("none"), strict({ channel: SubjectToken, to: z.string().min(1) })], {
    error: 'required: a channel and recipient ({ channel, to }) or "none"',
  }),
}).superRefine((job, ctx) => {
  const report = (path: string, message: string) => ctx.addIssue({ code: "custom", path: [path], message });
  const schedules = (["at", "every", "cron"] as const).filter((k) => job[k] !== undefined);
  if (schedules.length !== 1) report(schedules[1] ?? "at", `give exactly one schedule: at, every or cron${schedules.length > 1 ? ` (found ${schedules.join(" and ")})` : ""}`);
  if (job.days !== undefined && job.at === undefined) report("days", "days go with at (a cron expression names its own weekdays)");
  const work = (["message", "tool", "pipeline"] as const).filter((k) => job[k] !== undefined);
  if (work.length !== 1) report(work[1] ?? "message", `give exactly one of message, tool or pipeline${work.length > 1 ? ` (found ${work.join(" and ")})` : ""}`);
  if (job.input !== undefined && job.message !== undefined) report("input", "input goes with tool or pipeline, not message");
  if (job.tier !== undefined && job.pipeline === undefined) report("tier", "tier goes with pipeline");
});
export type CronJob = z.infer<typeof CronJob>;

/**
 * A person who gets notifications, on one channel. Their own quiet hours (in their own time zone) defer a delivery to
 * the window's end; nothing is dropped.
 */
export const PrincipalConfig = strict({
  id: SubjectToken,
  channel: SubjectToken,
  to: z.string().min(1),
  timeZone: z.string().refine(isTimeZone, "not an IANA time zone (e.g. Europe/Berlin, UTC)").optional(),
  quietHours: strict({ start: HourMinute, end: HourMinute }).optional(),
});
export type PrincipalConfig = z.infer<typeof PrincipalConfig>;

/**
 * The agents' memory. The vector store is the embedded one (files under `dir`) unless `qdrantUrlEnv` names a variable
 * that is set. Token budgets bound what each tier may add to a prompt; MEMORY.md never exceeds `maxAgentLines`.
 */
export const MemoryConfig = strict({
  dir: z.string().min(1).default(".fleet/memory"),
  /** the NAME of the variable holding Qdrant's URL; when it is set, semantic memory lives in Qdrant */
  qdrantUrlEnv: EnvName.default("QDRANT_URL"),
  qdrantApiKeyEnv: EnvName.optional(),
  /** the collection (embedded directory or Qdrant collection) semantic memories go to */
  collection: SubjectToken.default("fleet-memory"),
  maxAgentLines: z.number().int().min(1).max(1000).default(100),
  /** structured knowledge files (people, projects, decisions, lessons), relative to the config file's directory */
  knowledgeDir: z.string().min(1).optional(),
  /** skill files (`<skill-id>.md`), loaded only when a task matches the skill; relative to the config file's directory */
  skillsDir: z.string().min(1).optional(),
  /** the most tokens each tier may add to one prompt */
  budgets: strict({
    agent: z.number().int().positive().default(1500),
    session: z.number().int().positive().default(1500),
    semantic: z.number().int().positive().default(800),
    reference: z.number().int().positive().default(600),
    skills: z.number().int().positive().default(800),
  }).prefault({}),
  /** how many semantic memories a prompt may draw on */
  semanticTopK: z.number().int().min(1).max(50).default(5),
  /** nightly distillation of the day's logs into MEMORY.md and the semantic store (inside quiet hours on purpose) */
  distillAt: HourMinute.default("23:00"),
  /** the tier the distillation asks for (a tier name); the router may still downgrade it for a spent budget */
  distillTier: TierName.default("capable"),
  /** semantic memories not recalled or refreshed for this long are pruned by distillation */
  staleDays: z.number().positive().default(90),
});
export type MemoryConfig = z.infer<typeof MemoryConfig>;

/** The nightly backup the scheduler writes (inside quiet hours on purpose); `fleet backup` does the same by hand. */
export const BackupsConfig = strict({
  at: HourMinute.default("02:00"),
  dir: z.string().min(1).default(".fleet/backups"),
  keep: z.number().int().min(1).default(7),
});
export type BackupsConfig = z.infer<typeof BackupsConfig>;

/** The HTTP endpoint that turns inbound events into wake-ups (`POST /wake/<agent>`); off unless configured. */
export const WebhookConfig = strict({
  port: z.number().int().min(0).max(65535),
  host: z.string().default("127.0.0.1"),
  // the NAME of the variable holding the bearer token callers must send; without it, the endpoint is open (local use)
  tokenEnv: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, "must be the NAME of an environment variable").optional(),
});
export type WebhookConfig = z.infer<typeof WebhookConfig>;

/**
 * The business API the CRM, CMS, analytics and SEO tools call: the stand-in (`fleet run standin` serves it at this URL's
 * port) or a service speaking the same JSON API in front of the real systems.
 */
export const BusinessConfig = strict({
  url: HttpUrl,
  /** `fleet up` runs the stand-in (`fleet run standin`) at `url` as one of its processes */
  standin: z.boolean().default(false),
});
export type BusinessConfig = z.infer<typeof BusinessConfig>;

export const FleetConfig = strict({
  fleet: FleetSettings,
  // Spelled out rather than z.record(TierName, ...) so a misspelt tier gets the same "did you mean" as any key.
  tiers: strict({
    nano: TierConfig,
    workhorse: TierConfig,
    capable: TierConfig,
    power: TierConfig,
    premium: TierConfig,
  } satisfies Record<TierName, typeof TierConfig>),
  routing: RoutingConfig.prefault({}),
  agents: z.array(AgentConfig).min(1),
  // prefault runs the defaults of the inner object, so an omitted section comes out fully populated.
  tasks: TasksConfig.prefault({}),
  supervisor: SupervisorConfig.prefault({}),
  cron: z.array(CronJob).default([]),
  /** named pipelines: duties, cron jobs, tasks and Atlas's plan run them by name */
  pipelines: z.record(z.string().regex(/^[a-z][a-z0-9-]{0,63}$/, "must be lowercase letters, digits and '-', starting with a letter"), PipelineConfig).default({}),
  webhook: WebhookConfig.optional(),
  backups: BackupsConfig.prefault({}),
  memory: MemoryConfig.prefault({}),
  principals: z.array(PrincipalConfig).default([]),
  governance: GovernanceConfig.prefault({}),
  bridges: BridgesConfig.prefault({}),
  /** Atlas's planning step: its tier, the one tier a failed check climbs to, WIP limit, where notices go */
  planning: PlanningConfig.prefault({}),
  /** event sources handled directly by an agent (and pipeline) instead of through Atlas's plan */
  events: EventsConfig.prefault({}),
  /** modules of the fleet's own tools (paths relative to this file), each exporting tools made with `defineTool` */
  toolModules: z.array(z.string().min(1)).default([]),
  business: BusinessConfig.optional(),
  mcpServers: McpServersConfig,
  peers: PeersConfig,
  dashboard: DashboardConfig.prefault({}),
  telemetry: TelemetryConfig.prefault({}),
  gateway: GatewayConfig.optional(),
  reports: ReportsConfig.prefault({}),
  alerts: AlertsConfig.optional(),
  sweeper: SweeperConfig.optional(),
}).superRefine(crossFieldRules, { when: () => true });
export type FleetConfig = z.infer<typeof FleetConfig>;

export function agentById(config: FleetConfig, id: string): AgentConfig | undefined {
  return config.agents.find((agent) => agent.id === id);
}
