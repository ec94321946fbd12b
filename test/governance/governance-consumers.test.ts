import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { ensureGovernanceConsumers } from "../../governance/governance-consumers.js";
import { connectNats, ensureFleetResources, FleetNames } from "../../protocol/index.js";
import { NatsServer } from "../helpers/nats-server.js";

/**
 * A running fleet whose APPROVALS stream and `governance-decisions` durable still have the decision subject of before the
 * channel moved into it (`decision.<proposalId>`): the next start updates both in place.
 */
describe("governance's consumers on a fleet from before decisions carried their channel", () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  before(async () => {
    nats = await NatsServer.start();
    nc = await connectNats({ servers: nats.url, name: "governance-consumers-test", longLived: false });
  });
  after(async () => {
    await nc.close();
    await nats.stop();
  });

  it("the stream's subjects and the durable's filter are updated in place, and a decision on the new subject reaches governance", async () => {
    const names = new FleetNames("oldap");
    const jsm = await jetstreamManager(nc);
    const stream = names.stream("APPROVALS");
    await jsm.streams.add({ name: stream, subjects: ["oldap.approval.request.*", "oldap.approval.decision.*"] });
    await jsm.consumers.add(stream, { durable_name: "governance-decisions", filter_subject: "oldap.approval.decision.*", ack_policy: AckPolicy.Explicit });

    await ensureFleetResources(nc, names);
    const js = jetstream(nc);
    const { intake, decisions } = await ensureGovernanceConsumers(js, jsm, names);
    assert.deepEqual((await jsm.streams.info(stream)).config.subjects, ["oldap.approval.request.*", names.approvalDecisions()]);
    assert.equal((await jsm.consumers.info(stream, "governance-decisions")).config.filter_subject, "oldap.approval.decision.*.*");

    await js.publish(names.approvalDecision("telegram", "p-1"), new Uint8Array([1]));
    const messages = await decisions;
    try {
      const first = await messages[Symbol.asyncIterator]().next();
      assert.equal(first.done, false);
      assert.equal(first.value.subject, "oldap.approval.decision.telegram.p-1");
      first.value.ack();
    } finally {
      // close() waits for an iterator to be read to its end; these two are simply stopped
      messages.stop();
      (await intake).stop();
    }
  });
});
