export { WakeWebhook, type WakeWebhookOptions } from "./webhook.js";
