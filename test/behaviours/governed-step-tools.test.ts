import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import type { StepTools } from "../../actors/index.js";
import { AgentTools, referenceToolRisks, referenceTools, ToolCatalogue } from "../../governance/index.js";
import { connectNats, decode, ensureFleetResources, FleetNames, ProposalSubmission } from "../../protocol/index.js";
import { governedStepTools } from "../../behaviours/index.js";
import { NatsServer } from "../helpers/nats-server.js";
import { routerFleetConfig } from "../helpers/router-fleet.js";

/**
 * The governed StepTools over a real nats-server, with the reference catalogue and AgentTools as the agent process builds
 * them. No tool host runs here: a direct call's transport failure is part of what is tested (the running tool is in
 * test/e2e/model-tools.test.ts).
 */
describe("governedStepTools", () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let stepTools: StepTools;
  const names = new FleetNames("steptoolsgov");

  before(async () => {
    nats = await NatsServer.start();
    nc = await connectNats({ servers: nats.url, name: "step-tools-test" });
    await ensureFleetResources(nc, names);
    const js = jetstream(nc);
    const config = routerFleetConfig({ baseUrl: undefined, prefix: "steptoolsgov" });
    const tools = new AgentTools({
      nc, js, names, codec: "msgpack", agentId: "ship", timeoutMs: 2_000,
      // money_transfer is allowed and BLOCK all the same: it must never be offered
      allowed: ["http_check", "channel_post", "email_send", "money_transfer", "web_search"],
      risks: new Map(Object.entries(referenceToolRisks())),
    });
    stepTools = governedStepTools({ tools, catalogue: new ToolCatalogue(referenceTools({ js, names, codec: "msgpack", config })) });
  });
  after(async () => {
    await nc?.close();
    await nats?.stop();
  });

  const call = (name: string, args: string) => ({ id: `call-${name}`, name, arguments: args });

  it("offers the allowed tools that are not BLOCK, as OpenAI function tools with their input schema", () => {
    const offered = stepTools.definitions().map((d) => Object(d));
    assert.deepEqual(offered.map((d) => d.function.name).sort(), ["channel_post", "email_send", "http_check"]);
    for (const d of offered) {
      assert.equal(d.type, "function");
      assert.equal(d.function.parameters.type, "object");
      assert.equal(d.function.parameters.$schema, undefined);
    }
    const byName = new Map(offered.map((d) => [d.function.name, d.function]));
    assert.deepEqual(byName.get("http_check").parameters.required, ["url"]);
    assert.match(byName.get("channel_post").description, /PROPOSE: calling it submits a proposal/);
    assert.match(byName.get("email_send").description, /CONFIRM: .*a person must approve/);
  });

  it("a PROPOSE or CONFIRM call becomes a proposal, and the model is told not to wait for it", async () => {
    const result = await stepTools.run(call("channel_post", JSON.stringify({ channel: "console", text: "deployed v2" })), "task-7");
    assert.equal(result.outcome, "proposed");
    const id = /^proposal (\S+) submitted \(channel_post, PROPOSE\); Sentinel decides; it has not run; do not wait for it$/.exec(result.content)?.[1];
    assert.ok(id, result.content);
    const jsm = await jetstreamManager(nc);
    const stored = await jsm.streams.getMessage(names.stream("PROPOSALS"), { last_by_subj: names.proposal("ship", "submitted") });
    const submission = decode(ProposalSubmission, stored!.data);
    assert.ok(submission.ok);
    assert.deepEqual([submission.value.id, submission.value.tool, submission.value.taskId, submission.value.input], [id, "channel_post", "task-7", { channel: "console", text: "deployed v2" }]);

    const confirm = await stepTools.run(call("email_send", JSON.stringify({ to: "ops@mail.localhost", subject: "numbers", body: "the numbers" })));
    assert.equal(confirm.outcome, "proposed");
    assert.match(confirm.content, /\(email_send, CONFIRM\); a person decides/);
  });

  it("refuses what governance refuses and what the model got wrong, in words the model can act on; it never throws", async () => {
    const cases: [string, string, RegExp][] = [
      ["money_transfer", '{"amount":10}', /^TOOL_BLOCKED: /],
      ["dns_lookup", '{"host":"localhost"}', /^TOOL_NOT_ALLOWED: /],
      ["web_search", '{"query":"x"}', /^TOOL_NOT_FOUND: /],
      ["telepathy", "{}", /^TOOL_NOT_FOUND: /],
      ["http_check", '{"url": "http://localhost', /^MESSAGE_INVALID: the arguments of http_check are not JSON .*call it again/],
      ["http_check", '{"url":"ftp://localhost","extra":1}', /^MESSAGE_INVALID: http_check does not take these arguments: url: must be an http\(s\) URL; \(root\): Unrecognized key/],
      ["channel_post", "", /^MESSAGE_INVALID: channel_post does not take these arguments: channel: /],
    ];
    for (const [name, args, expected] of cases) {
      const result = await stepTools.run(call(name, args));
      assert.equal(result.outcome, "refused", `${name} ${args}`);
      assert.match(result.content, expected);
    }
  });

  it("a tool host that is not there is a failed call fed back to the model, not a thrown error", async () => {
    const result = await stepTools.run(call("http_check", JSON.stringify({ url: "http://localhost/health" })));
    assert.equal(result.outcome, "failed");
    assert.match(result.content, /^(TOOL_UNAVAILABLE|TIMEOUT): /);
  });
});
