export { WakeWebhook, type WakeWebhookOptions } from "./webhook.js";
export { consoleSender, OutboxDispatcher, type ChannelSender, type OutboxDispatcherOptions } from "./outbox-dispatcher.js";
export { ApprovalBridge, ApprovalDecisions, approvalText, ensureApprovalConsumer, isDecidable, NOT_ALLOWED_TEXT, type ApprovalBridgeOptions, type ApprovalChannel, type ApprovalDecisionsOptions, type DecideInput, type DecideOutcome } from "./approval-bridge.js";
export { parseTelegramButtonData, TelegramApprovals, telegramButtonData, type TelegramApprovalsOptions } from "./telegram-bridge.js";
export { DiscordApprovals, discordButtonId, discordPublicKey, parseDiscordButtonId, type DiscordApprovalsOptions } from "./discord-bridge.js";
export { consoleApprovals } from "./console-approvals.js";
export { decideAsOperator, type OperatorDecisionDeps, type OperatorDecisionInput } from "./operator-decision.js";
export { Dashboard, DashboardAuth, FleetMetrics, FleetReader, SESSION_COOKIE, type AgentRow, type DashboardOptions, type DeadLetterRow, type FleetBuckets, type TaskRow } from "./dashboard/index.js";
