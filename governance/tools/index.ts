import type { JetStreamClient } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { FleetConfig } from "../../config/index.js";
import type { CodecName, FleetNames, RiskLevel } from "../../protocol/index.js";
import type { ToolDefinition } from "../tool.js";
import { blockedTools } from "./blocked.js";
import { businessApi } from "./business-api.js";
import { businessReads } from "./business-reads.js";
import { businessWrites } from "./business-writes.js";
import { demoSiteRestart } from "./demo-site-restart.js";
import { dependencyAudit } from "./dependency-audit.js";
import { feedFetch } from "./feed-fetch.js";
import { fileIntegrity } from "./file-integrity.js";
import { gitPullBuild } from "./git-pull-build.js";
import { headersCheck } from "./headers-check.js";
import { hostChecks } from "./host-checks.js";
import { networkChecks } from "./network-checks.js";
import { channelPost, emailSend } from "./outbox-tools.js";
import { processStatus } from "./process-status.js";
import { seoAudit } from "./seo-audit.js";
import { ToolState } from "./tool-state.js";
import { uptimeCheck } from "./uptime-check.js";
import { webFetch } from "./web-fetch.js";
import { webhookPost } from "./webhook-post.js";

export interface ReferenceToolDeps {
  js: JetStreamClient;
  names: FleetNames;
  codec: CodecName;
  config: FleetConfig;
  /**
   * KV toolstate, where stateful tools (feed_fetch, uptime_check, file_integrity) remember between calls: a tool host
   * opens it; a process that only describes the tools (an agent, governance) has none, and a call there would say so
   */
  toolState?: KV | undefined;
}

/** The business API's tools (CRM, CMS, analytics, SEO), each by name and risk: they need `business.url` to be useful. */
export const BUSINESS_TOOL_RISKS: Readonly<Record<string, RiskLevel>> = {
  crm_read: "AUTO",
  lead_score: "AUTO",
  analytics_query: "AUTO",
  search_console_query: "AUTO",
  revenue_query: "AUTO",
  cms_read: "AUTO",
  keyword_lookup: "AUTO",
  serp_rank: "AUTO",
  email_draft: "AUTO+",
  cms_draft: "AUTO+",
  crm_update: "PROPOSE",
  meta_tags: "PROPOSE",
};

/**
 * The reference tools' risk levels, without building them: the broker's permissions (`fleet up`, `fleet creds`) are
 * written before any connection exists. A test keeps this equal to what `referenceTools` builds.
 */
export function referenceToolRisks(): Record<string, RiskLevel> {
  return {
    ...Object.fromEntries([...networkChecks, ...hostChecks, headersCheck, dependencyAudit, processStatus, webFetch, seoAudit, webhookPost, ...blockedTools].map((t) => [t.name, t.risk])),
    feed_fetch: "AUTO",
    uptime_check: "AUTO",
    file_integrity: "AUTO",
    ...BUSINESS_TOOL_RISKS,
    git_pull_build: "PROPOSE",
    demo_site_restart: "PROPOSE",
    channel_post: "PROPOSE",
    email_send: "CONFIRM",
  };
}

/** The reference catalogue: deterministic tools that work offline against local targets, one or more per risk level. */
export function referenceTools(deps: ReferenceToolDeps): ToolDefinition[] {
  const state = new ToolState(deps.toolState, deps.codec);
  const api = businessApi(deps.config.business?.url);
  return [
    ...networkChecks,
    ...hostChecks,
    headersCheck,
    uptimeCheck({ state }),
    feedFetch({ state }),
    webFetch,
    seoAudit,
    dependencyAudit,
    fileIntegrity({ state }),
    processStatus,
    ...businessReads(api),
    ...businessWrites(api),
    gitPullBuild(deps.config.governance.repos),
    demoSiteRestart,
    channelPost(deps),
    emailSend(deps),
    webhookPost,
    ...blockedTools,
  ];
}

export { blockedTools, bulkEmail, databaseDelete, moneyTransfer } from "./blocked.js";
export { gitPullBuild } from "./git-pull-build.js";
export { DEMO_SITE_CONTROL, demoSiteRestart } from "./demo-site-restart.js";
export { judgeHeaders, type HeaderVerdict } from "./headers-check.js";
export { diskUsage, hostChecks, memoryUsage } from "./host-checks.js";
export { dnsLookup, httpCheck, networkChecks, portCheck, tlsExpiry } from "./network-checks.js";
export { channelPost, emailSend, type OutboxToolDeps } from "./outbox-tools.js";
export { compareVersions, parseRange, parseVersion, satisfies } from "./semver-range.js";
export { ToolState } from "./tool-state.js";
