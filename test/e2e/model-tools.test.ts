import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { readAuditRecords } from "../../governance/index.js";
import type { ProcessSupervisor } from "../../supervisor/index.js";
import { FleetClient } from "../helpers/fleet-client.js";
import { agentSpec, routerSpec, serviceSpec, startProcesses } from "../helpers/fleet-processes.js";
import { NatsServer } from "../helpers/nats-server.js";
import { OpenAIServer } from "../helpers/openai-server.js";
import { routerFleetYaml } from "../helpers/router-fleet.js";

/**
 * A model that calls tools, with everything real: ship, the router and a tool host as processes of their own, the
 * router's tiers on a scripted OpenAI server, and a local HTTP site for http_check. The model's tool call goes through
 * governance (ship's allow list, the tool host, the AUDIT stream) and its real result comes back to the model.
 */

const PREFIX = "mtools";

describe("the model step calls governed tools (processes)", () => {
  let nats: NatsServer;
  let openai: OpenAIServer;
  let site: Server;
  let siteUrl: string;
  let processes: ProcessSupervisor;
  let client: FleetClient;
  const dir = mkdtempSync(join(tmpdir(), "fleet-model-tools-"));

  before(async () => {
    [nats, openai] = await Promise.all([NatsServer.start(), OpenAIServer.start()]);
    site = createServer((_req, res) => res.writeHead(204).end());
    await new Promise<void>((r) => site.listen(0, "127.0.0.1", r));
    siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}/health`;
    const config = join(dir, "fleet.yaml");
    writeFileSync(
      config,
      // "health of our site" is a health check the local classifier sends to nano; this test scripts ship's default tier
      routerFleetYaml({ baseUrl: openai.baseUrl, prefix: PREFIX, routing: "  classifier: false\n  cache: { enabled: false }\n  localClassifier: { enabled: false }" }) +
        `memory: { dir: ${JSON.stringify(join(dir, "memory"))} }\nbackups: { dir: ${JSON.stringify(join(dir, "backups"))} }\n`,
    );
    processes = startProcesses([
      routerSpec(config, nats.url),
      serviceSpec("tools", config, nats.url),
      agentSpec("ship", config, nats.url),
    ]);
    await processes.start();
    client = await FleetClient.connect(nats.url, PREFIX);
    await client.waitAlive(["ship"]);
  });

  after(async () => {
    await processes?.stop();
    await client?.close();
    site?.close();
    await Promise.all([nats?.stop(), openai?.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it("the model calls http_check; the real result is in the follow-up, the call in AUDIT; a tool it was not given is refused", async () => {
    openai.script(
      "m-workhorse",
      {
        toolCalls: [
          { id: "call_site", name: "http_check", arguments: { url: siteUrl } },
          { id: "call_dns", name: "dns_lookup", arguments: { host: "localhost" } },
        ],
      },
      { content: "The site answers 204; I was not allowed a DNS lookup." },
    );
    const sent = await client.send("ship", "health of our site, please");
    const done = await client.waitState("ship", sent.id, "TASK_STATE_COMPLETED", 30_000);

    const parts = done.artifacts?.[0]?.parts ?? [];
    assert.deepEqual(parts[0], { text: "The site answers 204; I was not allowed a DNS lookup." });
    const data = parts[1] && "data" in parts[1] ? Object(parts[1].data) : {};
    assert.deepEqual(data.toolCalls, [
      { name: "http_check", outcome: "ok" },
      { name: "dns_lookup", outcome: "refused" },
    ]);

    const chats = openai.requests.filter((r) => r.path.endsWith("/chat/completions")).map((r) => Object(r.body));
    assert.equal(chats.length, 2);
    // ship may use http_check only: that is all the model is offered, with the catalogue's input schema
    const offered = chats[0].tools;
    assert.deepEqual(offered.map((t: { function: { name: string } }) => t.function.name), ["http_check"]);
    assert.equal(offered[0].function.parameters.properties.url.type, "string");
    assert.equal(offered[0].function.parameters.$schema, undefined);

    const [result, refusal] = chats[1].messages.slice(-2);
    assert.equal(result.role, "tool");
    assert.equal(result.tool_call_id, "call_site");
    const output = JSON.parse(result.content);
    assert.equal(output.status, 204, "the real tool's output, from the tool host");
    assert.equal(output.url, siteUrl);
    assert.equal(refusal.tool_call_id, "call_dns");
    assert.match(refusal.content, /^TOOL_NOT_ALLOWED: /);

    const audit = await readAuditRecords(client.js, client.names, "msgpack", { agentId: "ship" });
    assert.deepEqual(
      audit.records.map((r) => [r.tool, r.ok, r.mode, r.refusedBy ?? ""]),
      [["http_check", true, "run", ""], ["dns_lookup", false, "run", "agent-host"]],
      "the refused lookup never ran: the agent's host refused it and reported the refusal to the trail",
    );
    assert.deepEqual(audit.records[0]?.input, { url: siteUrl }, "the input as the model wrote it");
  });
});
