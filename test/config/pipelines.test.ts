import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse, stringify } from "yaml";
import { loadFleetConfig, parseFleetConfig, shippedFleetPath } from "../../config/index.js";
import { FleetError } from "../../protocol/index.js";

/** The smallest fleet that can hold pipelines, with `pipelines` as given. */
function fleetWith(pipelines: unknown) {
  const tier = (model: string, price: number) => ({ model, inputPerM: price, outputPerM: price * 4 });
  const skill = { id: "plan", name: "Plan", description: "plans", tags: ["plan"] };
  return {
    fleet: { name: "test", timeZone: "UTC", dailyCapUsd: 10 },
    tiers: { nano: tier("n", 0.07), workhorse: tier("w", 0.27), capable: tier("c", 0.1), power: tier("p", 5), premium: tier("x", 15) },
    agents: [{ id: "atlas", name: "Atlas", role: "orchestrator", layer: "orchestration", defaultTier: "power", cycleMinutes: 15, dailyCapUsd: 5, tools: ["*"], skills: [skill] }],
    pipelines,
  };
}

const OBJECT = { type: "object", properties: { summary: { type: "string" } }, required: ["summary"] };
const check = { id: "check", tool: "http_check", forEach: "input.sites", input: { url: "{{item}}" }, findings: [{ when: { path: "output.ok", is: "falsy" }, subject: "{{item}}", key: "down", summary: "{{item}} is down" }] };
const triage = { id: "triage", when: { path: "findings", is: "nonEmpty" }, model: { tier: "triage", uses: ["check"], prompt: "{{findings}}", output: OBJECT } };

function issuesOf(pipelines: unknown): { path: string; message: string }[] {
  try {
    parseFleetConfig(stringify(fleetWith(pipelines)), "bad.yaml");
  } catch (err) {
    assert.ok(err instanceof FleetError, String(err));
    assert.equal(err.code, "CONFIG_INVALID");
    return err.details ?? [];
  }
  assert.fail("the config was accepted");
}

function assertRefused(pipelines: unknown, path: string, reason: RegExp): void {
  const issues = issuesOf(pipelines);
  const found = issues.find((i) => i.path === path);
  assert.ok(found, `no issue at ${path}; got ${JSON.stringify(issues)}`);
  assert.match(found.message, reason);
}

describe("pipelines in the config", () => {
  it("a well-formed pipeline is accepted with its defaults", () => {
    const config = parseFleetConfig(stringify(fleetWith({ watch: { steps: [check, triage] } })), "ok.yaml");
    const steps = config.pipelines.watch?.steps ?? [];
    assert.equal(steps.length, 2);
    assert.ok(steps[0] && "tool" in steps[0]);
    assert.equal(steps[0].onError, "fail");
    assert.equal(steps[0].findings[0]?.severity, "warning");
  });

  it("refuses a model step using a step that does not exist or comes later, with the path of the bad entry", () => {
    assertRefused({ watch: { steps: [check, { ...triage, model: { ...triage.model, uses: ["check", "chek"] } }] } }, "pipelines.watch.steps[1].model.uses[1]", /no earlier step "chek" \(earlier: check\)/);
    assertRefused({ watch: { steps: [triage, check] } }, "pipelines.watch.steps[0].model.uses[0]", /no earlier step "check"/);
  });

  it("refuses a forEach or when path that does not start at input, steps, findings or item", () => {
    assertRefused({ watch: { steps: [{ ...check, forEach: "sites" }] } }, "pipelines.watch.steps[0].forEach", /must start with input, steps, findings, item/);
    assertRefused({ watch: { steps: [check, { ...triage, when: { path: "result.ok", is: "truthy" } }] } }, "pipelines.watch.steps[1].when.path", /must start with/);
    assertRefused({ watch: { steps: [check, { ...triage, when: { path: "steps.nope.output", is: "truthy" } }] } }, "pipelines.watch.steps[1].when.path", /names no earlier step "nope"/);
    assertRefused(
      { watch: { steps: [{ ...check, findings: [{ ...check.findings[0], when: { path: "out.ok", is: "falsy" } }] }] } },
      "pipelines.watch.steps[0].findings[0].when.path",
      /must start with input, steps, findings, item, output/,
    );
  });

  it("refuses a model step whose output is not an object schema", () => {
    assertRefused({ watch: { steps: [check, { ...triage, model: { ...triage.model, output: { type: "string" } } }] } }, "pipelines.watch.steps[1].model.output", /must be an object schema \(type: object\), not type: "string"/);
    assertRefused({ watch: { steps: [check, { ...triage, model: { ...triage.model, output: { properties: {} } } }] } }, "pipelines.watch.steps[1].model.output", /a schema without a type/);
  });

  it("refuses a prompt quoting a step it does not use, a tier nobody knows, a check there is not, a comparison without a value", () => {
    const second = { ...check, id: "again" };
    assertRefused({ watch: { steps: [check, second, { ...triage, model: { ...triage.model, prompt: "{{steps.again.output}}" } }] } }, "pipelines.watch.steps[2].model.prompt", /add "again" to uses/);
    assertRefused({ watch: { steps: [check, { ...triage, model: { ...triage.model, tier: "cheap" } }] } }, "pipelines.watch.steps[1].model.tier", /no tier or alias "cheap"/);
    assertRefused({ watch: { steps: [{ ...check, check: "exit-zero" }] } }, "pipelines.watch.steps[0].check", /unknown check "exit-zero"/);
    assertRefused({ watch: { steps: [check, { ...triage, when: { path: "steps.check.output.0.latencyMs", is: "above" } }] } }, "pipelines.watch.steps[1].when.value", /compares with a number/);
  });

  it("the README's pipeline example is a valid pipeline", () => {
    // dist/test/config → the repository root
    const readme = readFileSync(join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "README.md"), "utf8");
    const section = readme.slice(readme.indexOf("## Pipelines"), readme.indexOf("## The `fleet` command"));
    const block = /A pipeline of your own, in the config:\s*```yaml\n([\s\S]*?)```/.exec(section)?.[1];
    assert.ok(block, "the example is in the README's Pipelines section");
    const config = parseFleetConfig(stringify(fleetWith(parse(block).pipelines)), "readme.yaml");
    assert.deepEqual(config.pipelines["api-watch"]?.steps.map((s) => s.id), ["http", "triage"]);
  });

  it("the shipped fleets' pipelines load", () => {
    for (const name of ["local", "dcode-ops"]) {
      const config = loadFleetConfig(shippedFleetPath(name));
      assert.ok(config.pipelines["site-health"], `${name} ships site-health`);
    }
  });
});
