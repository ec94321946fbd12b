import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { z } from "zod";
import { describeSchedule, loadFleetConfig, scheduleOf, shippedFleetPath, type FleetConfig } from "../../config/index.js";
import { referenceToolRisks } from "../../governance/index.js";

/**
 * Tools the reference fleet's pipelines use that branch `tools` adds to the catalogue (this round). Once that branch is
 * merged the second test below fails: empty this list then, so every tool is checked against the catalogue itself.
 */
/** Every tool each duty and cron job of a config makes its agent run, with where it is named. */
function toolsRun(config: FleetConfig): { agent: string; tool: string; where: string }[] {
  const out: { agent: string; tool: string; where: string }[] = [];
  const ofPipeline = (agent: string, id: string, where: string) => {
    for (const step of config.pipelines[id]?.steps ?? []) if ("tool" in step) out.push({ agent, tool: step.tool, where: `${where} → pipelines.${id}.${step.id}` });
  };
  for (const agent of config.agents) for (const duty of agent.duties) ofPipeline(agent.id, duty.pipeline, `${agent.id}.duties.${duty.id}`);
  for (const job of config.cron) {
    if (job.pipeline) ofPipeline(job.agent, job.pipeline, `cron.${job.id}`);
    if (job.tool) out.push({ agent: job.agent, tool: job.tool, where: `cron.${job.id}` });
  }
  return out;
}

function checkShippedFleet(name: string): FleetConfig {
  const config = loadFleetConfig(shippedFleetPath(name));
  const catalogue = referenceToolRisks();
  for (const agent of config.agents) {
    for (const duty of agent.duties) assert.ok(config.pipelines[duty.pipeline], `${name}: ${agent.id}'s duty ${duty.id} names pipeline ${duty.pipeline}, which is not there`);
  }
  const used = toolsRun(config);
  assert.ok(used.length > 0);
  for (const { agent, tool, where } of used) {
    const allowed = config.agents.find((a) => a.id === agent)?.tools ?? [];
    assert.ok(allowed.includes("*") || allowed.includes(tool), `${name}: ${where} runs ${tool}, which ${agent}'s allow list lacks`);
    assert.ok(tool in catalogue, `${name}: ${where} runs ${tool}, which no tool source provides`);
  }
  return config;
}

describe("the shipped fleets' duties", () => {
  it("dcode-ops: every agent has duties, each names a pipeline in the file, and every tool they run is in its agent's allow list", () => {
    const config = checkShippedFleet("dcode-ops");
    assert.deepEqual(config.agents.filter((a) => a.duties.length === 0).map((a) => a.id), [], "all seven agents have standing work");
    const schedule = (agent: string, duty: string) => {
      const found = config.agents.find((a) => a.id === agent)?.duties.find((d) => d.id === duty);
      assert.ok(found, `${agent} has a duty ${duty}`);
      return describeSchedule(scheduleOf(found));
    };
    // what the reference operation runs (DESIGN.md): ship every 30 minutes over the five sites (HTTP, TLS, ports) and the host
    assert.equal(schedule("ship", "site-health"), "every 30m");
    assert.equal(schedule("ship", "host-health"), "every 30m");
    const ship = config.agents.find((a) => a.id === "ship")!;
    const shipTools = new Set(ship.duties.flatMap((d) => config.pipelines[d.pipeline]!.steps.flatMap((s) => ("tool" in s ? [s.tool] : []))));
    assert.deepEqual([...shipTools].sort(), ["disk_usage", "http_check", "memory_usage", "port_check", "tls_expiry"]);
    const sites = ship.duties.find((d) => d.id === "site-health")!.input;
    assert.equal(z.array(z.object({ name: z.string(), url: z.url() })).parse(sites.sites).length, 5, "the five sites");
    assert.equal(z.array(z.object({ host: z.string() })).parse(sites.tls).length, 5, "their certificates");
    for (const audit of ["tls-audit", "headers-audit", "dependency-audit"]) assert.match(schedule("sentinel", audit), /^cron \d+ 6 \* \* \*$/, `sentinel's ${audit} runs daily`);
    assert.equal(schedule("scout", "feed-scan"), "every 1h");
    assert.equal(schedule("mira", "weekly-growth"), "cron 0 9 * * 1");
    assert.ok(schedule("closer", "lead-review"));
    assert.ok(schedule("plume", "content-calendar"));
    // a watch's model step runs only when its tool steps found something: a clean run is $0
    for (const id of ["site-health", "dependency-audit", "feed-scan", "lead-review"]) {
      const steps = config.pipelines[id]!.steps;
      for (const step of steps) if ("model" in step) assert.deepEqual(step.when, { path: "findings", is: "nonEmpty" }, `${id}.${step.id} is conditioned on findings`);
    }
  });

  it("local: short duties against local targets, every tool allowed and provided", () => {
    const config = checkShippedFleet("local");
    const duties = config.agents.flatMap((a) => a.duties.map((d) => ({ agent: a.id, id: d.id, every: d.every, input: d.input })));
    assert.ok(duties.length >= 2);
    for (const d of duties) assert.ok(d.every !== undefined && d.every <= 2 * 60_000, `${d.agent}.${d.id} runs every 1-2 minutes`);
    assert.ok(config.pipelines["site-health"], "the pipeline branch pipelines ships, watched by the duties");
    const targets = JSON.stringify(duties.map((d) => d.input));
    assert.match(targets, /\{\{local\.demo-site\}\}/);
    assert.match(targets, /\{\{local\.nats-monitor\}\}/);
  });
});
