/*
 * Real servers that tests and benchmarks both start: a nats-server on a free port, a scripted OpenAI-compatible server,
 * a router fleet on them. Its own folder because bench/ must not import test/, and none of this belongs in production.
 */
export { NatsServer } from "./nats-server.js";
export { NatsCluster } from "./nats-cluster.js";
export { NetHosts } from "./net-hosts.js";
export { OpenAIServer, type RecordedRequest, type ScriptedAnswer } from "./openai-server.js";
export { routerFleetConfig, routerFleetYaml, startTestRouter, usageRecords, type RouterFleetOptions } from "./router-fleet.js";
export { answerBySchema, minimalInstance } from "./schema-answer.js";
