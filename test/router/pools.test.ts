import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { CompleteRequest } from "../../protocol/index.js";
import { DeploymentHealth } from "../../router/index.js";
import { usageRecords } from "../helpers/router-fleet.js";
import { routerTestBed } from "../helpers/router-test-bed.js";

/** A tier's deployments as a pool: shared by weight or by load, a 429's Retry-After cools one down, USAGE names it. */
describe("deployment pools", () => {
  const bed = routerTestBed("pools-test", "pool");
  const ask = (title: string): CompleteRequest => ({ agentId: "scout", title, tier: "capable", messages: [{ role: "user", content: title }] });
  const pool = (kind: string) => ({
    routing: "  classifier: false\n  cache: { enabled: false }",
    tierExtra: {
      capable: [
        `    pool: ${kind}`,
        "    deployments:",
        `      - { id: cap-a, baseUrl: "${bed.openai.baseUrl}", model: m-a, weight: 3 }`,
        `      - { id: cap-b, baseUrl: "${bed.openai.baseUrl}", model: m-b, weight: 1 }`,
      ].join("\n"),
    },
  });
  const served = () => bed.openai.requests.filter((r) => r.path.endsWith("/chat/completions")).map((r) => r.model);

  it("weighted: the calls are shared by weight, and USAGE records which deployment served each", async () => {
    const { client, names } = await bed.fleet(pool("weighted"));
    for (let i = 0; i < 8; i++) await client.complete(ask(`step ${i}`));
    const models = served();
    assert.deepEqual([models.filter((m) => m === "m-a").length, models.filter((m) => m === "m-b").length], [6, 2]);
    const usage = await usageRecords(bed.nc, names);
    assert.deepEqual(usage.map((u) => u.deploymentId).sort(), [...Array(6).fill("cap-a"), ...Array(2).fill("cap-b")]);
  });

  it("least-busy: a deployment with a call in flight is passed over for the idle one", async () => {
    const { client } = await bed.fleet(pool("least-busy"));
    bed.openai.script("m-a", { content: "slow", delayMs: 1_500 });
    const slow = client.complete(ask("slow one"));
    await new Promise((r) => setTimeout(r, 300));
    const quick = await client.complete(ask("quick one"));
    assert.equal(quick.deploymentId, "cap-b");
    assert.equal((await slow).deploymentId, "cap-a");
  });

  it("a 429 with Retry-After cools that deployment down for that long: the next calls go to the other", async () => {
    const { client } = await bed.fleet(pool("failover"));
    bed.openai.script("m-a", { status: 429, content: "slow down", headers: { "retry-after": "30" } });
    const first = await client.complete(ask("first"));
    assert.equal(first.deploymentId, "cap-b", "the 429 fell over to the pool's other deployment");
    for (let i = 0; i < 3; i++) assert.equal((await client.complete(ask(`after ${i}`))).deploymentId, "cap-b");
    assert.equal(served().filter((m) => m === "m-a").length, 1, "cap-a was asked once, then left alone");
  });

  it("Retry-After sets the cool-down on the clock, capped at maxMs", () => {
    const clock = { now: 1_000_000 };
    const health = new DeploymentHealth({ failures: 3, baseMs: 60_000, maxMs: 900_000, clock: { now: () => clock.now } });
    health.recordFailure("a", 30_000);
    assert.equal(health.coolingUntil("a"), 1_030_000);
    clock.now += 30_000;
    assert.equal(health.isAvailable("a"), true);
    health.recordFailure("b", 3_600_000);
    assert.equal(health.coolingUntil("b"), clock.now + 900_000);
  });
});
