import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Kvm } from "@nats-io/kv";
import { FleetError, type CompleteRequest } from "../../protocol/index.js";
import { roundUsd, stepKey } from "../../router/index.js";
import { usageRecords } from "../helpers/router-fleet.js";
import { routerTestBed } from "../helpers/router-test-bed.js";
import { waitFor } from "../helpers/wait.js";

/**
 * A task's model step is paid once: the router keeps the answer under (agent, task, step) and answers a repeat from it,
 * with no provider call, no charge and no USAGE record. Real nats-server, real OpenAI-speaking server, routers in process.
 */
describe("step answers", () => {
  const bed = routerTestBed("step-answers-test", "sa");
  const fleet = (routers = 1) => bed.fleet({ routing: "  classifier: false\n  localClassifier: { enabled: false }\n  cache: { enabled: false }" }, { routers });

  const ask = (step: string, extra: Partial<CompleteRequest> = {}): CompleteRequest => ({
    agentId: "scout",
    taskId: "t-abc",
    step,
    title: "look it up",
    messages: [{ role: "user", content: "look it up" }],
    ...extra,
  });
  const chats = () => bed.openai.requests.filter((r) => r.path.endsWith("/chat/completions")).length;

  it("a repeated step is answered from its kept answer: one provider call, one charge, one USAGE record", async () => {
    const { client, names } = await fleet();
    bed.openai.script("m-capable", { content: "first answer" }, { content: "second answer" }, { content: "third answer" });
    const first = await client.complete(ask("0"));
    const again = await client.complete(ask("0"));
    assert.equal(chats(), 1, "the repeat reached no provider");
    assert.equal(again.text, "first answer");
    assert.equal(again.replayed, true);
    assert.equal(again.callId, first.callId, "the replay names the call that paid");
    assert.equal(first.replayed, undefined);

    // the paid call's USAGE record is published before its reply but stored a moment later; the replay adds none
    await waitFor("the paid call's USAGE record", async () => (await usageRecords(bed.nc, names)).some((r) => r.agentId === "scout"));
    const paid = (await usageRecords(bed.nc, names)).filter((r) => r.agentId === "scout");
    assert.equal(paid.length, 1, "a replay publishes no USAGE record");
    // the settle follows the reply (deferred): wait for it, then the spend is the one paid call's
    const budget = await waitFor("the paid call settled", async () => {
      const b = await client.usage("scout");
      return b.agents.scout?.reservedUsd === 0 && (b.agents.scout?.spentUsd ?? 0) > 0 ? b : undefined;
    });
    assert.equal(budget.agents.scout?.spentUsd, roundUsd(first.costUsd), "charged once");

    // another step of the task, and the same step of another agent's task, are calls of their own
    assert.equal((await client.complete(ask("1"))).text, "second answer");
    assert.equal((await client.complete(ask("0", { agentId: "ship", tier: "capable" }))).text, "third answer");
    assert.equal(chats(), 3);
  });

  it("two routers given the same step at once: one provider call, both answered with it", async () => {
    const { routers } = await fleet(2);
    bed.openai.script("m-capable", { content: "only answer", delayMs: 400 }, { content: "a second call" });
    const [a, b] = await Promise.all([routers[0]!.router.complete(ask("0", { callId: "c-a" })), routers[1]!.router.complete(ask("0", { callId: "c-b" }))]);
    assert.equal(chats(), 1);
    assert.deepEqual([a.text, b.text], ["only answer", "only answer"]);
    assert.equal([a, b].filter((r) => r.replayed).length, 1);
  });

  it("a failed call keeps nothing: the step's next try calls the provider", async () => {
    const { client } = await fleet();
    bed.openai.script("m-capable", { status: 400, content: "bad request" }, { content: "now it works" });
    await assert.rejects(client.complete(ask("0")), (err: unknown) => err instanceof FleetError);
    const retried = await client.complete(ask("0"));
    assert.equal(retried.text, "now it works");
    assert.equal(retried.replayed, undefined);
    assert.equal(chats(), 2);
  });

  it("a kept answer that no longer decodes is reported and the step is answered anew", async () => {
    const { client, names } = await fleet();
    const answers = await new Kvm(bed.nc).open(names.bucket("answers"));
    await answers.put(stepKey("scout", "t-abc", "0"), new TextEncoder().encode("garbage{"));
    bed.openai.script("m-capable", { content: "fresh" });
    assert.equal((await client.complete(ask("0"))).text, "fresh");
    assert.equal((await client.complete(ask("0"))).replayed, true);
    assert.equal(chats(), 1);
  });
});
