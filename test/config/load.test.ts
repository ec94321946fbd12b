import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { stringify } from "yaml";
import {
  agentById,
  loadFleetConfig,
  parseFleetConfig,
  shippedFleetNames,
  shippedFleetPath,
  type FleetConfig,
} from "../../config/index.js";
import { FleetError } from "../../protocol/errors.js";

/** A small valid config as plain data, so each test can break exactly the fields it is about. */
function validConfig() {
  const tier = (model: string, price: number) => ({ model, inputPerM: price, outputPerM: price * 4 });
  const skill = (id: string, tags: string[]) => ({ id, name: id, description: `does ${id}`, tags });
  return {
    fleet: { name: "test", timeZone: "Europe/Berlin", dailyCapUsd: 10 },
    tiers: {
      nano: tier("n", 0.07),
      workhorse: tier("w", 0.27),
      capable: tier("c", 0.1),
      power: tier("p", 5),
      premium: tier("x", 15),
    },
    agents: [
      { id: "atlas", name: "Atlas", role: "orchestrator", layer: "orchestration", defaultTier: "power", cycleMinutes: 15, dailyCapUsd: 5, tools: ["*"], skills: [skill("plan", ["plan"])] },
      { id: "ship", name: "Ship", role: "devops", layer: "execution", defaultTier: "workhorse", cycleMinutes: 30, dailyCapUsd: 2, tools: ["http_check"], skills: [skill("deploy", ["deploy"])] },
      { id: "sentinel", name: "Sentinel", role: "governance", layer: "governance", defaultTier: "workhorse", cycleMinutes: 60, dailyCapUsd: 2, tools: ["audit_read"], skills: [skill("audit", ["audit"])] },
    ],
  };
}

function parse(data: unknown, source = "test.yaml"): FleetConfig {
  return parseFleetConfig(stringify(data), source);
}

/** Runs `fn`, asserts it throws a FleetError with `code`, and returns it for further checks. */
function fleetErrorOf(code: string, fn: () => unknown): FleetError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof FleetError, `expected a FleetError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}, nothing was thrown`);
}

function assertIssue(err: FleetError, path: string, reason: RegExp): void {
  const found = err.details?.find((issue) => issue.path === path);
  assert.ok(found, `no issue at ${path}; got:\n${err.message}`);
  assert.match(found.message, reason);
}

describe("shipped fleets", () => {
  it("lists both shipped fleets", () => {
    assert.deepEqual(shippedFleetNames().filter((n) => n === "dcode-ops" || n === "local"), ["dcode-ops", "local"]);
  });

  it("loads the reference fleet of DESIGN.md", () => {
    const config = loadFleetConfig(shippedFleetPath("dcode-ops"));
    assert.equal(config.fleet.dailyCapUsd, 50);
    assert.equal(config.fleet.timeZone, "Europe/Berlin");
    assert.equal(config.fleet.prefix, "fleet");
    const summary = config.agents.map((a) => [a.id, a.layer, a.defaultTier, a.cycleMinutes, a.dailyCapUsd]);
    assert.deepEqual(summary, [
      ["atlas", "orchestration", "power", 15, 12],
      ["closer", "execution", "power", 20, 10],
      ["plume", "execution", "capable", 30, 8],
      ["scout", "execution", "capable", 60, 5],
      ["mira", "execution", "capable", 60, 5],
      ["ship", "execution", "workhorse", 30, 4],
      ["sentinel", "governance", "workhorse", 60, 4],
    ]);
    const prices = Object.fromEntries(Object.entries(config.tiers).map(([name, tier]) => [name, tier.inputPerM]));
    assert.deepEqual(prices, { nano: 0.07, workhorse: 0.27, capable: 0.1, power: 5, premium: 15 });
    for (const agent of config.agents) {
      assert.ok(agent.skills.length >= 2 && agent.skills.length <= 4, `${agent.id} has ${agent.skills.length} skills`);
      if (agent.id === "atlas") assert.deepEqual(agent.tools, ["*"]);
      else assert.ok(agent.tools.length > 0 && !agent.tools.includes("*"), `${agent.id} needs an explicit allow list`);
    }
    const shipTags = agentById(config, "ship")?.skills.flatMap((s) => s.tags) ?? [];
    for (const tag of ["deploy", "build", "tls", "disk", "port"]) assert.ok(shipTags.includes(tag), `ship lacks tag ${tag}`);
    assert.equal(agentById(config, "nobody"), undefined);
  });

  it("loads the local fleet: four agents, short cycles, no provider or key", () => {
    const config = loadFleetConfig(shippedFleetPath("local"));
    assert.deepEqual(config.agents.map((a) => a.id), ["atlas", "scout", "ship", "sentinel"]);
    for (const agent of config.agents) assert.ok(agent.cycleMinutes <= 5, `${agent.id} cycles every ${agent.cycleMinutes} min`);
    for (const tier of Object.values(config.tiers)) {
      assert.equal(tier.baseUrl, undefined);
      assert.equal(tier.apiKeyEnv, undefined);
    }
    // omitted sections come out with their defaults
    assert.deepEqual(config.tasks, { maxDeliver: 5, ackWaitSeconds: 30, backoffSeconds: [30, 60, 300], workingAckSeconds: 10 });
    assert.deepEqual(config.supervisor, { intensity: 5, periodSeconds: 60, shutdownTimeoutSeconds: 10 });
  });

  it("refuses an unknown or path-climbing fleet name", () => {
    assert.match(fleetErrorOf("CONFIG_NOT_FOUND", () => shippedFleetPath("nope")).message, /dcode-ops, local/);
    fleetErrorOf("CONFIG_NOT_FOUND", () => shippedFleetPath("../../package"));
  });
});

