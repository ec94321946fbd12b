import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/nats-core";
import { pino } from "pino";
import { TaskStore, type RuntimeDeps } from "../../actors/index.js";
import { AtlasPlanner, type PlannerRouter } from "../../behaviours/index.js";
import { fleetDay } from "../../config/index.js";
import {
  decode,
  encode,
  FleetNames,
  HEADERS,
  isPermissionViolation,
  openFleetResources,
  OutboxRecord,
  readAfter,
  systemClock,
  wireHeaders,
  type CompleteReply,
  type Finding,
  type ProposalRecord,
  type Task,
} from "../../protocol/index.js";
import { startSecuredServer, type SecuredServer } from "../helpers/governed-fleet.js";

/*
 * Atlas plans under its own identity on a server with the authorization `fleet up` generates: it reads every input of
 * its plan (findings, events, failed tasks, dead letters, proposals, budgets), keeps its cursor, assigns the plan's work
 * and sends its notice without one refusal; an execution agent may read none of those inputs.
 */

const CODEC = "msgpack" as const;
const log = pino({ level: "silent" });

/** Our own router interface, answering one fixed plan: what is under test here is the broker, not the model. */
function fixedRouter(plan: unknown): PlannerRouter & { calls: number } {
  return {
    calls: 0,
    async complete(request) {
      this.calls++;
      const text = JSON.stringify(plan);
      const reply: CompleteReply = {
        callId: request.callId ?? "c-1",
        text,
        parsed: plan,
        servedTier: "workhorse",
        model: "fixed",
        deploymentId: "fixed",
        simulated: false,
        usage: { inputTokens: 1, outputTokens: 1, cachedTokens: 0 },
        costUsd: 0,
        cacheHit: false,
        escalations: [],
        fallbacks: [],
        decision: { requestedTier: "workhorse", tier: "workhorse", reason: "explicit", detail: "fixed", budgetState: "normal", fallbackChain: [] },
        latencyMs: 1,
      };
      return reply;
    },
  };
}

describe("Atlas's plan on a secured fleet", { timeout: 60_000 }, () => {
  const names = new FleetNames("fleet");
  let secured: SecuredServer;

  before(async () => {
    secured = await startSecuredServer(names);
    const { operator } = secured;
    const js = jetstream(operator);
    const { kv } = await openFleetResources(operator, names);
    const now = Date.now();
    const finding: Finding = { id: "f-1", agentId: "ship", duty: "site-health", subject: "shop.example.com", key: "http-503", severity: "critical", summary: "shop answers 503", at: now };
    await js.publish(names.finding("ship"), encode(finding, CODEC), { headers: wireHeaders(CODEC) });
    await js.publish(names.event("monitor"), new TextEncoder().encode(JSON.stringify({ id: "m-1", summary: "shop down", subject: "shop.example.com" })));
    const failed: Task = { id: "t-failed", contextId: "t-failed", status: { state: "TASK_STATE_FAILED", timestamp: new Date(now).toISOString() }, history: [{ messageId: "m", role: "ROLE_USER", parts: [{ text: "fetch the competitor page" }] }] };
    await kv.tasks.put(names.taskKey("scout", "t-failed"), encode(failed, CODEC));
    const h = natsHeaders();
    h.set(HEADERS.dlqCode, "MESSAGE_INVALID");
    h.set(HEADERS.dlqReason, "no such agent");
    await js.publish(names.dlq("tasks"), encode({ not: "an assignment" }, CODEC), { headers: h });
    const proposal: ProposalRecord = { id: "p-1", agentId: "scout", tool: "email_send", risk: "CONFIRM", input: { to: "lead@example.com" }, reason: "follow up", state: "awaiting_human", createdAt: now, updatedAt: now, notified: [], attempts: 0, history: [] };
    await kv.proposals.put("p-1", encode(proposal, CODEC));
    await kv.budgets.put(`${fleetDay(now, "UTC")}.scout`, encode({ day: fleetDay(now, "UTC"), spentUsd: 0.9, reservations: {} }, "json"));
  });
  after(async () => {
    await secured?.stop();
  });

  it("atlas reads every input, keeps its cursor, assigns and notifies under its own identity", async () => {
    const nc = await secured.as("agent:atlas");
    const resources = await openFleetResources(nc, names, { create: false, probe: { bucket: "agents", key: "atlas" } });
    const deps: RuntimeDeps = { ...resources, nc, js: jetstream(nc), names, codec: CODEC, clock: systemClock, log, gate: { check: () => undefined, holdOf: () => undefined } };
    const router = fixedRouter({
      assignments: [{ agent: "scout", what: "Research competitor pricing after the failed fetch", why: "t-failed", priority: "normal", skill: "research", pipeline: null, tier: null, target: null, tools: [] }],
      notices: [{ text: "email_send to a lead awaits your approval", severity: "info" }],
    });
    const planner = new AtlasPlanner({ config: secured.fleet.config, self: "atlas", deps, router, log });
    const result = await planner.cycle();
    assert.ok(result.kind === "planned");
    assert.deepEqual(result.record.inputs, { findings: 1, events: 1, failedTasks: 1, deadLetters: 1, notes: 0, awaitingHuman: 1, budgets: 1 });
    assert.equal(result.record.assigned.length, 1);
    assert.equal(router.calls, 1);

    const { kv } = await openFleetResources(secured.operator, names);
    const store = new TaskStore(kv.tasks, names, CODEC);
    assert.ok(await store.get("scout", result.record.assigned[0]!.taskId), "the task is stored");
    const jsm = await jetstreamManager(secured.operator);
    const notice = await jsm.streams.getMessage(names.stream("OUTBOX"), { last_by_subj: names.outbox("console") });
    const record = decode(OutboxRecord, notice!.data);
    assert.ok(record.ok && /awaits your approval/.test(record.value.text));

    assert.equal((await planner.cycle()).kind, "quiet", "the cursor was kept");
    assert.equal(router.calls, 1);
  });

  it("an execution agent may read none of atlas's inputs nor its records", async () => {
    const nc = await secured.as("agent:scout");
    const resources = await openFleetResources(nc, names, { create: false, probe: { bucket: "agents", key: "scout" } });
    const js = jetstream(nc);
    await assert.rejects(readAfter(js, resources.jsm, names.stream("FINDINGS"), names.finding("*"), { max: 10 }), isPermissionViolation);
    await assert.rejects(readAfter(js, resources.jsm, names.stream("DLQ"), names.dlq("tasks"), { max: 10 }), isPermissionViolation);
    await assert.rejects(readAfter(js, resources.jsm, `KV_${names.bucket("tasks")}`, `$KV.${names.bucket("tasks")}.>`, { max: 10 }), isPermissionViolation);
    await assert.rejects(resources.kv.plans.get("cursor"), isPermissionViolation);
    await assert.rejects(resources.kv.budgets.get(`${fleetDay(Date.now(), "UTC")}.scout`), isPermissionViolation);
  });
});
