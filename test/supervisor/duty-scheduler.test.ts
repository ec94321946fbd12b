import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { AgentRuntime, taskIdFor, TaskStore } from "../../actors/index.js";
import { composeBehaviour, offlineBehaviour } from "../../behaviours/index.js";
import { DutyConfig, loadFleetConfig } from "../../config/index.js";
import { decode, dutyRunKey, DutyRunRecord, encode, OutboxRecord, type TaskWork } from "../../protocol/index.js";
import { DutyScheduler, type DutySchedulerOptions } from "../../supervisor/index.js";
import { DUTY_HEADER, dutyRows, readDutyRecords } from "../../cli/duty-status.js";
import { pipelineStandIn } from "../fixtures/pipeline-stand-in.js";
import { FleetClient } from "../helpers/fleet-client.js";
import { writeTestFleet } from "../helpers/fleet-processes.js";
import { NatsServer } from "../helpers/nats-server.js";
import { waitFor } from "../helpers/wait.js";

const log = pino({ level: "silent" });
const at = (iso: string) => Date.parse(iso);

/**
 * Duties on a simulated clock against a real nats-server, a real agent runtime (its pipeline stage stood in for by a
 * fixture keeping the runner's contract) and a real HTTP site that can be broken.
 */
describe("DutyScheduler", () => {
  let server: NatsServer;
  let fleet: ReturnType<typeof writeTestFleet>;
  let runtime: AgentRuntime;
  let client: FleetClient;
  let site: Server;
  let siteUrl: string;
  let broken = false;
  const agent: { seen: TaskWork[]; titles: string[]; hold?: Promise<void> | undefined; heldUntil?: number | undefined } = { seen: [], titles: [] };

  before(async () => {
    site = createServer((_req, res) => {
      res.writeHead(broken ? 503 : 200, { "content-type": "text/plain" });
      res.end(broken ? "down" : "ok");
    });
    await new Promise<void>((resolve) => site.listen(0, "127.0.0.1", resolve));
    siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}/`;
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
        runId: "duty-test",
        processName: "duty-test-agents",
      },
      config.agents.filter((a) => a.id === "ship"),
      (a) => composeBehaviour([pipelineStandIn(agent)], offlineBehaviour(a)),
      { log },
    );
    client = await FleetClient.connect(server.url);
  });
  after(async () => {
    await client.close();
    await runtime.stop();
    await server.stop();
    site.closeAllConnections();
    await new Promise((resolve) => site.close(resolve));
    fleet.cleanup();
  });

  const duty = (fields: Record<string, unknown>): DutyConfig => DutyConfig.parse({ pipeline: "site-health", input: { url: siteUrl }, ...fields });

  function scheduler(duties: DutyConfig[], clock: { now(): number }, extra: Partial<DutySchedulerOptions> = {}): DutyScheduler {
    return new DutyScheduler({
      nc: client.nc,
      js: client.js,
      kv: client.resources.kv,
      names: client.names,
      codec: "msgpack",
      agents: [{ id: "ship", duties }],
      pipelines: { "site-health": { description: "Check that a site answers" } },
      timeZone: "Europe/Berlin",
      clock,
      log,
      ...extra,
    });
  }

  async function record(dutyId: string): Promise<DutyRunRecord | undefined> {
    const entry = await client.resources.kv.schedules.get(dutyRunKey("ship", dutyId));
    if (!entry || entry.operation !== "PUT") return undefined;
    const d = decode(DutyRunRecord, entry.value);
    return d.ok ? d.value : undefined;
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

  const taskOf = (dutyId: string, dueAt: number) => taskIdFor("ship", `duty:ship.${dutyId}:${dueAt}`);
  const stored = async (taskId: string) => (await client.resources.kv.tasks.get(client.names.taskKey("ship", taskId)))?.operation === "PUT";

  it("an interval duty runs on its grid; a clean run names its pipeline and duty, and delivers nothing", async () => {
    broken = false;
    const grid = duty({ id: "grid", every: "30m", delivery: { channel: "dutyclean", to: "ops" } });
    const clock = { now: () => at("2026-11-23T10:07:00Z") };
    const duties = scheduler([grid], clock);
    await duties.tick(); // first sight: nothing was due before the duty existed
    assert.equal((await record("grid"))?.nextDueAt, at("2026-11-23T10:30:00Z"));
    assert.equal((await record("grid"))?.schedule, "every 30m");

    clock.now = () => at("2026-11-23T10:29:59Z");
    await duties.tick();
    assert.equal((await record("grid"))?.lastRun, undefined);

    clock.now = () => at("2026-11-23T10:30:02Z");
    await duties.tick();
    const after = await record("grid");
    const dueAt = at("2026-11-23T10:30:00Z");
    assert.deepEqual(
      { outcome: after?.lastRun?.outcome, delivered: after?.lastRun?.delivered, taskId: after?.lastRun?.taskId, next: after?.nextDueAt, counts: after?.counts, running: after?.running },
      { outcome: "clean", delivered: false, taskId: taskOf("grid", dueAt), next: at("2026-11-23T11:00:00Z"), counts: { clean: 1, found: 0, failed: 0 }, running: undefined },
    );
    const task = await client.getTask("ship", taskOf("grid", dueAt));
    assert.equal(task.status.state, "TASK_STATE_COMPLETED");
    assert.deepEqual(agent.seen.at(-1), { pipeline: "site-health", input: { url: siteUrl }, duty: "grid", trigger: "duty" });
    assert.equal(agent.titles.at(-1), "Duty grid (ship): Check that a site answers");
    assert.equal((await outbox("dutyclean")).length, 0, "a clean run says nothing");

    await duties.tick();
    assert.equal((await record("grid"))?.counts.clean, 1, "one run per due time");
  });

  it("a run that finds something delivers its report once, where the duty says", async () => {
    broken = true;
    const watch = duty({ id: "watch", every: "10m", tier: "triage", delivery: { channel: "dutyfound", to: "ops" } });
    const clock = { now: () => at("2026-11-23T12:01:00Z") };
    const duties = scheduler([watch], clock);
    await duties.tick();
    clock.now = () => at("2026-11-23T12:10:01Z");
    await duties.tick();
    await duties.tick();
    const delivered = await outbox("dutyfound");
    assert.equal(delivered.length, 1);
    const dueAt = at("2026-11-23T12:10:00Z");
    assert.deepEqual(delivered[0]!.source, { agentId: "ship", taskId: taskOf("watch", dueAt), duty: "watch" });
    assert.equal(delivered[0]!.to, "ops");
    assert.equal(delivered[0]!.text, `ship · watch: ${siteUrl} answered 503`);
    const r = await record("watch");
    assert.deepEqual([r?.lastRun?.outcome, r?.lastRun?.findings, r?.lastRun?.delivered], ["found", 1, true]);
    assert.equal(agent.seen.at(-1)?.tier, "triage");
  });

  it("a cron duty runs at 09:00 in the fleet's zone on both sides of the spring-forward change", async () => {
    broken = false;
    const morning = duty({ id: "morning", cron: "0 9 * * *", delivery: "none" });
    const clock = { now: () => at("2026-03-27T12:00:00Z") };
    const duties = scheduler([morning], clock);
    await duties.tick();
    assert.equal((await record("morning"))?.nextDueAt, at("2026-03-28T08:00:00Z"), "09:00 CET is 08:00 UTC");

    clock.now = () => at("2026-03-28T07:59:59Z");
    await duties.tick();
    assert.equal((await record("morning"))?.lastRun, undefined);
    clock.now = () => at("2026-03-28T08:00:01Z");
    await duties.tick();
    assert.equal((await record("morning"))?.lastRun?.dueAt, at("2026-03-28T08:00:00Z"));
    assert.equal((await record("morning"))?.nextDueAt, at("2026-03-29T07:00:00Z"), "09:00 CEST is 07:00 UTC");

    clock.now = () => at("2026-03-29T06:59:00Z");
    await duties.tick();
    assert.equal((await record("morning"))?.lastRun?.dueAt, at("2026-03-28T08:00:00Z"));
    clock.now = () => at("2026-03-29T07:00:01Z");
    await duties.tick();
    assert.equal((await record("morning"))?.lastRun?.dueAt, at("2026-03-29T07:00:00Z"));
    assert.equal((await record("morning"))?.counts.clean, 2);
  });

  it("after hours down, the missed due times coalesce into one run, for the latest", async () => {
    broken = false;
    const hourly = duty({ id: "hourly", every: "1h", delivery: "none" });
    const clock = { now: () => at("2026-11-23T05:10:00Z") };
    const duties = scheduler([hourly], clock);
    await duties.tick();
    clock.now = () => at("2026-11-23T10:40:00Z"); // the scheduler was down since
    await duties.tick();
    await duties.tick();
    const r = await record("hourly");
    assert.equal(r?.counts.clean, 1, "one catch-up run, not five");
    assert.equal(r?.lastRun?.dueAt, at("2026-11-23T10:00:00Z"));
    for (const hour of ["06", "07", "08", "09"]) assert.equal(await stored(taskOf("hourly", at(`2026-11-23T${hour}:00:00Z`))), false);
  });

  it("a scheduler stopped mid-run: the next one completes the same task and delivers it once", async () => {
    broken = true;
    const restart = duty({ id: "restart", every: "5m", delivery: { channel: "dutyrestart", to: "ops" } });
    const clock = { now: () => at("2026-11-23T14:01:00Z") };
    const first = scheduler([restart], clock);
    await first.tick();
    let release: () => void = () => undefined;
    agent.hold = new Promise<void>((resolve) => (release = resolve));
    clock.now = () => at("2026-11-23T14:05:01Z");
    const seen = agent.seen.length;
    const ticking = first.tick();
    await waitFor("the run to reach the agent", () => agent.seen.length > seen);
    first.stop(); // the scheduler goes away while the agent works
    await ticking;
    const dueAt = at("2026-11-23T14:05:00Z");
    assert.deepEqual((await record("restart"))?.running?.taskId, taskOf("restart", dueAt));
    assert.equal((await outbox("dutyrestart")).length, 0);
    release();
    agent.hold = undefined;
    await waitFor("the task to finish", async () => (await client.getTask("ship", taskOf("restart", dueAt))).status.state === "TASK_STATE_COMPLETED");

    // the next scheduler starts after the following due time: the interrupted run is completed first, under its own due time
    clock.now = () => at("2026-11-23T14:10:30Z");
    const second = scheduler([restart], clock);
    await second.tick();
    let delivered = await outbox("dutyrestart");
    assert.equal(delivered.length, 1);
    assert.equal(delivered[0]!.source.taskId, taskOf("restart", dueAt));
    assert.equal((await record("restart"))?.lastRun?.dueAt, dueAt);
    assert.equal(agent.seen.length, seen + 1, "the agent ran it once: the second scheduler found it done");

    // killed after delivering and before recording: the run is done again, and the outbox takes the same report once
    const { lastRun: _done, ...before } = (await record("restart"))!;
    await client.resources.kv.schedules.put(dutyRunKey("ship", "restart"), encode({ ...before, lastDueAt: at("2026-11-23T14:01:00Z"), running: { dueAt, taskId: taskOf("restart", dueAt), startedAt: dueAt } }));
    await scheduler([restart], clock).tick();
    delivered = await outbox("dutyrestart");
    assert.equal(delivered.length, 1, "delivered once");
    assert.equal((await record("restart"))?.lastRun?.taskId, taskOf("restart", dueAt));

    // and then the latest due time runs as usual
    await scheduler([restart], clock).tick();
    assert.equal((await record("restart"))?.lastRun?.dueAt, at("2026-11-23T14:10:00Z"));
    second.stop();
  });

  it("fleet status shows each duty's schedule, last outcome and next due time from the records", async () => {
    const now = at("2026-11-23T10:40:00Z");
    const rows = dutyRows(await readDutyRecords(client.resources.kv.schedules), now, "Europe/Berlin");
    const row = (id: string) => {
      const found = rows.find((r) => r[0] === `ship/${id}`);
      assert.ok(found, `a row for ${id} in ${JSON.stringify(rows)}`);
      return Object.fromEntries(DUTY_HEADER.map((h, i) => [h, found[i]]));
    };
    assert.deepEqual(row("grid"), { DUTY: "ship/grid", SCHEDULE: "every 30m", "LAST RUN": `clean (${"10 min"} ago)`, "NEXT DUE": "Mon 12:00 (in 20 min)", "CLEAN/FOUND/FAILED": "1/0/0" });
    assert.match(row("watch")["LAST RUN"]!, /^found 1, delivered \(/);
    assert.equal(row("morning").SCHEDULE, "cron 0 9 * * *");
  });

  it("quiet hours: the duty keeps watching each interval, what it found stays one open problem, and the held run's report is delivered once in the morning", async () => {
    broken = true;
    const night = duty({ id: "night", every: "5m", delivery: { channel: "dutynight", to: "ops" } });
    // a night in the real future: the agent runtime's own clock keeps the held task held for the whole test
    const clock = { now: () => at("2027-01-11T23:51:00Z") };
    const duties = scheduler([night], clock);
    await duties.tick();
    const until = at("2027-01-12T06:30:00Z");
    agent.heldUntil = until;
    const seen = agent.seen.length;
    clock.now = () => at("2027-01-11T23:55:01Z");
    const heldAt = at("2027-01-11T23:55:00Z");
    await duties.tick();
    let r = await record("night");
    assert.deepEqual(r?.held, [{ dueAt: heldAt, taskId: taskOf("night", heldAt), until }]);
    assert.equal(r?.running, undefined, "the held run is no run in flight: the duty goes on");
    assert.deepEqual(r?.open, [{ subject: siteUrl, key: "http-down", since: at("2027-01-11T23:55:01Z") }]);
    assert.deepEqual([r?.lastRun?.outcome, r?.lastRun?.heldUntil, r?.lastRun?.delivered], ["found", until, false]);

    // all night, a run every 5 minutes: the site is seen down each time, as the one open problem, and nothing is said
    for (const t of ["2027-01-12T00:00:01Z", "2027-01-12T00:05:01Z", "2027-01-12T03:00:01Z"]) {
      clock.now = () => at(t);
      await duties.tick();
    }
    assert.equal(agent.seen.length, seen + 4, "the duty went on watching at its interval");
    assert.deepEqual(agent.seen.at(-1)?.open, [{ subject: siteUrl, key: "http-down" }], "each run is told what is open");
    r = await record("night");
    assert.deepEqual([r?.lastRun?.outcome, r?.lastRun?.stillOpen, r?.lastRun?.delivered], ["found", 1, false]);
    assert.equal(r?.open.length, 1);
    assert.equal(r?.open[0]?.since, at("2027-01-11T23:55:01Z"), "one problem, open since it was first seen");
    assert.equal((await outbox("dutynight")).length, 0, "nothing delivered in the night");
    assert.match(dutyRows([r!], clock.now(), "UTC")[0]![2]!, /^still open 1 \(.*\); 1 report held until Tue 06:30$/);

    // morning: the agent ran the held run's model step (here: its task ends as the runner would end it)
    await new TaskStore(client.resources.kv.tasks, client.names, "msgpack").transition("ship", taskOf("night", heldAt), (t) => ({
      status: { state: "TASK_STATE_COMPLETED", timestamp: new Date(until).toISOString() },
      artifacts: [{ artifactId: "a-night", name: "pipeline-run", parts: [{ text: "[critical] the site is down" }], metadata: { found: true, findings: 1, open: [{ subject: siteUrl, key: "http-down" }] } }],
      metadata: t.metadata,
    }));
    agent.heldUntil = undefined;
    broken = false;
    clock.now = () => at("2027-01-12T06:30:02Z");
    await duties.tick();
    const delivered = await outbox("dutynight");
    assert.equal(delivered.length, 1);
    assert.equal(delivered[0]!.source.taskId, taskOf("night", heldAt));
    assert.match(delivered[0]!.text, /the site is down/);
    r = await record("night");
    assert.deepEqual(r?.held, []);
    // the site is back: the run is clean and the problem is closed
    assert.deepEqual([r?.lastRun?.outcome, r?.open], ["clean", []]);
  });

  it("fills local targets into the input when it sends the run; a target nothing serves is a failed run, not a task", async () => {
    broken = false;
    const local = duty({ id: "local", every: "2m", input: { url: "{{local.demo-site}}" }, delivery: { channel: "dutylocal", to: "ops" } });
    const clock = { now: () => at("2026-11-23T16:00:30Z") };
    await scheduler([local], clock).tick();
    clock.now = () => at("2026-11-23T16:02:01Z");
    await scheduler([local], clock, { localTargets: (name) => (name === "demo-site" ? siteUrl : undefined) }).tick();
    assert.deepEqual(agent.seen.at(-1)?.input, { url: siteUrl });
    assert.equal((await record("local"))?.lastRun?.outcome, "clean");

    clock.now = () => at("2026-11-23T16:04:01Z");
    await scheduler([local], clock, { localTargets: () => undefined }).tick();
    const r = await record("local");
    assert.equal(r?.lastRun?.outcome, "failed");
    assert.match(r?.lastRun?.reason ?? "", /no local target "demo-site"/);
    assert.equal(await stored(taskOf("local", at("2026-11-23T16:04:00Z"))), false);
    assert.equal((await outbox("dutylocal")).length, 0, "a failure is recorded, not delivered");
  });
});
