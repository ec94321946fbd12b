import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type { Logger } from "pino";
import { hostname } from "node:os";
import { ApprovalBridge, ApprovalDecisions, consoleApprovals, consoleSender, DiscordApprovals, discordPublicKey, EmailBridge, OutboxDispatcher, smtpServerName, TelegramApprovals } from "../bridges/index.js";
import type { EmailBridgeConfig, FleetConfig } from "../config/index.js";
import { electionSafeJetStream, connectNats, FleetError, FleetNames, openFleetResources, type FleetResources } from "../protocol/index.js";
import { createsResources, loadConfig, natsConnection, rootLogger } from "./options.js";
import type { RunOptions } from "./run.js";
import { untilStopped, type RunningProcess } from "./until-stopped.js";

const CHANNELS = ["console", "telegram", "discord", "email"] as const;
type BridgeChannel = (typeof CHANNELS)[number];

function isBridgeChannel(channel: string | undefined): channel is BridgeChannel {
  return CHANNELS.some((c) => c === channel);
}

/**
 * `fleet run bridge <channel>`: `console` delivers the console channel's OUTBOX messages; `telegram` and `discord` show
 * CONFIRM approval requests in that chat and record the approvers' decisions; `email` sends the email channel's OUTBOX
 * messages through the SMTP server of `bridges.email`.
 */
export async function runBridge(channel: string | undefined, options: RunOptions, env: NodeJS.ProcessEnv): Promise<number> {
  if (!isBridgeChannel(channel)) {
    throw new FleetError("UNSUPPORTED_OPERATION", `no bridge for channel "${channel ?? ""}": fleet run bridge ${CHANNELS.join(" | ")}`);
  }
  const config = loadConfig(options, env);
  // secrets and settings are checked before anything connects, so a missing token fails at once and names its variable
  const email = channel === "email" ? emailSettings(config, env) : undefined;
  const chat = channel === "console" || channel === "email" ? undefined : channel === "telegram" ? telegramSettings(config, env) : discordSettings(config, env);
  const log = rootLogger(options, env, `bridge-${channel}`);
  const nc = await connectNats({ ...natsConnection(options, env), name: `fleet-bridge-${channel}`, logger: log });
  const names = new FleetNames(options.prefix ?? config.fleet.prefix);
  try {
    const resources = await openFleetResources(nc, names, { maxPayloadBytes: config.fleet.maxPayloadBytes, replicas: config.fleet.replicas, create: createsResources(options), log });
    if (chat) return await runApprovals(chat, { nc, names, config, log, supervised: options.supervised });
    if (email) return await runEmail(email, { nc, names, config, log, resources, supervised: options.supervised });
  } catch (err) {
    await nc.close();
    throw err;
  }
  const print = (line: string) => process.stdout.write(line + "\n");
  const js = electionSafeJetStream(jetstream(nc));
  const jsm = await jetstreamManager(nc);
  const clock = { now: () => Date.now() };
  const dispatcher = new OutboxDispatcher({
    js,
    jsm,
    names,
    sender: consoleSender(print),
    principals: config.principals,
    timeZone: config.fleet.timeZone,
    clock,
    log,
  });
  await dispatcher.start();
  // approval requests for the console channel are printed with the commands that decide them
  const approvals = config.governance.approvals.channels.includes("console") || config.governance.approvals.escalateTo.includes("console")
    ? new ApprovalBridge({ js, jsm, names, channel: consoleApprovals(print), codec: config.fleet.codec, clock, log })
    : undefined;
  await approvals?.start();
  return untilStopped(async () => {
    await dispatcher.stop();
    await approvals?.stop();
    await nc.drain();
  }, { log, supervised: options.supervised }).exitCode;
}

type ChatSettings =
  | { channel: "telegram"; token: string; chatId: string | number; approvers: string[]; apiRoot: string }
  | { channel: "discord"; botToken: string; publicKey: string; channelId: string; approvers: string[]; host: string; port: number; apiBase: string };

function secret(env: NodeJS.ProcessEnv, key: string, name: string): string {
  const value = env[name];
  if (!value) throw new FleetError("CONFIG_INVALID", `${key} names the environment variable ${name}, which is not set`);
  return value;
}

function telegramSettings(config: FleetConfig, env: NodeJS.ProcessEnv): ChatSettings {
  const t = config.bridges.telegram;
  if (!t) throw new FleetError("CONFIG_INVALID", "the config has no bridges.telegram section (bridges: { telegram: { chatId, approvers } })");
  return { channel: "telegram", token: secret(env, "bridges.telegram.tokenEnv", t.tokenEnv), chatId: t.chatId, approvers: t.approvers, apiRoot: t.apiRoot };
}

