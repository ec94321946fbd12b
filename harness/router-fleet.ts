import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino } from "pino";
import { parseFleetConfig, type FleetConfig } from "../config/index.js";
import { decode, FleetNames, UsageRecord, type Clock } from "../protocol/index.js";
import { startRouter, type RunningRouter } from "../router/index.js";

/**
 * A small fleet whose tiers point at a scripted OpenAI server (`baseUrl`), with the reference prices, so the price ladder
 * is nano < capable < workhorse < power < premium. `extra` is YAML appended under `routing:` and per-agent overrides.
 */
export interface RouterFleetOptions {
  baseUrl: string | undefined;
  prefix: string;
  fleetCapUsd?: number;
  scoutCapUsd?: number;
  routing?: string;
  tierExtra?: Partial<Record<"nano" | "workhorse" | "capable" | "power" | "premium", string>>;
  scoutExtra?: string;
  /** `fleet.quietHours` as YAML flow; default never quiet, so tests and benchmarks run the same at any hour */
  quietHours?: string;
}

export function routerFleetConfig(options: RouterFleetOptions): FleetConfig {
  return parseFleetConfig(routerFleetYaml(options), "router-test.yaml");
}

export function routerFleetYaml(options: RouterFleetOptions): string {
  const tier = (name: string, model: string, input: number, output: number) =>
    [
      `  ${name}:`,
      `    model: ${model}`,
      `    inputPerM: ${input}`,
      `    outputPerM: ${output}`,
      ...(options.baseUrl ? [`    baseUrl: ${options.baseUrl}`] : []),
      ...(options.tierExtra?.[name as "nano"] ? [options.tierExtra[name as "nano"] as string] : []),
    ].join("\n");
  const yaml = `
fleet:
  name: routertest
  prefix: ${options.prefix}
  timeZone: Europe/Berlin
  quietHours: ${options.quietHours ?? '{ start: "00:00", end: "00:00" }'}
  dailyCapUsd: ${options.fleetCapUsd ?? 10}
tiers:
${tier("nano", "m-nano", 0.07, 0.28)}
${tier("workhorse", "m-workhorse", 0.27, 1.1)}
${tier("capable", "m-capable", 0.1, 0.4)}
${tier("power", "m-power", 5, 15)}
${tier("premium", "m-premium", 15, 75)}
routing:
  cooldown: { failures: 3, seconds: 60 }
  premiumRetrySeconds: [0.2]
${options.routing ?? ""}
agents:
  - id: atlas
    name: Atlas
    role: orchestrator
    layer: orchestration
    defaultTier: power
    cycleMinutes: 15
    dailyCapUsd: ${options.fleetCapUsd ?? 10}
    tools: ["*"]
    skills: [{ id: plan, name: Plan, description: Plans work, tags: [plan] }]
  - id: scout
    name: Scout
    role: research
    layer: execution
    defaultTier: capable
    cycleMinutes: 60
    dailyCapUsd: ${options.scoutCapUsd ?? 5}
    tools: [web_fetch]
    skills: [{ id: research, name: Research, description: Looks things up, tags: [research] }]
${options.scoutExtra ?? ""}
  - id: ship
    name: Ship
    role: devops
    layer: execution
    defaultTier: workhorse
    cycleMinutes: 30
    dailyCapUsd: 4
    tools: [http_check]
    skills: [{ id: health, name: Health, description: Checks hosts, tags: [health] }]
`;
  return yaml;
}

export async function startTestRouter(nc: NatsConnection, config: FleetConfig, env: Record<string, string> = {}, clock?: Clock): Promise<RunningRouter> {
  return startRouter({ nc, config, env, log: pino({ level: "silent" }), ...(clock ? { clock } : {}) });
}

/** Every USAGE record of the fleet so far, oldest first. */
export async function usageRecords(nc: NatsConnection, names: FleetNames): Promise<UsageRecord[]> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(names.stream("USAGE"));
  const records: UsageRecord[] = [];
  if (info.state.messages === 0) return records;
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    const msg = await jsm.streams.getMessage(names.stream("USAGE"), { seq }).catch(() => undefined);
    if (!msg) continue;
    const decoded = decode(UsageRecord, msg.data);
    if (decoded.ok) records.push(decoded.value);
  }
  return records;
}
