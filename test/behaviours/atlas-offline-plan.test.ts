import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkPlan } from "../../behaviours/atlas-plan-check.js";
import { OFFLINE_LABEL, offlinePlan } from "../../behaviours/atlas-offline-plan.js";
import type { PlanInputs } from "../../behaviours/atlas-plan.js";
import { loadFleetConfig, shippedFleetPath } from "../../config/index.js";
import { referenceToolRisks } from "../../governance/index.js";
import type { Finding } from "../../protocol/index.js";

const config = loadFleetConfig(shippedFleetPath("local"));

function finding(extra: Partial<Finding>): Finding {
  return { id: `f-${Math.random()}`, agentId: "ship", duty: "demo-site", subject: "demo-site", key: "http-down", severity: "critical", summary: "http://127.0.0.1:8080/ is down (503)", at: 1_000, ...extra };
}

function inputs(extra: Partial<PlanInputs>): PlanInputs {
  return { findings: [], events: [], failedTasks: [], deadLetters: [], notes: [], awaitingHuman: [], budgets: [], ...extra };
}

describe("Atlas's offline plan (no model configured)", () => {
  it("assigns the fix of a finding to the agent whose duty found it, with its skill and the PROPOSE tool that names the subject", async () => {
    const plan = offlinePlan(config, "atlas", inputs({ findings: [finding({ id: "f-1" }), finding({ id: "f-2", at: 2_000 }), finding({ id: "f-3", subject: "nats-server", duty: "nats-health", summary: "http://127.0.0.1:8222/healthz is down (500)" })] }), referenceToolRisks());
    assert.equal(plan.assignments.length, 2, "one piece of work per problem, however many runs saw it");
    const [site, nats] = plan.assignments;
    assert.equal(site?.agent, "ship");
    assert.equal(site?.what, "Restore demo-site with demo_site_restart: http://127.0.0.1:8080/ is down (503)");
    assert.deepEqual(site?.tools, ["demo_site_restart"]);
    assert.equal(site?.skill, "site-restore");
    assert.equal(site?.target, "demo-site");
    assert.equal(site?.priority, "high");
    assert.ok(site?.why.startsWith(OFFLINE_LABEL));
    // no tool of ship's names the NATS server: it is looked into, not restarted
    assert.match(nats?.what ?? "", /^Look into nats-server/);
    assert.deepEqual(nats?.tools, []);
    assert.equal(plan.notices.length, 1);
    assert.equal(plan.notices[0]?.severity, "critical");
    assert.ok(plan.notices[0]?.text.startsWith(OFFLINE_LABEL));

    // the plan passes the same deterministic check a model's must pass
    const facts = new Map(config.agents.filter((a) => a.id !== "atlas").map((a) => [a.id, { openTasks: 0, budget: "normal" as const }]));
    const checked = await checkPlan(plan, { config, self: "atlas", facts, wipLimit: 3, duplicateOf: async () => undefined });
    assert.equal(checked.failed.length, 0, JSON.stringify(checked.failed));
    assert.equal(checked.passed.length, 2);
  });

  it("turns what needs a human into notices and assigns nothing for it; nothing new is an empty plan", () => {
    const plan = offlinePlan(
      config,
      "atlas",
      inputs({
        awaitingHuman: [{ proposalId: "p-1", agentId: "ship", tool: "email_send", reason: "tell the client" }],
        failedTasks: [{ agentId: "scout", taskId: "t-1", title: "research", reason: "TIMEOUT" }],
        findings: [finding({ agentId: "nobody" })],
      }),
      referenceToolRisks(),
    );
    assert.equal(plan.assignments.length, 0);
    assert.equal(plan.notices.length, 3);
    assert.ok(plan.notices.every((n) => n.text.startsWith(OFFLINE_LABEL)));
    assert.match(plan.notices.map((n) => n.text).join("\n"), /fleet approve p-1/);
    assert.deepEqual(offlinePlan(config, "atlas", inputs({}), referenceToolRisks()), { assignments: [], notices: [] });
  });
});
