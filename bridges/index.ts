export { WakeWebhook, type WakeWebhookOptions } from "./webhook.js";
export { consoleSender, OutboxDispatcher, type ChannelSender, type OutboxDispatcherOptions } from "./outbox-dispatcher.js";
