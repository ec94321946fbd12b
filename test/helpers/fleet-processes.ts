import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { ProcessSupervisor, type ChildSpec } from "../../supervisor/index.js";

const here = dirname(fileURLToPath(import.meta.url));
/** compiled paths: dist/test/helpers → dist/ */
export const DIST = resolve(here, "..", "..");
export const CLI = join(DIST, "cli", "main.js");
export const SLOW_AGENT = join(DIST, "test", "fixtures", "slow-agent.js");

/** A small fleet with test-sized redelivery: a task held by a dead process comes back after about 2 s. */
/** atlas may propose CONFIRM tools ("*"): governance (and `fleet up`) refuse a fleet whose approval requests go nowhere */
export const DEFAULT_GOVERNANCE_YAML = `governance:
  approvals: { channels: [console] }
`;

export function writeTestFleet(overrides: { prefix?: string; maxPayloadBytes?: number } = {}): { file: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "fleet-config-"));
  const file = join(dir, "fleet.yaml");
  const tiers = ["nano", "workhorse", "capable", "power", "premium"]
    .map((t) => `  ${t}: { model: offline-${t}, inputPerM: 1, outputPerM: 2 }`)
    .join("\n");
  writeFileSync(
    file,
    `fleet:
  name: test
  prefix: ${overrides.prefix ?? "fleet"}
  timeZone: UTC
  dailyCapUsd: 10
  maxPayloadBytes: ${overrides.maxPayloadBytes ?? 65536}
  quietHours: { start: "00:00", end: "00:00" }   # never quiet: tests run at any hour
memory: { dir: ${JSON.stringify(join(dir, "memory"))} }
backups: { dir: ${JSON.stringify(join(dir, "backups"))} }
tiers:
${tiers}
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
    role: research
    layer: execution
    defaultTier: capable
    cycleMinutes: 60
    dailyCapUsd: 1
    tools: [web_fetch]
    skills: [{ id: research, name: Research, description: competitor research, tags: [competitor, pricing] }]
  - id: ship
    name: Ship
    role: devops
    layer: execution
    defaultTier: workhorse
    cycleMinutes: 60
    dailyCapUsd: 1
    tools: [http_check]
    skills: [{ id: deploy, name: Deploy, description: deploys, tags: [deploy, build] }]
${DEFAULT_GOVERNANCE_YAML}tasks:
  maxDeliver: 5
  ackWaitSeconds: 2
  backoffSeconds: [2, 2, 2]
  workingAckSeconds: 0.5
supervisor:
  intensity: 10
  periodSeconds: 60
  shutdownTimeoutSeconds: 5
`,
  );
  return { file, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function agentSpec(id: string, config: string, nats: string, runId: string = randomUUID()): ChildSpec {
  return { id, command: process.execPath, args: [CLI, "run", "agent", id, "--config", config, "--nats", nats, "--run-id", runId, "--supervised", "--log-level", "warn"], restart: "permanent" };
}

/** `fleet run <role>` for one of the fleet's services (router, tools, governance), named after its role. */
export function serviceSpec(role: "router" | "tools" | "governance", config: string, nats: string): ChildSpec {
  return { id: role, command: process.execPath, args: [CLI, "run", role, "--config", config, "--nats", nats, "--supervised", "--log-level", "warn"], restart: "permanent" };
}

/** The model router: agents' tasks are answered through it (on the simulated provider in the test fleet). */
export function routerSpec(config: string, nats: string): ChildSpec {
  return serviceSpec("router", config, nats);
}

export function slowAgentSpec(id: string, config: string, nats: string, workMs: number, options: { fail?: boolean } = {}): ChildSpec {
  const args = [SLOW_AGENT, "--agent", id, "--config", config, "--nats", nats, "--work-ms", String(workMs), "--run-id", randomUUID()];
  if (options.fail) args.push("--fail");
  return { id, command: process.execPath, args, restart: "permanent" };
}

/** Test processes under a supervisor; with `output`, their lines are kept there instead of shown. */
export function startProcesses(specs: ChildSpec[], output?: string[]): ProcessSupervisor {
  return new ProcessSupervisor(specs, {
    intensity: 20,
    periodMs: 60_000,
    shutdownTimeoutMs: 5_000,
    restartDelayMs: 50,
    logger: pino({ level: "silent" }),
    ...(output ? { stdio: "pipe" as const, onChildOutput: (id: string, line: string) => output.push(`${id}: ${line}`) } : { stdio: "inherit" as const }),
  });
}
