import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { connectNats, electionSafeJetStream, ensureFleetResources, FleetNames, type FleetResources } from "../../protocol/index.js";
import { NatsCluster } from "../../harness/index.js";
import { waitFor } from "../helpers/wait.js";

/**
 * The seconds without a stream leader, on a real three-node cluster: the TASKS stream's and the tasks bucket's leader
 * is killed with -9 while publishes and KV writes go on, and every one of them is acknowledged, none twice, none lost.
 */

const PREFIX = "elect";

describe("writes ride out a JetStream leader election (three-node cluster)", () => {
  let cluster: NatsCluster;
  let nc: NatsConnection;
  let resources: FleetResources;
  const names = new FleetNames(PREFIX);

  before(async () => {
    cluster = await NatsCluster.start();
    nc = await connectNats({ servers: cluster.urls, name: "election-test" });
    resources = await ensureFleetResources(nc, names, { replicas: 3 });
  });

  after(async () => {
    await nc?.close();
    await cluster?.stop();
  });

  it("streams and buckets are R3", async () => {
    const jsm = await jetstreamManager(nc);
    assert.equal((await jsm.streams.info(names.stream("TASKS"))).config.num_replicas, 3);
    assert.equal((await jsm.streams.info(`KV_${names.bucket("tasks")}`)).config.num_replicas, 3);
  });

  it("kill -9 of the leader during 300 publishes and 300 KV writes: all acknowledged, each stored once", async () => {
    const jsm = await jetstreamManager(nc);
    const js = electionSafeJetStream(jetstream(nc));
    const leaderOf = async (stream: string) => (await jsm.streams.info(stream)).cluster?.leader ?? "";
    const leader = await leaderOf(names.stream("TASKS"));
    const victim = cluster.indexOf(leader);
    assert.ok(victim >= 0, `leader ${leader} is one of ours`);
    const N = 300;
    let sent = 0;
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < N; i++) {
      writes.push(js.publish(names.task("scout"), new TextEncoder().encode(`t${i}`), { msgID: `elect-${i}` }).then(() => sent++));
      writes.push(resources.kv.tasks.put(`k${i}`, new TextEncoder().encode(`v${i}`)));
      if (i === 50) await cluster.kill(victim);
      if (i % 10 === 0) await new Promise((r) => setTimeout(r, 5));
    }
    await Promise.all(writes);
    assert.equal(sent, N);
    const newLeader = await waitFor("a new TASKS leader", async () => {
      const l = await leaderOf(names.stream("TASKS")).catch(() => "");
      return l && l !== leader ? l : undefined;
    });
    assert.notEqual(newLeader, leader);
    assert.equal((await jsm.streams.info(names.stream("TASKS"))).state.messages, N, "each publish stored once");
    for (let i = 0; i < N; i += 37) assert.equal(new TextDecoder().decode((await resources.kv.tasks.get(`k${i}`))?.value), `v${i}`);
    await cluster.restart(victim);
  });
});