function discordSettings(config: FleetConfig, env: NodeJS.ProcessEnv): ChatSettings {
  const d = config.bridges.discord;
  if (!d) throw new FleetError("CONFIG_INVALID", "the config has no bridges.discord section (bridges: { discord: { channelId, approvers } })");
  const publicKey = secret(env, "bridges.discord.publicKeyEnv", d.publicKeyEnv);
  discordPublicKey(publicKey);
  return {
    channel: "discord",
    botToken: secret(env, "bridges.discord.botTokenEnv", d.botTokenEnv),
    publicKey,
    channelId: d.channelId,
    approvers: d.approvers,
    host: d.host,
    port: d.port,
    apiBase: d.apiBase,
  };
}

function emailSettings(config: FleetConfig, env: NodeJS.ProcessEnv): { config: EmailBridgeConfig; password: string | undefined } {
  const e = config.bridges.email;
  if (!e) throw new FleetError("CONFIG_INVALID", "the config has no bridges.email section (bridges: { email: { host, from } })");
  return { config: e, password: e.user !== undefined ? secret(env, "bridges.email.passwordEnv", e.passwordEnv) : undefined };
}

/** The email channel's OUTBOX through SMTP; a message in flight is finished (or handed back) before NATS drains. */
async function runEmail(
  email: { config: EmailBridgeConfig; password: string | undefined },
  ctx: { nc: NatsConnection; names: FleetNames; config: FleetConfig; log: Logger; resources: FleetResources; supervised: boolean | undefined },
): Promise<number> {
  const { nc, names, config, log } = ctx;
  const bridge = new EmailBridge({
    js: electionSafeJetStream(jetstream(nc)),
    jsm: await jetstreamManager(nc),
    names,
    codec: config.fleet.codec,
    config: email.config,
    password: email.password,
    deliveries: ctx.resources.kv.deliveries,
    principals: config.principals,
    timeZone: config.fleet.timeZone,
    clock: { now: () => Date.now() },
    log,
    host: hostname(),
  });
  await bridge.start();
  log.info({ server: smtpServerName(email.config), security: email.config.security }, "email bridge started");
  return untilStopped(async () => {
    await bridge.stop();
    await nc.drain();
  }, { log, supervised: ctx.supervised }).exitCode;
}

/** Chat intake stops first (no press is left half-recorded), then the request consumer, then NATS drains. */
async function runApprovals(
  chat: ChatSettings,
  ctx: { nc: NatsConnection; names: FleetNames; config: FleetConfig; log: Logger; supervised: boolean | undefined },
): Promise<number> {
  const { nc, names, config, log } = ctx;
  const js = electionSafeJetStream(jetstream(nc));
  const clock = { now: () => Date.now() };
  const codec = config.fleet.codec;
  const decisions = new ApprovalDecisions({ js, names, codec, approvers: chat.approvers, via: chat.channel, clock, log });
  let running: RunningProcess | undefined;
  const channel =
    chat.channel === "telegram"
      ? new TelegramApprovals({
          token: chat.token,
          chatId: chat.chatId,
          apiRoot: chat.apiRoot,
          decisions,
          log,
          // a revoked token or a second poller: exit non-zero so the supervisor restarts us and the error is seen
          onFatal: () => running?.shutdown("restart requested"),
        })
      : new DiscordApprovals({
          botToken: chat.botToken,
          publicKey: chat.publicKey,
          channelId: chat.channelId,
          apiBase: chat.apiBase,
          host: chat.host,
          port: chat.port,
          decisions,
          clock,
          log,
        });
  await channel.start();
  const jsm = await jetstreamManager(nc);
  const bridge = new ApprovalBridge({ js, jsm, names, channel, codec, clock, log });
  // the chat is also an OUTBOX channel: cron reports and channel posts addressed to it are delivered here
  const outbox = new OutboxDispatcher({ js, jsm, names, sender: channel, principals: config.principals, timeZone: config.fleet.timeZone, clock, log });
  try {
    await bridge.start();
    await outbox.start();
  } catch (err) {
    await channel.stop();
    throw err;
  }
  running = untilStopped(async () => {
    await channel.stop();
    await bridge.stop();
    await outbox.stop();
    await nc.drain();
  }, { log, supervised: ctx.supervised });
  return running.exitCode;
}
