import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, it } from "node:test";
import { pino } from "pino";
import type { ActInput, HostedAgent, Outcome } from "../../actors/index.js";
import { routedModelStep } from "../../behaviours/index.js";
import { routerTestBed } from "../helpers/router-test-bed.js";

/**
 * A skill and a task may each name a tier or an alias for the agent's model step; the task's wins, and the router's
 * decision (in the artifact's `why`) says what was asked and by whom. Real router, real nats-server, scripted provider.
 */
const SCOUT: HostedAgent = {
  id: "scout",
  name: "Scout",
  role: "research",
  defaultTier: "capable",
  cycleMinutes: 60,
  skills: [{ id: "research", name: "Research", description: "Looks things up", tags: ["research"], tier: "heavy" }],
};

describe("routed model step: tiers and aliases from the skill and the task", () => {
  const bed = routerTestBed("routed-step-tier-test", "rst");
  const log = pino({ level: "silent" });

  function input(text: string, tier?: string): ActInput {
    const metadata = tier === undefined ? {} : { metadata: { work: { tier } } };
    const item = { taskId: randomUUID(), contextId: randomUUID(), message: { messageId: randomUUID(), role: "ROLE_USER" as const, parts: [{ text }], ...metadata } };
    return { agentId: "scout", trigger: "task", plan: { kind: "work", item, skillId: "research" } };
  }

  function dataOf(outcome: Outcome): Record<string, unknown> {
    assert.ok(outcome.ok, `the task failed: ${"reason" in outcome ? outcome.reason : ""}`);
    const data = outcome.artifacts[0]?.parts.find((p) => "data" in p);
    assert.ok(data && "data" in data);
    return Object(data.data);
  }

  it("the skill's alias decides, and a task's tier wins over it; the decision says who asked", async () => {
    const { client } = await bed.fleet({ routing: "  classifier: false" });
    const step = routedModelStep(SCOUT, client);
    const ctx = { signal: new AbortController().signal, log };
    const bySkill = dataOf(await step.act(input("research the competitors' pricing"), ctx));
    assert.equal(bySkill.tier, "power");
    assert.match(String(bySkill.why), /alias "heavy" by the skill → power/);
    // other words each time: the same request again would be a semantic-cache hit
    const byTask = dataOf(await step.act(input("research the competitors' newsletters", "triage"), ctx));
    assert.equal(byTask.tier, "nano");
    assert.match(String(byTask.why), /alias "triage" by the task → nano/);
    const explicit = dataOf(await step.act(input("research the competitors' hosting", "workhorse"), ctx));
    assert.equal(explicit.tier, "workhorse");
    assert.match(String(explicit.why), /asked for workhorse by the task/);
    const item = input("research the competitors' docs", "triage");
    if (item.plan.kind === "work" && item.plan.item) item.plan.item.message.metadata = { work: { tier: "triage", duty: "competitor-watch" } };
    assert.match(String(dataOf(await step.act(item, ctx)).why), /alias "triage" by the duty → nano/);
  });
});
