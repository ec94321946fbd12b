import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { Gateway, GATEWAY_SERVICE } from "../../bridges/index.js";
import { GatewayConfig } from "../../config/index.js";
import { fleetPermissions } from "../../governance/index.js";
import { discoverServices, FleetNames, replyResult, requestOperation, systemClock, type Task } from "../../protocol/index.js";
import { refusals, startSecuredServer, type SecuredServer } from "../helpers/governed-fleet.js";
import { waitFor } from "../helpers/wait.js";

/*
 * The gateway's NATS identity on a real nats-server with the authorization `fleet up` generates: it may carry the A2A
 * operations of the agents some peer was granted and read their events, and nothing else: no other agent, no inbox or
 * task stream, no KV, no JetStream API, no tool, no approval. Its serving twin answers NATS micro discovery (so `fleet
 * status` finds it) and may publish replies only.
 */

const GATEWAY_YAML = `gateway:
  peers:
    - { id: acme, tokenEnv: ACME_GATEWAY_TOKEN, agents: [scout] }
`;

describe("the gateway's NATS identity can do what the gateway needs and no more", () => {
  let secured: SecuredServer;
  const names = new FleetNames("fleet");

  before(async () => {
    secured = await startSecuredServer(names, { extraYaml: GATEWAY_YAML });
  });
  after(async () => {
    await secured?.stop();
  });

  it("asks a granted agent's A2A operations and reads its events; everything else is refused by the broker", async () => {
    // scout's serving twin answers GetTask as the real agent would
    const scout = await secured.as("serve:agent:scout");
    const task: Task = { id: "t-1", contextId: "t-1", status: { state: "TASK_STATE_WORKING", timestamp: new Date(0).toISOString() } };
    scout.subscribe(names.agentOperations("scout"), { queue: "agent-scout", callback: (_err, msg) => replyResult(msg, task, "msgpack") });
    await scout.flush();

    const gateway = await secured.as("gateway");
    const seen = refusals(gateway);
    assert.deepEqual(await requestOperation(gateway, names, "scout", "GetTask", { id: "t-1" }), task);
    const events = gateway.subscribe(names.agentEvents("scout"));
    await gateway.flush();

    const forbidden = [
      names.agentOperation("ship", "SendMessage"),
      names.agentOperation("atlas", "GetTask"),
      names.agentInbox("scout"),
      names.agentControl("scout", "Restart"),
      names.task("scout"),
      names.tool("web_fetch", "scout"),
      names.approvalDecision("telegram", "p-1"),
      names.proposal("scout", "submitted"),
      names.event("webhook"),
      names.wake("scout"),
      `$KV.${names.bucket("tasks")}.scout.t-1`,
      "$JS.API.INFO",
      `$JS.API.STREAM.INFO.${names.stream("TASKS")}`,
    ];
    for (const subject of forbidden) gateway.publish(subject, new Uint8Array());
    for (const subject of [names.agentEvents("ship"), names.allAgentEvents(), names.all(), "_INBOX.>"]) gateway.subscribe(subject);
    await gateway.flush().catch(() => undefined);
    await waitFor("every refusal to be reported", () => forbidden.every((s) => seen.some((r) => r.includes(`Publish to "${s}"`))) && seen.filter((r) => /Subscription to/.test(r)).length >= 4, 10_000);
    assert.ok(!seen.some((r) => r.includes(names.agentEvents("scout")) || r.includes(names.agentOperation("scout", "GetTask"))), seen.join("\n"));
    events.unsubscribe();
  });

  it("its serving twin answers NATS micro discovery with where it listens and whom it serves, and may publish nothing else", async () => {
    const [nc, serveNc] = [await secured.as("gateway"), await secured.as("serve:gateway")];
    const seen = refusals(serveNc);
    const settings = GatewayConfig.parse({ port: 0, peers: [{ id: "acme", tokenEnv: "ACME_GATEWAY_TOKEN", agents: ["scout"] }] });
    const gateway = await Gateway.start({ nc, serveNc, names, config: secured.fleet.config, settings, tokens: { ACME_GATEWAY_TOKEN: "acme-token-0123456789" }, clock: systemClock, log: pino({ level: "silent" }) });
    try {
      const found = await waitFor("the gateway to answer discovery", async () => (await discoverServices(secured.operator, 300)).find((s) => s.name === GATEWAY_SERVICE), 5_000);
      assert.deepEqual([found.metadata?.["url"], found.metadata?.["peers"], found.metadata?.["tokens"]], [gateway.url, "acme", "1"]);
      assert.equal(found.metadata?.["pid"], String(process.pid));
      serveNc.publish(names.agentOperation("scout", "SendMessage"), new Uint8Array());
      await serveNc.flush().catch(() => undefined);
      await waitFor("the twin's publish to be refused", () => seen.some((r) => r.includes("SendMessage")), 5_000);
      assert.deepEqual(fleetPermissions(secured.fleet.config, {}).get("serve:gateway")?.publish.allow, ["_INBOX.>"], "replies only");
    } finally {
      await gateway.stop();
    }
    // nothing else serves on this server: no answer at all is "no responders"
    const after = await discoverServices(secured.operator, 300).catch(() => []);
    assert.equal(after.find((s) => s.name === GATEWAY_SERVICE), undefined, "a stopped gateway no longer answers");
  });

  it("has no rights at all when no peer is configured", async () => {
    const withPeers = fleetPermissions(secured.fleet.config, {}).get("gateway");
    assert.deepEqual(withPeers?.publish.allow, ["fleet.agent.scout.a2a.*"]);
    const config = { ...secured.fleet.config, gateway: { ...secured.fleet.config.gateway!, peers: [] } };
    assert.deepEqual(fleetPermissions(config, {}).get("gateway")?.publish.allow, []);
  });
});
