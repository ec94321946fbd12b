import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, it } from "node:test";
import { pino } from "pino";
import type { ActInput, HostedAgent } from "../../actors/index.js";
import { routedModelStep } from "../../behaviours/index.js";
import { routerTestBed } from "../helpers/router-test-bed.js";

/** An ordinary task may name a tier or an alias (`fleet send --tier`, Atlas's plan): its model step asks the router for it. */

const SCOUT: HostedAgent = { id: "scout", name: "Scout", role: "research", defaultTier: "capable", cycleMinutes: 60, skills: [{ id: "research", name: "Research", description: "Looks things up", tags: ["research"] }] };

describe("routed model step: the tier a task names", () => {
  const bed = routerTestBed("routed-tier-test", "rtier");

  function task(text: string, work?: Record<string, unknown>): ActInput {
    const taskId = `t-${randomUUID()}`;
    const message = { messageId: randomUUID(), role: "ROLE_USER" as const, parts: [{ text }], ...(work ? { metadata: { work } } : {}) };
    return { agentId: "scout", trigger: "task", plan: { kind: "work", item: { taskId, contextId: taskId, message }, skillId: "research" } };
  }

  async function decided(input: ActInput): Promise<{ tier: unknown; why: unknown; model: string | undefined }> {
    const fleet = await bed.fleet({ routing: "  classifier: false\n  cache: { enabled: false }" });
    const outcome = await routedModelStep(SCOUT, fleet.client).act(input, { signal: new AbortController().signal, log: pino({ level: "silent" }) });
    assert.ok(outcome.ok, "reason" in outcome ? outcome.reason : "");
    const data = outcome.artifacts[0]?.parts.find((p) => "data" in p);
    assert.ok(data && "data" in data);
    const body = bed.openai.requests.filter((r) => r.path.endsWith("/chat/completions")).at(-1);
    return { tier: Object(data.data).tier, why: Object(data.data).why, model: body?.model };
  }

  it("an alias: served at its tier, and the decision says it was the alias", async () => {
    const d = await decided(task("research the competitors", { tier: "heavy" }));
    assert.deepEqual(d, { tier: "power", why: 'alias "heavy" by the task → power', model: "m-power" });
  });

  it("a tier name: served there; a task naming none gets the agent's default", async () => {
    assert.equal((await decided(task("research the competitors", { tier: "nano" }))).model, "m-nano");
    assert.equal((await decided(task("research the competitors"))).model, "m-capable");
  });
});
