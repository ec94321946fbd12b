import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jetstream } from "@nats-io/jetstream";
import { pino } from "pino";
import { AgentRuntime, TaskDedup, TaskStore } from "../../actors/index.js";
import { offlineBehaviour } from "../../behaviours/index.js";
import { WakeWebhook } from "../../bridges/index.js";
import { parseFleetConfig, type FleetConfig } from "../../config/index.js";
import { HEADERS, type Task } from "../../protocol/index.js";
import { EventRouter } from "../../supervisor/index.js";
import { FleetClient } from "../helpers/fleet-client.js";
import { NatsServer } from "../helpers/nats-server.js";
import { routerFleetYaml } from "../helpers/router-fleet.js";
import { waitFor } from "../helpers/wait.js";

/*
 * Events of a source the config maps to an agent become that agent's tasks directly: through the webhook (a real HTTP
 * server), EVENTS, the scheduler's event router and ship's own A2A service (a real agent runtime), with discovery dedup
 * at ship. A malformed event of that source is dead-lettered; another source's events are left to Atlas.
 */

const log = pino({ level: "silent" });

describe("event router", () => {
  let server: NatsServer;
  let runtime: AgentRuntime;
  let client: FleetClient;
  let webhook: WakeWebhook;
  let port: number;
  let config: FleetConfig;
  let router: EventRouter;
  const clock = { t: Date.now(), now() { return this.t; } };

  before(async () => {
    server = await NatsServer.start();
    config = parseFleetConfig(
      routerFleetYaml({ baseUrl: undefined, prefix: "fleet" }) +
        `
pipelines:
  site-health:
    description: Checks a site's health
    steps:
      - id: check
        tool: http_check
        input: { url: "{{input.target}}" }
events:
  sources:
    uptime-robot: { agent: ship, pipeline: site-health }
`,
      "events-test.yaml",
    );
    runtime = await AgentRuntime.start(
      {
        servers: server.url,
        prefix: "fleet",
        codec: "msgpack",
        maxPayloadBytes: 65536,
        tasks: config.tasks,
        quietHours: { start: "00:00", end: "00:00", timeZone: "UTC" },
        runId: "events-test",
        processName: "events-test-agents",
      },
      config.agents.filter((a) => a.id === "ship"),
      (a) => offlineBehaviour(a),
      { log },
    );
    client = await FleetClient.connect(server.url);
    webhook = new WakeWebhook({ nc: client.nc, names: client.names, agents: ["ship"], port: 0, log, js: client.js, codec: "msgpack", clock });
    port = await webhook.start();
    router = new EventRouter({
      nc: client.nc,
      js: jetstream(client.nc),
      jsm: client.resources.jsm,
      kv: client.resources.kv,
      names: client.names,
      codec: "msgpack",
      routes: config.events.sources,
      clock,
      log,
      lookbackMs: 3_600_000,
    });
  });
  after(async () => {
    await router?.stop();
    await webhook?.stop();
    await client?.close();
    await runtime?.stop();
    await server?.stop();
  });

  const post = (source: string, body: unknown) =>
    fetch(`http://127.0.0.1:${port}/event/${source}`, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" } });

  it("a webhook event of a mapped source becomes the agent's task with its pipeline; similar work just completed is not created again", async () => {
    assert.equal((await post("uptime-robot", { id: "ur-1", type: "down", subject: "shop.example.com", summary: "shop.example.com is down" })).status, 202);
    const first = await router.tick();
    assert.equal(first.routed.length, 1);
    const store = new TaskStore(client.resources.kv.tasks, client.names, "msgpack");
    const task = await store.get("ship", first.routed[0]!);
    const metadata = task?.history?.[0]?.metadata;
    assert.equal(Object(metadata?.work).pipeline, "site-health");
    assert.equal(Object(metadata?.work).trigger, "event");
    assert.deepEqual(Object(Object(metadata?.work).input).subject, "shop.example.com");
    assert.equal(metadata?.target, "shop.example.com");
    const done: Task = await client.waitState("ship", task!.id, "TASK_STATE_COMPLETED");
    assert.equal(done.status.state, "TASK_STATE_COMPLETED");

    // the monitor says it again (a new event id): the same work was completed minutes ago
    assert.equal((await post("uptime-robot", { id: "ur-2", type: "down", subject: "shop.example.com", summary: "shop.example.com is down" })).status, 202);
    const second = await router.tick();
    assert.deepEqual(second.routed, []);
    assert.equal(second.deduplicated.length, 1);
    const rejected = await store.get("ship", second.deduplicated[0]!);
    assert.equal(rejected?.status.state, "TASK_STATE_REJECTED");
    assert.equal(rejected?.metadata?.duplicateOf, task!.id);
    assert.equal(rejected?.metadata?.dedupLayer, "task", "created within 48 h: the task layer answers first");

    // work like it was completed three days ago: the discovery window (7 days) still holds it back
    const threeDaysAgo = () => Date.now() - 3 * 86_400_000;
    const dedup = new TaskDedup({ kv: client.resources.kv.dedup, codec: "msgpack", now: threeDaysAgo });
    assert.deepEqual(await dedup.admit("ship", "t-old", "uptime-robot: blog.example.com certificate expired (blog.example.com)", "discovery"), { admitted: true });
    await dedup.completed("ship", "t-old");
    assert.equal((await post("uptime-robot", { id: "ur-3", subject: "blog.example.com", summary: "blog.example.com certificate expired" })).status, 202);
    const third = await router.tick();
    assert.equal(third.deduplicated.length, 1);
    const old = await store.get("ship", third.deduplicated[0]!);
    assert.equal(old?.metadata?.duplicateOf, "t-old");
    assert.equal(old?.metadata?.dedupLayer, "discovery");

    // nothing new: nothing happens, the cursor holds
    assert.deepEqual(await router.tick(), { routed: [], deduplicated: [], refused: 0 });
  });

  it("an event another system published that does not parse is dead-lettered; another source's events are left to Atlas", async () => {
    client.nc.publish(client.names.event("uptime-robot"), new TextEncoder().encode('{"subject": 42}'));
    client.nc.publish(client.names.event("monitor"), new TextEncoder().encode('{"summary": "for atlas"}'));
    await client.nc.flush();
    const pass = await waitFor("the two events stored", async () => {
      const got = await router.tick();
      return got.refused > 0 ? got : undefined;
    });
    assert.deepEqual(pass, { routed: [], deduplicated: [], refused: 1 });
    const dead = await client.resources.jsm.streams.getMessage(client.names.stream("DLQ"), { last_by_subj: client.names.dlq("events") });
    assert.equal(dead?.header.get(HEADERS.dlqCode), "MESSAGE_INVALID");
    assert.equal(dead?.header.get(HEADERS.dlqSubject), "fleet.event.uptime-robot");
    assert.equal((await new TaskStore(client.resources.kv.tasks, client.names, "msgpack").list("ship")).length, 3, "no task from either");
  });
});
