import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { AgentRuntime, taskIdFor } from "../../actors/index.js";
import { composeBehaviour, offlineBehaviour, toolTaskStage } from "../../behaviours/index.js";
import { CronJob, loadFleetConfig, type FleetConfig } from "../../config/index.js";
import { AgentTools, readAuditRecords, referenceToolRisks, referenceTools, ToolHost } from "../../governance/index.js";
import { decode, OutboxRecord, type TaskWork } from "../../protocol/index.js";
import { CronScheduler } from "../../supervisor/index.js";
import { pipelineStandIn } from "../fixtures/pipeline-stand-in.js";
import { FleetClient } from "../helpers/fleet-client.js";
import { writeTestFleet } from "../helpers/fleet-processes.js";
import { NatsServer } from "../helpers/nats-server.js";

const log = pino({ level: "silent" });
const at = (iso: string) => Date.parse(iso);

/**
 * Cron jobs that run a tool or a pipeline instead of a message, on a simulated clock: a real nats-server, a real tool
 * host with the reference tools, ship's real tool-task stage and allow list, and a pipeline stage stood in for by a fixture
 * that keeps the runner's contract.
 */
describe("cron jobs running a tool or a pipeline", () => {
  let server: NatsServer;
  let fleet: ReturnType<typeof writeTestFleet>;
  let config: FleetConfig;
  let runtime: AgentRuntime;
  let host: ToolHost;
  let client: FleetClient;
  let site: Server;
  let siteUrl: string;
  let broken = false;
  const agent: { seen: TaskWork[]; titles: string[] } = { seen: [], titles: [] };

  before(async () => {
    site = createServer((_req, res) => {
      res.writeHead(broken ? 503 : 200);
      res.end();
    });
    await new Promise<void>((resolve) => site.listen(0, "127.0.0.1", resolve));
    siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}/`;
    server = await NatsServer.start();
    fleet = writeTestFleet();
    config = loadFleetConfig(fleet.file);
    client = await FleetClient.connect(server.url);
    const { js, names } = client;
    host = new ToolHost({
      nc: client.nc, js, names, codec: "msgpack", config, host: "cron-test", log,
      kv: { proposals: client.resources.kv.proposals, toolruns: client.resources.kv.toolruns },
      tools: referenceTools({ js, names, codec: "msgpack", config }),
    });
    await host.start();
    runtime = await AgentRuntime.start(
      {
        servers: server.url,
        prefix: "fleet",
        codec: "msgpack",
        maxPayloadBytes: 65536,
        tasks: config.tasks,
        quietHours: { start: "00:00", end: "00:00", timeZone: "UTC" },
        runId: "cron-work-test",
        processName: "cron-work-test-agents",
      },
      config.agents.filter((a) => a.id === "ship"),
      (a, deps) => {
        const allowed = config.agents.find((c) => c.id === a.id)?.tools ?? [];
        const tools = new AgentTools({ nc: deps.nc, js: deps.js, names: deps.names, codec: deps.codec, agentId: a.id, allowed, risks: new Map(Object.entries(referenceToolRisks())) });
        // the order the role's chain has: a task naming a tool is answered first, at tier 0
        return composeBehaviour([toolTaskStage(tools), pipelineStandIn(agent)], offlineBehaviour(a));
      },
      { log },
    );
  });
  after(async () => {
    await runtime.stop();
    await host.stop();
    await client.close();
    await server.stop();
    site.closeAllConnections();
    await new Promise((resolve) => site.close(resolve));
    fleet.cleanup();
  });

  const job = (fields: Record<string, unknown>): CronJob => CronJob.parse({ agent: "ship", ...fields });
  const scheduler = (jobs: CronJob[], clock: { now(): number }) =>
    new CronScheduler({ nc: client.nc, js: client.js, kv: client.resources.kv, names: client.names, codec: "msgpack", jobs, timeZone: "Europe/Berlin", clock, log });

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

  it("an interval job running a tool: the agent's tool-task stage runs it at tier 0, as the agent, and the answer is delivered", async () => {
    broken = false;
    const probe = job({ id: "probe-tool", every: "15m", tool: "http_check", input: { url: siteUrl }, delivery: { channel: "crontool", to: "ops" } });
    const clock = { now: () => at("2026-11-23T10:01:00Z") };
    const cron = scheduler([probe], clock);
    await cron.tick();
    clock.now = () => at("2026-11-23T10:15:03Z");
    await cron.tick();
    const taskId = taskIdFor("ship", `cron:probe-tool:${at("2026-11-23T10:15:00Z")}`);
    const task = await client.getTask("ship", taskId);
    assert.equal(task.status.state, "TASK_STATE_COMPLETED");
    assert.deepEqual(task.history?.[0]?.metadata, { cronJob: "probe-tool", work: { cronJob: "probe-tool", trigger: "cron" } });
    const delivered = await outbox("crontool");
    assert.equal(delivered.length, 1);
    assert.match(delivered[0]!.text, /^http_check: .*"status":200/);
    const audit = await readAuditRecords(client.js, client.names, "msgpack", { agentId: "ship", tool: "http_check" });
    assert.ok(audit.records.some((r) => r.ok), "the call is ship's, in the audit trail");
  });

  it("a tool outside the agent's allow list fails the job's task with TOOL_NOT_ALLOWED (and says so where it delivers)", async () => {
    const disk = job({ id: "disk-denied", every: "15m", tool: "disk_usage", input: { path: "/" }, delivery: { channel: "crondenied", to: "ops" } });
    const clock = { now: () => at("2026-11-23T11:01:00Z") };
    const cron = scheduler([disk], clock);
    await cron.tick();
    clock.now = () => at("2026-11-23T11:15:01Z");
    await cron.tick();
    const task = await client.getTask("ship", taskIdFor("ship", `cron:disk-denied:${at("2026-11-23T11:15:00Z")}`));
    assert.equal(task.status.state, "TASK_STATE_FAILED");
    assert.match((await outbox("crondenied"))[0]?.text ?? "", /TOOL_NOT_ALLOWED/);
  });

  it("a cron-expression job running a pipeline: its work names the pipeline; a clean run says nothing, a finding is delivered once", async () => {
    broken = false;
    const watch = job({ id: "site-watch", cron: "*/5 * * * *", pipeline: "site-health", input: { url: siteUrl }, tier: "triage", delivery: { channel: "cronpipe", to: "ops" } });
    const clock = { now: () => at("2026-11-23T12:01:00Z") };
    const cron = scheduler([watch], clock);
    await cron.tick();
    clock.now = () => at("2026-11-23T12:04:59Z");
    await cron.tick();
    assert.equal(agent.seen.length, 0, "not due before 12:05");
    clock.now = () => at("2026-11-23T12:05:01Z");
    await cron.tick();
    assert.deepEqual(agent.seen.at(-1), { cronJob: "site-watch", trigger: "cron", pipeline: "site-health", input: { url: siteUrl }, tier: "triage" });
    assert.equal(agent.titles.at(-1), "Cron job site-watch: pipeline site-health");
    assert.equal((await outbox("cronpipe")).length, 0, "nothing found, nothing said");

    broken = true;
    clock.now = () => at("2026-11-23T12:10:01Z");
    await cron.tick();
    await cron.tick();
    const delivered = await outbox("cronpipe");
    assert.equal(delivered.length, 1);
    assert.equal(delivered[0]!.text, `${siteUrl} answered 503`);
    assert.equal(delivered[0]!.source.taskId, taskIdFor("ship", `cron:site-watch:${at("2026-11-23T12:10:00Z")}`));
  });
});
