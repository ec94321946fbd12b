import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { AgentRuntime, taskIdFor } from "../../actors/index.js";
import { offlineBehaviour } from "../../behaviours/index.js";
import { loadFleetConfig, type CronJob } from "../../config/index.js";
import { decode, OutboxRecord, type FleetResources } from "../../protocol/index.js";
import { CronScheduler } from "../../supervisor/index.js";
import { FleetClient } from "../helpers/fleet-client.js";
import { writeTestFleet } from "../helpers/fleet-processes.js";
import { NatsServer } from "../helpers/nats-server.js";

const log = pino({ level: "silent" });
const at = (iso: string) => Date.parse(iso);

/** Cron jobs on a simulated clock against a real agent runtime and real streams. */
describe("CronScheduler", () => {
  let server: NatsServer;
  let fleet: ReturnType<typeof writeTestFleet>;
  let runtime: AgentRuntime;
  let client: FleetClient;
  before(async () => {
    server = await NatsServer.start();
    fleet = writeTestFleet();
    const config = loadFleetConfig(fleet.file);
    runtime = await AgentRuntime.start(
      {
        servers: server.url,
        prefix: "fleet",
        codec: "msgpack",
        maxPayloadBytes: 65536,
        tasks: config.tasks,
        quietHours: { start: "00:00", end: "00:00", timeZone: "UTC" },
        runId: "cron-test",
        processName: "cron-test-agents",
      },
      config.agents.filter((a) => a.id === "scout"),
      (a) => offlineBehaviour(a),
      { log },
    );
    client = await FleetClient.connect(server.url);
  });
  after(async () => {
    await client.close();
    await runtime.stop();
    await server.stop();
    fleet.cleanup();
  });

  function scheduler(jobs: CronJob[], clock: { now(): number }, resources: FleetResources = client.resources): CronScheduler {
    return new CronScheduler({ nc: client.nc, js: client.js, kv: resources.kv, names: client.names, codec: "msgpack", jobs, timeZone: "Europe/Berlin", clock, log });
  }

  async function outbox(channel: string): Promise<OutboxRecord[]> {
    const stream = client.names.stream("OUTBOX");
    const info = await client.resources.jsm.streams.info(stream);
    const out: OutboxRecord[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
      const m = await client.resources.jsm.streams.getMessage(stream, { seq }).catch(() => undefined);
      if (!m || m.subject !== client.names.outbox(channel)) continue;
      const d = decode(OutboxRecord, m.data);
      if (d.ok) out.push(d.value);
    }
    return out;
  }

  it("runs a job at its local time, delivers only where it says, and not twice for the same due time", async () => {
    const job: CronJob = { id: "pricing", agent: "scout", at: "09:00", message: "check competitor pricing", delivery: { channel: "telegram", to: "ops-chat" } };
    const clock = { now: () => at("2026-11-23T07:59:00Z") }; // 08:59 in Berlin (UTC+1)
    const cron = scheduler([job], clock);
    await cron.tick(); // first sight of the job: nothing was due before it existed
    assert.equal((await outbox("telegram")).length, 0);

    clock.now = () => at("2026-11-23T08:00:05Z"); // 09:00:05 Berlin
    await cron.tick();
    const delivered = await outbox("telegram");
    assert.equal(delivered.length, 1);
    assert.equal(delivered[0]!.to, "ops-chat");
    assert.match(delivered[0]!.text, /\[offline\].*check competitor pricing/);
    const dueAt = at("2026-11-23T08:00:00Z");
    assert.equal(delivered[0]!.source.taskId, taskIdFor("scout", `cron:pricing:${dueAt}`));

    clock.now = () => at("2026-11-23T08:30:00Z");
    await cron.tick();
    assert.equal((await outbox("telegram")).length, 1, "one run per due time");
  });

  it("delivery none: the job runs and nothing is sent anywhere", async () => {
    const job: CronJob = { id: "quiet-research", agent: "scout", at: "10:00", message: "research keywords", delivery: "none" };
    const clock = { now: () => at("2026-11-23T08:59:00Z") };
    const cron = scheduler([job], clock);
    await cron.tick();
    const before = (await client.resources.jsm.streams.info(client.names.stream("OUTBOX"))).state.messages;
    clock.now = () => at("2026-11-23T09:00:10Z");
    await cron.tick();
    const task = await client.getTask("scout", taskIdFor("scout", `cron:quiet-research:${at("2026-11-23T09:00:00Z")}`));
    assert.equal(task.status.state, "TASK_STATE_COMPLETED");
    assert.equal((await client.resources.jsm.streams.info(client.names.stream("OUTBOX"))).state.messages, before);
  });

  it("after three days down, the missed runs coalesce into one catch-up run (no replay storm)", async () => {
    const job: CronJob = { id: "daily-digest", agent: "scout", at: "07:00", message: "daily digest of competitor news", delivery: { channel: "slack", to: "#ops" } };
    const clock = { now: () => at("2026-11-20T05:00:00Z") };
    const cron = scheduler([job], clock);
    await cron.tick(); // seen on the 20th, before 07:00
    clock.now = () => at("2026-11-23T12:00:00Z"); // the scheduler was down since
    await cron.tick();
    await cron.tick();
    const delivered = await outbox("slack");
    assert.equal(delivered.length, 1, "one catch-up run, not three");
    assert.equal(delivered[0]!.source.taskId, taskIdFor("scout", `cron:daily-digest:${at("2026-11-23T06:00:00Z")}`), "for the latest due time");
  });

  it("the same text to the same recipient within the outbox window is sent once (channel dedup)", async () => {
    const a: CronJob = { id: "twin-a", agent: "scout", at: "11:00", message: "competitor pricing twin", delivery: { channel: "discord", to: "ops" } };
    const clock = { now: () => at("2026-11-23T09:59:00Z") };
    const cron = scheduler([a], clock);
    await cron.tick();
    clock.now = () => at("2026-11-23T10:00:01Z");
    await cron.tick();
    // a second scheduler copy that lost its record would run the same due time again: same task, same text, one message
    await client.resources.kv.schedules.delete("cron.twin-a");
    const again = scheduler([a], { now: () => at("2026-11-23T09:59:30Z") });
    await again.tick();
    clock.now = () => at("2026-11-23T10:00:02Z");
    await scheduler([a], clock).tick();
    assert.equal((await outbox("discord")).length, 1);
  });

  it("weekday jobs skip the other days", () => {
    const cron = scheduler([], { now: () => 0 });
    const job: CronJob = { id: "weekly", agent: "scout", at: "09:00", days: ["mon"], message: "weekly growth report", delivery: "none" };
    // Tuesday 2026-11-24 09:30 Berlin → next Monday 2026-11-30 09:00 Berlin
    assert.equal(cron.nextDue(job, at("2026-11-24T08:30:00Z")), at("2026-11-30T08:00:00Z"));
  });
});
