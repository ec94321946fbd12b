import type { JetStreamClient } from "@nats-io/jetstream";
import type { FleetConfig } from "../../config/index.js";
import type { CodecName, FleetNames, RiskLevel } from "../../protocol/index.js";
import type { ToolDefinition } from "../tool.js";
import { blockedTools } from "./blocked.js";
import { gitPullBuild } from "./git-pull-build.js";
import { hostChecks } from "./host-checks.js";
import { networkChecks } from "./network-checks.js";
import { channelPost, emailSend } from "./outbox-tools.js";

export interface ReferenceToolDeps {
  js: JetStreamClient;
  names: FleetNames;
  codec: CodecName;
  config: FleetConfig;
}

/**
 * The reference tools' risk levels, without building them: the broker's permissions (`fleet up`, `fleet creds`) are
 * written before any connection exists. A test keeps this equal to what `referenceTools` builds.
 */
export function referenceToolRisks(): Record<string, RiskLevel> {
  return {
    ...Object.fromEntries([...networkChecks, ...hostChecks, ...blockedTools].map((t) => [t.name, t.risk])),
    git_pull_build: "PROPOSE",
    channel_post: "PROPOSE",
    email_send: "CONFIRM",
  };
}

/** The reference catalogue: deterministic tools that work offline against local targets, one or more per risk level. */
export function referenceTools(deps: ReferenceToolDeps): ToolDefinition[] {
  return [
    ...networkChecks,
    ...hostChecks,
    gitPullBuild(deps.config.governance.repos),
    channelPost(deps),
    emailSend(deps),
    ...blockedTools,
  ];
}

export { blockedTools, bulkEmail, databaseDelete, moneyTransfer } from "./blocked.js";
export { gitPullBuild } from "./git-pull-build.js";
export { diskUsage, hostChecks, memoryUsage } from "./host-checks.js";
export { dnsLookup, httpCheck, networkChecks, portCheck, tlsExpiry } from "./network-checks.js";
export { channelPost, emailSend, type OutboxToolDeps } from "./outbox-tools.js";
