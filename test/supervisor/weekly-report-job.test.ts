import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { TaskStore } from "../../actors/index.js";
import { decode, encode, OutboxRecord, type Task, type UsageRecord } from "../../protocol/index.js";
import { loadWeeklyReport, WeeklyReportJob } from "../../supervisor/index.js";
import { FleetClient } from "../helpers/fleet-client.js";
import { NatsServer } from "../helpers/nats-server.js";
import { reportsConfig, usage } from "./report-fixture.js";

const log = pino({ level: "silent" });
const at = (iso: string) => Date.parse(iso);
// Monday 2026-11-23 09:00 in Berlin (UTC+1): the report covers the 7 days before
const DUE = at("2026-11-23T08:00:00Z");
const DAY = 86_400_000;

describe("the weekly cost report", () => {
  let server: NatsServer;
  let client: FleetClient;
  const config = reportsConfig();
  const week: UsageRecord[] = [];
  const before_: UsageRecord[] = [];
  before(async () => {
    server = await NatsServer.start();
    client = await FleetClient.connect(server.url);
    // the fixture week: six tasks of different triggers and one call without a task, plus the week before and after
    const t = (n: number) => `t-task-${n}`;
    week.push(
      usage({ taskId: t(1), trigger: "operator", title: "deep research on pricing", costUsd: 0.5, inputTokens: 20_000, outputTokens: 2_000, cachedTokens: 1_000, at: DUE - 6 * DAY }),
      usage({ taskId: t(1), trigger: "operator", title: "deep research on pricing", costUsd: 0.25, inputTokens: 10_000, outputTokens: 1_000, at: DUE - 6 * DAY + 1000 }),
      usage({ taskId: t(2), trigger: "cron", kind: "digest", costUsd: 0.4, inputTokens: 8_000, outputTokens: 500, at: DUE - 5 * DAY }),
      usage({ taskId: t(3), trigger: "duty", kind: "uptime", costUsd: 0.3, inputTokens: 6_000, outputTokens: 400, deploymentId: "cap-b", at: DUE - 4 * DAY }),
      usage({ taskId: t(4), trigger: "atlas", costUsd: 0.2, inputTokens: 4_000, outputTokens: 300, at: DUE - 3 * DAY }),
      usage({ taskId: t(5), trigger: "webhook", costUsd: 0.1, inputTokens: 2_000, outputTokens: 200, cachedTokens: 500, at: DUE - 2 * DAY }),
      usage({ taskId: t(6), trigger: "peer", costUsd: 0.05, inputTokens: 1_000, outputTokens: 100, at: DUE - DAY }),
      usage({ trigger: "operator", costUsd: 0.01, inputTokens: 100, outputTokens: 10, at: DUE - 1000 }),
      // a cache hit: no money, no provider call
      usage({ taskId: t(6), trigger: "peer", costUsd: 0, inputTokens: 0, outputTokens: 0, cacheHit: true, deploymentId: "cache", at: DUE - DAY + 5 }),
    );
    before_.push(usage({ taskId: "t-old", costUsd: 1.0, at: DUE - 8 * DAY }), usage({ taskId: "t-old2", costUsd: 0.5, at: DUE - 13 * DAY }));
    const later = usage({ taskId: "t-next", costUsd: 9, at: DUE + 1000 });
    for (const r of [...before_, ...week, later]) {
      // as the router publishes (router/start-router.ts)
      await client.js.publish(client.names.usage(r.agentId, r.servedTier), encode(r, "msgpack"), { msgID: `${r.callId}.${r.attempt}` });
    }
    // the task records: t-task-1 carries the estimate submitTask stored
    const store = new TaskStore(client.resources.kv.tasks, client.names, "msgpack");
    const task: Task = {
      id: t(1), contextId: t(1), status: { state: "TASK_STATE_COMPLETED", timestamp: new Date(DUE - 6 * DAY).toISOString() },
      history: [{ messageId: "m1", role: "ROLE_USER", parts: [{ text: "deep research on pricing" }] }],
      metadata: { agentId: "scout", estimate: { kind: "research", points: 25, basis: "history" } },
    };
    await store.create("scout", task);
  });
  after(async () => {
    await client.close();
    await server.stop();
  });

  it("equals the USAGE records of the fixture week: spend, triggers, tokens, top 5, trend, pools and estimates", async () => {
    const { report, text } = await loadWeeklyReport({ js: client.js, tasks: client.resources.kv.tasks, names: client.names, codec: "msgpack", config }, DUE);
    const sum = (rs: UsageRecord[], f: (r: UsageRecord) => number) => rs.reduce((s, r) => s + f(r), 0);
    assert.ok(Math.abs(report.totals.costUsd - sum(week, (r) => r.costUsd)) < 1e-9);
    assert.equal(report.totals.calls, week.length);
    assert.deepEqual(report.tokens, { input: sum(week, (r) => r.inputTokens), output: sum(week, (r) => r.outputTokens), cached: sum(week, (r) => r.cachedTokens) });
    const byTrigger = Object.fromEntries(report.byTrigger.map((l) => [l.trigger, [l.tasks, l.calls]]));
    assert.deepEqual(byTrigger, { operator: [1, 3], cron: [1, 1], duty: [1, 1], atlas: [1, 1], webhook: [1, 1], peer: [1, 2] });
    assert.deepEqual(report.topTasks.map((x) => x.taskId), ["t-task-1", "t-task-2", "t-task-3", "t-task-4", "t-task-5"]);
    assert.ok(Math.abs(report.topTasks[0]!.costUsd - 0.75) < 1e-9);
    assert.equal(report.topTasks[0]!.title, "deep research on pricing");
    assert.equal(report.topTasks[0]!.estimatePoints, 25);
    assert.equal(report.topTasks[0]!.actualPoints, 33, "33,000 tokens = 33 points");
    assert.deepEqual(report.estimates, { tasks: 1, estimatePoints: 25, actualPoints: 33 });
    assert.ok(Math.abs(report.trend.previousCostUsd - 1.5) < 1e-9, "the week before: its two calls");
    assert.ok(Math.abs(report.trend.deltaUsd - (sum(week, (r) => r.costUsd) - 1.5)) < 1e-9);
    const capable = report.pools.find((p) => p.tier === "capable")!;
    assert.deepEqual(capable.deployments, ["cap-a", "cap-b"]);
    assert.equal(capable.peakRequestsPerMinute, 2, "t-task-1's two calls fell in one minute");
    assert.equal(capable.peakTokensPerMinute, 33_000);
    assert.ok(Math.abs(capable.requestHeadroom! - 0.8) < 1e-9);
    assert.ok(Math.abs(capable.tokenHeadroom! - (1 - 33_000 / 20_000)) < 1e-9);
    assert.equal(report.pools.find((p) => p.tier === "nano")!.rateLimit, undefined);
    assert.match(text, /Spend: \$1\.81 · 9 calls/);
    assert.match(text, /Trend: \$1\.81 vs \$1\.50 the week before: \+\$0\.31 \(1\.21×\)/);
    assert.match(text, /operator: 1 task, 3 calls, \$0\.76/);
    assert.match(text, /1\. \$0\.75 scout\/research "deep research on pricing" \[operator\] est 25 pts, actual 33 pts/);
    assert.match(text, /nano \(simulated-nano\): 0 req\/min, 0 tokens\/min; no limit configured/);
    assert.match(text, /capable \(cap-a, cap-b\): 2 req\/min, 33,000 tokens\/min; headroom 80 % of 10 req\/min/);
    // deterministic: the same records give the same text
    assert.equal((await loadWeeklyReport({ js: client.js, tasks: client.resources.kv.tasks, names: client.names, codec: "msgpack", config }, DUE)).text, text);
  });

  it("runs as a job on Monday 09:00 in the fleet's zone, delivers where it says, once, and coalesces missed weeks", async () => {
    const clock = { now: () => at("2026-11-20T12:00:00Z") };
    const job = new WeeklyReportJob({ js: client.js, tasks: client.resources.kv.tasks, schedules: client.resources.kv.schedules, names: client.names, codec: "msgpack", config, weekly: config.reports.weekly!, clock, log });
    assert.equal(await job.tick(), undefined, "first sight: nothing was due before it existed");
    clock.now = () => DUE - 60_000;
    assert.equal(await job.tick(), undefined, "08:59 Berlin: not yet");
    clock.now = () => DUE + 5_000;
    const text = await job.tick();
    assert.match(text ?? "", /Weekly cost report 2026-11-16 → 2026-11-23 \(Europe\/Berlin\)/);
    assert.equal(await job.tick(), undefined, "not twice for the same Monday");
    const delivered = await outbox();
    assert.equal(delivered.length, 1);
    assert.equal(delivered[0]!.to, "ops-chat");
    assert.equal(delivered[0]!.text, text);
    // down for three weeks: one catch-up report, for the latest Monday
    clock.now = () => DUE + 21 * DAY + 3_600_000;
    const caught = await job.tick();
    assert.match(caught ?? "", /2026-12-07 → 2026-12-14/);
    assert.equal(await job.tick(), undefined);
    assert.equal((await outbox()).length, 2);
  });

  async function outbox(): Promise<OutboxRecord[]> {
    const stream = client.names.stream("OUTBOX");
    const info = await client.resources.jsm.streams.info(stream);
    const out: OutboxRecord[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
      const m = await client.resources.jsm.streams.getMessage(stream, { seq }).catch(() => undefined);
      const d = m ? decode(OutboxRecord, m.data) : undefined;
      if (d?.ok && d.value.source.jobId === "report.weekly") out.push(d.value);
    }
    return out;
  }
});
