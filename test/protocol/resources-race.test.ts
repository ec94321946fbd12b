import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { NatsConnection } from "@nats-io/nats-core";
import { connectNats, ensureFleetResources, FleetNames } from "../../protocol/index.js";
import { NatsServer } from "../helpers/nats-server.js";

describe("creating the fleet's streams and buckets", () => {
  let nats: NatsServer;
  const connections: NatsConnection[] = [];
  before(async () => {
    nats = await NatsServer.start();
    for (let k = 0; k < 6; k++) connections.push(await connectNats({ servers: nats.url, name: `race-${k}`, longLived: false }));
  });
  after(async () => {
    await Promise.all(connections.map((nc) => nc.close()));
    await nats.stop();
  });

  it("six processes starting at once on a fresh server all get them (the losers of each create race look again)", async () => {
    for (const prefix of ["racea", "raceb", "racec"]) {
      const names = new FleetNames(prefix);
      const outcomes = await Promise.allSettled(connections.map((nc) => ensureFleetResources(nc, names)));
      const failed = outcomes.filter((o) => o.status === "rejected").map((o) => String((o as PromiseRejectedResult).reason));
      assert.deepEqual(failed, [], `${prefix}: every start succeeds`);
    }
  });
});