describe("parseFleetConfig", () => {
  it("quiet hours' urgent policy and the distiller's tier: nothing urgent and capable by default; a bad tier or trigger is refused with its path", () => {
    const defaults = parse(validConfig());
    assert.deepEqual(defaults.fleet.quietHours, { start: "23:30", end: "06:30", urgent: { tiers: [], triggers: [], titles: [] } });
    assert.equal(defaults.memory.distillTier, "capable");
    const data = validConfig();
    const custom = parse({
      ...data,
      fleet: { ...data.fleet, quietHours: { urgent: { tiers: ["premium", "heavy"], triggers: ["event"], titles: ["site down"] } } },
      memory: { distillTier: "nano" },
    });
    assert.deepEqual(custom.fleet.quietHours.urgent, { tiers: ["premium", "heavy"], triggers: ["event"], titles: ["site down"] });
    assert.equal(custom.memory.distillTier, "nano");
    const err = fleetErrorOf("CONFIG_INVALID", () =>
      parse({ ...data, fleet: { ...data.fleet, quietHours: { urgent: { tiers: ["premum"], triggers: ["pager"] } } }, memory: { distillTier: "cheap" } }),
    );
    assertIssue(err, "fleet.quietHours.urgent.tiers[0]", /neither a tier nor an alias/);
    assertIssue(err, "fleet.quietHours.urgent.triggers[0]", /./);
    assertIssue(err, "memory.distillTier", /./);
  });

  it("returns a deeply frozen config", () => {
    const config = parse(validConfig());
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.agents[1]?.tools));
    assert.ok(Object.isFrozen(config.tiers.power));
    assert.throws(() => {
      (config.fleet as { dailyCapUsd: number }).dailyCapUsd = 1000;
    }, TypeError);
    assert.throws(() => (config.tasks.backoffSeconds as number[]).push(60), TypeError);
  });

  it("reports every bad field at once, each with its path, one line per field", () => {
    const data = validConfig();
    const [atlas, ship, sentinel] = data.agents;
    assert.ok(atlas && ship && sentinel);
    Object.assign(data.fleet, { timeZone: "Mars/Olympus" });
    Object.assign(data.tiers.power, { inputPerM: -1 });
    Object.assign(sentinel, { id: "ship", dailyCapUsd: -3 });
    Object.assign(ship, { defaultTier: "ultra", tools: ["*"], dailyCapUSD: 2 });
    Object.assign(atlas, { dailyCapUsd: 11 });

    const err = fleetErrorOf("CONFIG_INVALID", () => parse(data, "bad.yaml"));
    assertIssue(err, "fleet.timeZone", /time zone/);
    assertIssue(err, "tiers.power.inputPerM", />=0/);
    assertIssue(err, "agents[2].id", /duplicate agent id "ship" \(also agents\[1\]\)/);
    assertIssue(err, "agents[2].dailyCapUsd", />0/);
    assertIssue(err, "agents[1].defaultTier", /nano/);
    assertIssue(err, "agents[1].tools", /only the orchestration agent may have wildcard tools/);
    assertIssue(err, "agents[1].dailyCapUSD", /did you mean "dailyCapUsd"/);
    assertIssue(err, "agents[0].dailyCapUsd", /above the fleet's daily cap/);
    assert.equal(err.details?.length, 8, err.message);

    const lines = err.message.split("\n");
    assert.equal(lines.length, 8);
    for (const line of lines) assert.match(line, /^bad\.yaml: \S+: /);
    assert.ok(lines.includes(`bad.yaml: fleet.timeZone: not an IANA time zone (e.g. Europe/Berlin, UTC)`));
    assert.deepEqual(err.toPayload().details, err.details);
  });

  it("reports missing sections and tiers as required, and unknown tiers and top-level keys", () => {
    const data: Record<string, unknown> = validConfig();
    const tiers = { ...validConfig().tiers, premiun: validConfig().tiers.premium } as Record<string, unknown>;
    delete tiers.premium;
    data.tiers = tiers;
    data.fleets = data.fleet;
    delete data.fleet;
    const err = fleetErrorOf("CONFIG_INVALID", () => parse(data));
    assertIssue(err, "fleet", /^required/);
    assertIssue(err, "fleets", /did you mean "fleet"/);
    assertIssue(err, "tiers.premium", /^required/);
    assertIssue(err, "tiers.premiun", /did you mean "premium"/);
  });

  it("requires exactly one orchestration agent", () => {
    const data = validConfig();
    Object.assign(data.agents[1] ?? {}, { layer: "orchestration" });
    assertIssue(fleetErrorOf("CONFIG_INVALID", () => parse(data)), "agents", /exactly one .*found 2/);
    const none = validConfig();
    none.agents.shift();
    assertIssue(fleetErrorOf("CONFIG_INVALID", () => parse(none)), "agents", /found 0/);
  });

  it("refuses a wildcard mixed with names, bad tool names and an empty skill tag list", () => {
    const data = validConfig();
    Object.assign(data.agents[0] ?? {}, { tools: ["*", "http_check"] });
    Object.assign(data.agents[1] ?? {}, { tools: ["Bad Tool"] });
    Object.assign(data.agents[2]?.skills[0] ?? {}, { tags: [] });
    const err = fleetErrorOf("CONFIG_INVALID", () => parse(data));
    assertIssue(err, "agents[0].tools", /must be the only entry/);
    assertIssue(err, "agents[1].tools[0]", /tool name/);
    assertIssue(err, "agents[2].skills[0].tags", /too small/i);
  });

  it("planning and events: defaults, and names of tiers, agents and pipelines checked with their paths", () => {
    const defaults = parse(validConfig());
    assert.deepEqual({ ...defaults.planning }, { tier: "workhorse", escalateTo: "power", wipLimit: 3, maxInputs: 50, lookbackHours: 24 });
    assert.deepEqual({ ...defaults.events.sources }, {});
    const data = {
      ...validConfig(),
      planning: { tier: "cheapest", escalateTo: "heavy", wipLimt: 2 },
      events: { sources: { "uptime-robot": { agent: "shipp", pipeline: "site-health" }, "bad.source": { agent: "ship" } } },
    };
    Object.assign(data.agents[1] ?? {}, { reportsTo: "atlass" });
    const err = fleetErrorOf("CONFIG_INVALID", () => parse(data));
    assertIssue(err, "planning.tier", /"cheapest" is neither a tier nor an alias/);
    assertIssue(err, "planning.wipLimt", /did you mean "wipLimit"/);
    assertIssue(err, "events.sources.uptime-robot.agent", /no agent "shipp"/);
    assertIssue(err, "events.sources.uptime-robot.pipeline", /no pipeline "site-health"/);
    assertIssue(err, "events.sources.bad.source", /subject token/);
    assertIssue(err, "agents[1].reportsTo", /no agent "atlass"/);
    assert.equal(err.details?.some((d) => d.path === "planning.escalateTo"), false, "an alias is a valid escalation");
  });

  it("checks task redelivery settings against what nats-server accepts", () => {
    const data = { ...validConfig(), tasks: { maxDeliver: 3, backoffSeconds: [1, 5, 30], workingAckSeconds: 45 } };
    const err = fleetErrorOf("CONFIG_INVALID", () => parse(data));
    assertIssue(err, "tasks.backoffSeconds", /fewer entries than tasks.maxDeliver \(3\)/);
    assertIssue(err, "tasks.workingAckSeconds", /shorter than every ack wait .*shortest 1\)/);
  });

  it("refuses ${...} anywhere: secrets are referenced by apiKeyEnv", () => {
    const data = validConfig();
    Object.assign(data.tiers.power, { model: "${POWER_MODEL}", apiKeyEnv: "POWER_KEY" });
    const err = fleetErrorOf("CONFIG_INVALID", () => parse(data));
    assertIssue(err, "tiers.power.model", /apiKeyEnv/);
    assert.equal(err.details?.length, 1);
    Object.assign(data.tiers.power, { model: "p", apiKeyEnv: "${KEY}" });
    assertIssue(fleetErrorOf("CONFIG_INVALID", () => parse(data)), "tiers.power.apiKeyEnv", /never interpolated/);
  });

  it("reports YAML syntax errors with line and column", () => {
    const text = "fleet:\n  name: test\n  timeZone: [UTC\nagents: []\n";
    const err = fleetErrorOf("CONFIG_INVALID", () => parseFleetConfig(text, "broken.yaml"));
    assert.match(err.message, /^broken\.yaml: YAML syntax error at line \d+, column \d+: /);
    assert.ok(err.details && err.details.length > 0);
  });

  it("reports duplicate YAML keys and an empty document", () => {
    const dup = fleetErrorOf("CONFIG_INVALID", () => parseFleetConfig("fleet: {}\nfleet: {}\n", "dup.yaml"));
    assert.match(dup.message, /line 2, column 1/);
    assertIssue(fleetErrorOf("CONFIG_INVALID", () => parseFleetConfig("", "empty.yaml")), "(root)", /object/);
  });
});

