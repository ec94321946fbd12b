import { z } from "zod";
import { strict } from "./strict-object.js";

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

/**
 * One channel's brand-safety policy (Sentinel's `brand_safety` rule, on every post and email before it goes out).
 * Words match whole words, case-insensitively; claims are case-insensitive regexes; links are http(s) URLs and `www.`
 * names in the text, whose hosts must be on `allowedLinkDomains` (exact, or "*.example.com" for subdomains) when it is
 * given; `maxLength` counts the body's characters; `requiredDisclaimer` must appear in the body (case and runs of
 * whitespace aside).
 */
export const BrandPolicy = strict({
  blockedWords: z.array(z.string().trim().min(1)).default([]),
  blockedClaims: z.array(Pattern).default([]),
  allowedLinkDomains: z.array(z.string().min(1)).optional(),
  maxLength: z.number().int().positive().optional(),
  requiredDisclaimer: z.string().trim().min(1).optional(),
});
export type BrandPolicy = z.infer<typeof BrandPolicy>;

/**
 * Policies by channel ("email", "telegram", …) and "*" for every channel. A channel's policy adds its words and claims
 * to those of "*" (a brand-wide ban holds everywhere); its link domains, length and disclaimer, when given, replace the
 * ones of "*".
 */
export const BrandSafetyConfig = strict({
  channels: z.record(z.union([z.literal("*"), ChannelName]), BrandPolicy).default({}),
});
export type BrandSafetyConfig = z.infer<typeof BrandSafetyConfig>;

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
  /** what posts and emails may say, per channel (no policy: the rule passes) */
  brandSafety: BrandSafetyConfig.prefault({}),
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

const LOOPBACK = new Set(["localhost", "127.0.0.1", "::1", "[::1]"]);
/** "ops@example.com" or "Fleet <ops@example.com>" */
const MAILBOX = /^(?:[^<>]*<\s*([^<>\s]+@[^<>\s]+)\s*>|([^<>\s]+@[^<>\s]+))$/;

/** The address part of a mailbox ("Fleet <ops@example.com>" → ops@example.com), or undefined when there is none. */
export function mailboxAddress(mailbox: string): string | undefined {
  const match = MAILBOX.exec(mailbox.trim());
  const address = match?.[1] ?? match?.[2];
  return address !== undefined && z.email().safeParse(address).success ? address : undefined;
}

/**
 * The SMTP server the email bridge sends OUTBOX email through. `security`: "tls" connects with TLS (port 465), "starttls"
 * upgrades a plain connection and refuses to go on without it (587), "none" never encrypts (a local relay or a dev
 * server; refused with a login to anything but this machine, since the password would cross the network in clear).
 */
export const EmailBridgeConfig = strict({
  host: z.string().min(1),
  /** default: 465 for tls, 587 for starttls, 25 for none */
  port: z.number().int().min(1).max(65535).optional(),
  security: z.enum(["tls", "starttls", "none"]).default("starttls"),
  /** the sender, "ops@example.com" or "Fleet <ops@example.com>"; its domain also names the Message-IDs */
  from: z.string().refine((value) => mailboxAddress(value) !== undefined, 'must be an address, "ops@example.com" or "Name <ops@example.com>"'),
  /** the SMTP login, when the server wants one */
  user: z.string().min(1).optional(),
  /** the NAME of the variable holding the login's password (read only when `user` is set) */
  passwordEnv: EnvName.default("SMTP_PASSWORD"),
  /** how long connecting, the greeting and each step of the conversation may take */
  timeoutSeconds: z.number().positive().max(120).default(30),
}).superRefine((value, ctx) => {
  if (value.security === "none" && value.user !== undefined && !LOOPBACK.has(value.host.toLowerCase())) {
    ctx.addIssue({ code: "custom", path: ["security"], message: `"none" would send the password for ${value.user} to ${value.host} unencrypted: use starttls or tls` });
  }
});
export type EmailBridgeConfig = z.infer<typeof EmailBridgeConfig>;

export const BridgesConfig = z.strictObject({
  telegram: TelegramBridgeConfig.optional(),
  discord: DiscordBridgeConfig.optional(),
  email: EmailBridgeConfig.optional(),
});
export type BridgesConfig = z.infer<typeof BridgesConfig>;
