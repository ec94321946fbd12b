import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { startSpreadFleet, workThrough, type SpreadFleet } from "./spread-fleet.js";

/**
 * kill -9 of the TASKS stream's leader while tasks and proposals are in flight, on a three-node cluster with the fleet's
 * processes spread over the nodes (each connected to one node). Every acknowledged task completes once (one provider
 * call, COMPLETED), every proposal completes with one run of its tool; none lost, none twice. FLEET_SOAK=1: 1,000 each.
 */

const COUNT = process.env.FLEET_SOAK === "1" ? 1000 : 100;

describe(`kill -9 of the stream leader with ${COUNT} tasks and ${COUNT} proposals in flight (three-node cluster)`, () => {
  let f: SpreadFleet;

  before(async () => {
    f = await startSpreadFleet("ckill");
  });

  after(async () => {
    await f?.stop();
  });

  it("every acknowledged task and proposal completes exactly once", { timeout: COUNT > 100 ? 900_000 : 150_000 }, async () => {
    const jsm = await jetstreamManager(f.client.nc);
    const leader = (await jsm.streams.info(f.client.names.stream("TASKS"))).cluster?.leader ?? "";
    const victim = f.cluster.indexOf(leader);
    assert.ok(victim >= 0, `TASKS leader ${leader} is a node of the cluster`);
    await workThrough(f, COUNT, async (sent) => {
      if (sent >= COUNT * 0.3 && sent < COUNT * 0.6 && f.cluster.node(victim).running) await f.cluster.kill(victim);
      // back once the work is well under way without it
      if (sent >= COUNT * 0.6 && !f.cluster.node(victim).running) await f.cluster.node(victim).start();
    }, COUNT > 100 ? 600_000 : 90_000);
  });
});