describe("loadFleetConfig", () => {
  const dir = mkdtempSync(join(tmpdir(), "fleet-config-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("throws CONFIG_NOT_FOUND for a missing file", () => {
    const missing = join(dir, "missing.yaml");
    assert.match(fleetErrorOf("CONFIG_NOT_FOUND", () => loadFleetConfig(missing)).message, /missing\.yaml/);
  });

  it("names the file in every line of a validation error", () => {
    const file = join(dir, "bad.yaml");
    writeFileSync(file, stringify({ ...validConfig(), extra: true }));
    const err = fleetErrorOf("CONFIG_INVALID", () => loadFleetConfig(file));
    assert.equal(err.message, `${file}: extra: unknown key (allowed: fleet, tiers, routing, agents, tasks, supervisor, cron, pipelines, webhook, backups, memory, principals, governance, bridges, planning, events, toolModules, business, mcpServers, peers, dashboard, telemetry, gateway, reports, alerts, sweeper)`);
  });
});

describe("routing config", () => {
  it("fills in the defaults: aliases, cache, cooldown, budget thresholds", () => {
    const config = parse(validConfig());
    assert.deepEqual(config.routing.aliases, { triage: { tier: "nano" }, standard: { tier: "capable" }, heavy: { tier: "power" } });
    assert.equal(config.routing.budget.downgradeAt, 0.8);
    assert.equal(config.routing.escalationCeiling, "premium");
  });

  it("refuses a fallback chain or an alias chain that does not climb in cost, naming the step", () => {
    const data = { ...validConfig(), routing: { fallback: { power: ["workhorse"] }, aliases: { quick: { tier: "workhorse", chain: ["power", "capable"] } } } };
    const err = fleetErrorOf("CONFIG_INVALID", () => parse(data));
    assertIssue(err, "routing.fallback.power[0]", /"workhorse" .* is not more expensive than "power"/);
    assertIssue(err, "routing.aliases.quick.chain[1]", /"capable" .* is not more expensive than "power"/);
  });

  it('refuses bad routing keys and the reserved agent id "fleet"', () => {
    const data = validConfig();
    Object.assign(data.agents[1]!, { id: "fleet" });
    const err = fleetErrorOf("CONFIG_INVALID", () => parse({ ...data, routing: { escalationCeiling: "ultra", cache: { similarity: 2 } } }));
    assertIssue(err, "agents[1].id", /reserved/);
    assertIssue(err, "routing.escalationCeiling", /nano/);
    assertIssue(err, "routing.cache.similarity", /<=1/);
  });
});
