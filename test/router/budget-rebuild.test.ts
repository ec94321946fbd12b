import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { NatsConnection } from "@nats-io/nats-core";
import { Kvm } from "@nats-io/kv";
import { connectNats, FleetNames } from "../../protocol/index.js";
import { roundUsd } from "../../router/index.js";
import { fleetDay } from "../../config/index.js";
import { RouterClient, type RunningRouter } from "../../router/index.js";
import { NatsServer } from "../helpers/nats-server.js";
import { OpenAIServer } from "../helpers/openai-server.js";
import { routerFleetConfig, startTestRouter, usageRecords } from "../helpers/router-fleet.js";
import { waitFor } from "../helpers/wait.js";

/**
 * A budget record that no longer decodes (someone wrote garbage under `<day>.<agent>` or `<day>.fleet`) does not stop
 * the fleet's model calls: the router rebuilds it from what USAGE says was paid that day and goes on.
 */
describe("a budget record that no longer decodes", () => {
  let nats: NatsServer;
  let openai: OpenAIServer;
  let nc: NatsConnection;
  let router: RunningRouter | undefined;

  before(async () => {
    [nats, openai] = await Promise.all([NatsServer.start(), OpenAIServer.start()]);
    nc = await connectNats({ servers: nats.url, name: "budget-rebuild-test" });
  });
  after(async () => {
    await router?.stop();
    await nc.close();
    await Promise.all([nats.stop(), openai.close()]);
  });

  it("is rebuilt from USAGE: the next model call succeeds and the budget shows the day's spend", async () => {
    const config = routerFleetConfig({ baseUrl: openai.baseUrl, prefix: "rebuild", routing: "  classifier: false\n  cache: { enabled: false }" });
    router = await startTestRouter(nc, config);
    const names = new FleetNames("rebuild");
    const client = new RouterClient(nc, names, { timeoutMs: 20_000 });
    const ask = (agentId: string, content: string) => client.complete({ agentId, title: content, tier: "capable", messages: [{ role: "user", content }] });

    await ask("scout", "one");
    await ask("scout", "two");
    await ask("ship", "three");
    // the record breaks once what was paid is in USAGE (a call's USAGE record is published after its answer; a record
    // broken while one is in flight is rebuilt without it: a limit of the rebuild, in the README's bucket table)
    await waitFor("the three calls in USAGE", async () => (await usageRecords(nc, names)).filter((r) => r.ok).length === 3);
    const day = fleetDay(Date.now(), config.fleet.timeZone);
    const budgets = await new Kvm(nc).open(names.bucket("budgets"));
    for (const key of [`${day}.scout`, `${day}.fleet`]) await budgets.put(key, new TextEncoder().encode("\u0000 not a budget"));

    const after = await ask("scout", "four");
    assert.ok(after.costUsd > 0);
    const paid = (await usageRecords(nc, names)).filter((r) => r.ok);
    assert.equal(paid.length, 4);
    const sum = (agentId?: string) => roundUsd(paid.filter((r) => !agentId || r.agentId === agentId).reduce((s, r) => s + r.costUsd, 0));
    // the new call's settle may still be on its way to KV
    const usage = await waitFor("the new call booked", async () => {
      const u = await client.usage();
      return u.agents.scout?.spentUsd === sum("scout") && u.agents.scout.reservedUsd === 0 ? u : undefined;
    }).catch(async () => client.usage());
    assert.equal(usage.agents.scout?.spentUsd, sum("scout"), "scout's spend rebuilt from USAGE, then the new call booked");
    assert.equal(usage.fleet.spentUsd, sum(), "the fleet's too");
    assert.equal(usage.agents.ship?.spentUsd, sum("ship"), "an intact record is untouched");
    assert.equal(usage.agents.scout?.reservedUsd, 0);
  });
});
