import { z } from "zod";

/*
 * Governance in the fleet config: Sentinel's rules, the proposal windows, who approves on which channel, and the chat
 * bridges. Strict objects, like the rest of the config, so a misspelt key is an error at start.
 */

const EnvName = z.string().regex(/^[A-Z_][A-Z0-9_]*$/, "must be the NAME of an environment variable, e.g. TELEGRAM_BOT_TOKEN");
const ChannelName = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "must be a channel name (one subject token)");
const ToolName = z.string().regex(/^[a-z][a-z0-9_]*$/, "must be a tool name (lowercase, digits, \"_\")");
const HttpUrl = z.url({ protocol: /^https?$/, error: "must be an http(s) URL" });

/** A regex given as a string; refused at start when it does not compile. */
const Pattern = z.string().min(1).refine((source) => {
  try {
    new RegExp(source, "i");
    return true;
  } catch {
    return false;
  }
}, "not a valid regular expression");

export const SentinelConfig = z.strictObject({
  /** case-insensitive patterns no proposal's input may contain (checked on the JSON text of the input) */
  blockedPatterns: z.array(Pattern).default(["rm\\s+-rf\\s+/", "drop\\s+(table|database)", "--no-verify", "chmod\\s+777"]),
  /** the most proposals per agent, per tool, within one of the agent's cycles; tools not listed use `default` */
  rateLimits: z
    .strictObject({ default: z.number().int().min(1).default(10), perTool: z.record(ToolName, z.number().int().min(1)).default({}) })
    .prefault({}),
  /** the least share of an agent's daily cap that must be left for a proposal to run (0.05 = 5 %) */
  budgetHeadroom: z.number().min(0).max(1).default(0.05),
  /** PROPOSE and CONFIRM tools (external effects) are refused inside the fleet's quiet hours */
  quietHoursForExternal: z.boolean().default(true),
  /** hosts a tool's target (url, host, domain, recipient's domain) may name: exact, or "*.example.com" for subdomains */
  targetAllowList: z.array(z.string().min(1)).default(["localhost", "127.0.0.1", "::1", "*.localhost"]),
  /** the largest input, in bytes of its JSON text */
  maxInputBytes: z.number().int().positive().default(16_384),
  /** refuse inputs carrying personal data (email addresses, phone numbers, card numbers, IBANs) outside a tool's declared fields */
  personalDataCheck: z.boolean().default(true),
});
export type SentinelConfig = z.infer<typeof SentinelConfig>;

export const ApprovalsConfig = z.strictObject({
  /** where CONFIRM approval requests go; never a default: a fleet with CONFIRM tools and no channel is refused at start */
  channels: z.array(ChannelName).default([]),
  /** channels that also get the escalation notice (in addition to `channels`) */
  escalateTo: z.array(ChannelName).default([]),
  reminderHours: z.number().positive().default(12),
  escalationHours: z.number().positive().default(20),
  expiryHours: z.number().positive().default(24),
});
export type ApprovalsConfig = z.infer<typeof ApprovalsConfig>;

export const GovernanceConfig = z.strictObject({
  /** how long a PROPOSE tool's effect can be rolled back (`fleet rollback <id>`) */
  rollbackMinutes: z.number().positive().default(15),
  /** failed executions after which a proposal goes to dead_letter (and the DLQ) */
  maxExecutionAttempts: z.number().int().min(1).default(3),
  /** delay before re-trying a failed execution (the last entry repeats) */
  retrySeconds: z.array(z.number().nonnegative()).min(1).default([30, 120]),
  approvals: ApprovalsConfig.prefault({}),
  sentinel: SentinelConfig.prefault({}),
  /** a git repository `git_pull_build` may work on, by name, with its build command */
  repos: z.record(z.string().regex(/^[a-z][a-z0-9_-]*$/), z.strictObject({ dir: z.string().min(1), build: z.array(z.string().min(1)).min(1).optional() })).default({}),
});
export type GovernanceConfig = z.infer<typeof GovernanceConfig>;

export const TelegramBridgeConfig = z.strictObject({
  tokenEnv: EnvName.default("TELEGRAM_BOT_TOKEN"),
  /** the chat approval requests are posted to */
  chatId: z.union([z.string().min(1), z.number().int()]),
  /** Telegram user ids allowed to approve or reject; everyone else's button press is refused */
  approvers: z.array(z.union([z.string().min(1), z.number().int()]).transform(String)).min(1),
  /** the Bot API's root; only tests and self-hosted Bot API servers change it */
  apiRoot: HttpUrl.default("https://api.telegram.org"),
});
export type TelegramBridgeConfig = z.infer<typeof TelegramBridgeConfig>;

export const DiscordBridgeConfig = z.strictObject({
  botTokenEnv: EnvName.default("DISCORD_BOT_TOKEN"),
  /** the application's public key (hex), which signs every interaction Discord sends */
  publicKeyEnv: EnvName.default("DISCORD_PUBLIC_KEY"),
  channelId: z.string().min(1),
  approvers: z.array(z.string().min(1)).min(1),
  /** the interactions endpoint Discord calls (put it behind a TLS proxy) */
  port: z.number().int().min(0).max(65535).default(8788),
  host: z.string().default("127.0.0.1"),
  apiBase: HttpUrl.default("https://discord.com/api/v10"),
});
export type DiscordBridgeConfig = z.infer<typeof DiscordBridgeConfig>;

export const BridgesConfig = z.strictObject({
  telegram: TelegramBridgeConfig.optional(),
  discord: DiscordBridgeConfig.optional(),
});
export type BridgesConfig = z.infer<typeof BridgesConfig>;
