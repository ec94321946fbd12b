import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadFleetConfig, type FleetConfig } from "../../config/index.js";
import type { UsageRecord } from "../../protocol/index.js";

/**
 * A fleet config with the reports, alerts, sweeper and estimates sections as the README shows them, loaded through the
 * real loader (so the README's example is one that loads).
 */
export function reportsConfig(extra = ""): FleetConfig {
  const dir = mkdtempSync(join(tmpdir(), "fleet-reports-"));
  const file = join(dir, "fleet.yaml");
  const tiers = ["nano", "workhorse", "power", "premium"].map((t) => `  ${t}: { model: m-${t}, inputPerM: 1, outputPerM: 2 }`).join("\n");
  writeFileSync(
    file,
    `fleet:
  name: test
  timeZone: Europe/Berlin
  dailyCapUsd: 10
  quietHours: { start: "00:00", end: "00:00" }
memory: { dir: ${JSON.stringify(join(dir, "memory"))} }
backups: { dir: ${JSON.stringify(join(dir, "backups"))} }
tiers:
${tiers}
  capable:
    model: m-capable
    inputPerM: 1
    outputPerM: 2
    deployments:
      - { id: cap-a, baseUrl: "http://127.0.0.1:9/v1" }
      - { id: cap-b, baseUrl: "http://127.0.0.1:9/v1" }
    rateLimit: { requestsPerMinute: 10, tokensPerMinute: 20000 }
agents:
  - id: atlas
    name: Atlas
    role: orchestrator
    layer: orchestration
    defaultTier: power
    cycleMinutes: 60
    dailyCapUsd: 1
    tools: ["*"]
    skills: [{ id: status-report, name: Status, description: status report, tags: [status] }]
  - id: scout
    name: Scout
    role: researcher
    layer: execution
    defaultTier: capable
    cycleMinutes: 60
    dailyCapUsd: 2
    tools: []
    skills: [{ id: research, name: Research, description: research, tags: [research] }]
principals:
  - { id: operator, channel: telegram, to: "ops-chat", timeZone: Europe/Berlin, quietHours: { start: "22:00", end: "07:00" } }
reports:
  weekly: { at: "09:00", day: mon, delivery: { channel: telegram, to: "ops-chat" } }
alerts:
  delivery: { channel: telegram, to: "ops-chat" }
  spendShares: [0.5, 0.8, 1]
  dlqGrowth: 3
  dlqWindowMinutes: 60
  premiumWaitMinutes: 30
sweeper:
  at: "08:00"
  delivery: { channel: telegram, to: "ops-chat" }
  staleHours: 24
  waitingHours: 12
${extra}`,
  );
  try {
    return loadFleetConfig(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

let calls = 0;
/** A USAGE record as the router publishes it. */
export function usage(overrides: Partial<UsageRecord>): UsageRecord {
  return {
    callId: `call-${++calls}`, agentId: "scout", kind: "research", requestedTier: "capable", servedTier: "capable",
    model: "m-capable", deploymentId: "cap-a", inputTokens: 1000, outputTokens: 100, cachedTokens: 0, costUsd: 0.01,
    latencyMs: 100, cacheHit: false, escalations: 0, fallbacks: 0, simulated: false, decisionReason: "default", ok: true,
    attempt: 0, at: 0, trigger: "operator", ...overrides,
  };
}
