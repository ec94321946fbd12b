import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { proposalIdFor } from "../../governance/index.js";
import { ProposalSubmission } from "../../protocol/index.js";

describe("proposal ids", () => {
  it("a task proposing the same action again (a redelivery) gets the same id, whatever the input's key order", () => {
    const a = proposalIdFor("ship", "channel_post", { channel: "ops", text: "deployed" }, "t-1");
    assert.equal(a, proposalIdFor("ship", "channel_post", { text: "deployed", channel: "ops" }, "t-1"));
    assert.ok(ProposalSubmission.shape.id.safeParse(a).success, "a valid proposal id");
  });

  it("another task, agent, tool or input is another proposal; outside a task every proposal is new", () => {
    const base = proposalIdFor("ship", "channel_post", { text: "x" }, "t-1");
    assert.notEqual(base, proposalIdFor("ship", "channel_post", { text: "x" }, "t-2"));
    assert.notEqual(base, proposalIdFor("scout", "channel_post", { text: "x" }, "t-1"));
    assert.notEqual(base, proposalIdFor("ship", "email_send", { text: "x" }, "t-1"));
    assert.notEqual(base, proposalIdFor("ship", "channel_post", { text: "y" }, "t-1"));
    assert.notEqual(proposalIdFor("ship", "channel_post", { text: "x" }, undefined), proposalIdFor("ship", "channel_post", { text: "x" }, undefined));
  });
});
