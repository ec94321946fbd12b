import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { createUser } from "@nats-io/nkeys";
import { callTool, readAuditRecords, type FleetCredentials, type Identity } from "../../governance/index.js";
import {
  CALLERS,
  CompleteReply,
  connectNats,
  encode,
  ensureTaskConsumer,
  FleetError,
  FleetNames,
  HEADERS,
  isPermissionViolation,
  MemorySearchResult,
  openFleetResources,
  replyResult,
  requestOperation,
  requestTyped,
  type ApprovalDecision,
  type Task,
} from "../../protocol/index.js";
import { RouterClient } from "../../router/index.js";
import type { ProcessSupervisor } from "../../supervisor/index.js";
import { startProcesses } from "../helpers/fleet-processes.js";
import { refusals, securedFleetSpecs, startSecuredServer, type SecuredServer } from "../helpers/governed-fleet.js";
import { NatsServer } from "../helpers/nats-server.js";
import { waitFor } from "../helpers/wait.js";

/*
 * A real nats-server started with the authorization `fleet up` generates: the broker itself refuses what an identity was
 * not given (a tool outside the allow list, a forged approval decision, another agent's proposal subject), and the real
 * agent, router and scheduler processes do their work under their own identities without a single refusal.
 */

const CODEC = "msgpack" as const;

function decision(proposalId: string, by: string): ApprovalDecision {
  return { proposalId, decision: "approve", by, via: "telegram", at: Date.now() };
}

describe("the broker enforces each identity's permissions", () => {
  let secured: SecuredServer;
  let fleet: SecuredServer["fleet"];
  let dir: string;
  let creds: FleetCredentials;
  let server: NatsServer;
  let operator: NatsConnection;
  const names = new FleetNames("fleet");
  const as = (identity: Identity): Promise<NatsConnection> => secured.as(identity);
  const messagesIn = async (stream: "APPROVALS" | "PROPOSALS"): Promise<number> =>
    (await (await jetstreamManager(operator)).streams.info(names.stream(stream))).state.messages;

  before(async () => {
    secured = await startSecuredServer(names);
    ({ fleet, dir, creds, server, operator } = secured);
  });
  after(async () => {
    await secured?.stop();
  });

  it("a client without credentials, or with a seed the server does not know, is not let in", async () => {
    await assert.rejects(connectNats({ servers: server.url, name: "anonymous", longLived: false }), (err) => err instanceof FleetError && err.code === "PERMISSION_DENIED");
    const stranger = join(dir, "stranger.nk");
    writeFileSync(stranger, new TextDecoder().decode(createUser().getSeed()), { mode: 0o600 });
    await assert.rejects(connectNats({ servers: server.url, nkeySeedFile: stranger, name: "stranger", longLived: false }), (err) => err instanceof FleetError && err.code === "PERMISSION_DENIED");
  });

  it("an agent's call to a tool outside its allow list is refused by the broker; its allowed AUTO tool answers", async () => {
    const host = await as("serve:tools");
    const calls: string[] = [];
    for (const tool of ["web_fetch", "http_check", "deploy_site"]) {
      host.subscribe(names.tool(tool, "*"), {
        queue: "tools",
        callback: (err, msg) => {
          if (err) return;
          calls.push(tool);
          replyResult(msg, { output: { tool }, durationMs: 1, replayed: false }, CODEC);
        },
      });
    }
    await host.flush();
    const scout = await as("agent:scout");
    const seen = refusals(scout);
    const call = (tool: string) => callTool(scout, names, tool, { agentId: "scout", input: {} }, { codec: CODEC, timeoutMs: 3_000 });

    // http_check is ship's tool; deploy_site is on scout's list but PROPOSE: it runs only through governance
    for (const tool of ["http_check", "deploy_site"]) {
      await assert.rejects(call(tool), (err) => err instanceof FleetError && err.code === "PERMISSION_DENIED" && isPermissionViolation(err), `${tool} is refused at once, not timed out`);
    }
    const allowed = await call("web_fetch");
    assert.deepEqual(allowed.output, { tool: "web_fetch" });
    await host.flush();
    assert.deepEqual(calls, ["web_fetch"], "the tool host never saw the refused calls");
    await waitFor("the refusals to be reported on scout's connection", () => seen.length >= 2);
    assert.ok(seen.some((s) => s.includes('Publish to "fleet.tool.http_check.scout"')), seen.join("\n"));
    // the stand-in host leaves the queue group to the real tool host of the tests below
    await host.close();
  });

  it("an agent's forged approval decision is refused and nothing lands in APPROVALS; the approval bridge's decision lands", async () => {
    const scout = jetstream(await as("agent:scout"));
    const atlas = jetstream(await as("agent:atlas"));
    const before = await messagesIn("APPROVALS");
    for (const [who, js] of [["scout", scout], ["atlas", atlas]] as const) {
      await assert.rejects(js.publish(names.approvalDecision("telegram", "p-1"), encode(decision("p-1", who), CODEC)), (err) => isPermissionViolation(err), who);
      await assert.rejects(js.publish(names.approvalDecision("_operator", "p-1"), encode(decision("p-1", who), CODEC)), (err) => isPermissionViolation(err), who);
    }
    const console = jetstream(await as("bridge:console"));
    await assert.rejects(console.publish(names.approvalDecision("console", "p-1"), encode(decision("p-1", "console"), CODEC)), (err) => isPermissionViolation(err), "console is no approval channel");
    // the approval bridge cannot claim another channel (and its approvers) nor the operator's token
    const telegram = jetstream(await as("bridge:telegram"));
    for (const channel of ["_operator", "slack", "discord"]) {
      await assert.rejects(telegram.publish(names.approvalDecision(channel, "p-1"), encode(decision("p-1", "4242"), CODEC)), (err) => isPermissionViolation(err), channel);
    }
    assert.equal(await messagesIn("APPROVALS"), before, "no forged decision was stored");

    const ack = await telegram.publish(names.approvalDecision("telegram", "p-1"), encode(decision("p-1", "4242"), CODEC));
    assert.equal(ack.stream, names.stream("APPROVALS"));
    assert.equal(await messagesIn("APPROVALS"), before + 1);
  });

  it("an agent submits proposals for itself, never in another agent's name", async () => {
    const scout = jetstream(await as("agent:scout"));
    const before = await messagesIn("PROPOSALS");
    await assert.rejects(scout.publish(names.proposal("ship", "submitted"), encode({ id: "x" }, CODEC)), (err) => isPermissionViolation(err));
    await assert.rejects(scout.publish(names.proposal("scout", "completed"), encode({ id: "x" }, CODEC)), (err) => isPermissionViolation(err));
    await scout.publish(names.proposal("scout", "submitted"), encode({ id: "x" }, CODEC));
    assert.equal(await messagesIn("PROPOSALS"), before + 1);
  });

  it("a reply cannot be steered onto a protected subject: an agent asking with a decision subject as its reply gets nothing stored", async () => {
    const ship = await as("serve:agent:ship");
    const shipRefusals = refusals(ship);
    let asked = 0;
    ship.subscribe(names.agentOperation("ship", "SendMessage"), {
      callback: (err, msg) => {
        if (err) return;
        asked++;
        msg.respond(encode({ result: { ok: true } }, CODEC));
      },
    });
    await ship.flush();
    const before = await messagesIn("APPROVALS");
    const scout = await as("agent:scout");
    scout.publish(names.agentOperation("ship", "SendMessage"), encode({ message: "hi" }, CODEC), { reply: names.approvalDecision("telegram", "p-2") });
    await scout.flush();
    await waitFor("ship to be asked", () => asked === 1);
    await waitFor("ship's reply to be refused", () => shipRefusals.some((s) => s.includes(names.approvalDecision("telegram", "p-2"))));
    assert.equal(await messagesIn("APPROVALS"), before);
  });

  it("an agent reads its own tasks and not another agent's", async () => {
    const { kv: asOperator } = await openFleetResources(operator, names);
    await asOperator.tasks.put(names.taskKey("ship", "t-secret"), encode({ secret: true }, CODEC));
    await asOperator.tasks.put(names.taskKey("scout", "t-own"), encode({ own: true }, CODEC));
    const { kv } = await openFleetResources(await as("agent:scout"), names, { create: false, probe: { bucket: "agents", key: "scout" } });
    assert.ok(await kv.tasks.get(names.taskKey("scout", "t-own")));
    // its own keys it may list (the history its estimates come from: actors/task-estimates.ts)
    const own: string[] = [];
    for await (const key of await kv.tasks.keys(names.taskKey("scout", ">"))) own.push(key);
    assert.deepEqual(own, [names.taskKey("scout", "t-own")]);
    await assert.rejects(kv.tasks.get(names.taskKey("ship", "t-secret")), (err) => isPermissionViolation(err));
    await assert.rejects(kv.tasks.put(names.taskKey("ship", "t-secret"), encode({ overwritten: true }, CODEC)), (err) => isPermissionViolation(err));
  });

  it("the filter the broker checks is the filter the server applies: no smuggling another agent's subject in the body", async () => {
    const jsm = await jetstreamManager(operator);
    await ensureTaskConsumer(jsm, names, "scout", { ackWaitMs: 30_000, maxDeliver: 5, backoffMs: [] });
    const scout = await as("agent:scout");
    const ask = async (subject: string, body: unknown) => new TextDecoder().decode((await scout.request(subject, JSON.stringify(body), { timeout: 3_000 })).data);
    // its own durable, with the permitted subject but ship's tasks in the config
    const steered = await ask(`$JS.API.CONSUMER.CREATE.${names.stream("TASKS")}.agent-scout.${names.task("scout")}`, {
      stream_name: names.stream("TASKS"),
      config: { durable_name: "agent-scout", name: "agent-scout", filter_subject: names.task("ship"), ack_policy: "explicit", deliver_policy: "all", max_ack_pending: 1 },
      action: "",
    });
    assert.match(steered, /did not match filtered subject/);
    const info = await jsm.consumers.info(names.stream("TASKS"), "agent-scout");
    assert.equal(info.config.filter_subject, names.task("scout"), "scout's durable still reads scout's tasks only");
    // a direct get names its own key in the subject and another's in the body: the server answers nothing
    const { kv: asOperator } = await openFleetResources(operator, names);
    await asOperator.tasks.put(names.taskKey("ship", "t-hidden"), encode({ hidden: "ship's secret" }, "json"));
    const smuggled = await scout.request(`$JS.API.DIRECT.GET.KV_fleet-tasks.$KV.fleet-tasks.scout.t-none`, JSON.stringify({ last_by_subj: "$KV.fleet-tasks.ship.t-hidden" }), { timeout: 3_000 });
    assert.doesNotMatch(new TextDecoder().decode(smuggled.data), /secret/);
    assert.notEqual(smuggled.headers?.get("Nats-Subject"), "$KV.fleet-tasks.ship.t-hidden");
  });

  it("only the operator may delete a stream or an agent's durable", async () => {
    const scheduler = await jetstreamManager(await as("scheduler"));
    await assert.rejects(scheduler.streams.delete(names.stream("AUDIT")), (err) => isPermissionViolation(err));
    await assert.rejects(scheduler.streams.purge(names.stream("APPROVALS")), (err) => isPermissionViolation(err));
    const scout = await jetstreamManager(await as("agent:scout"));
    await assert.rejects(scout.consumers.delete(names.stream("TASKS"), "agent-scout"), (err) => isPermissionViolation(err), "not even its own");
    assert.ok(await messagesIn("APPROVALS") > 0, "nothing was purged");
  });

  describe("real processes under their own identities", () => {
    let procs: ProcessSupervisor;
    const output: string[] = [];

    before(async () => {
      procs = startProcesses(securedFleetSpecs(fleet.file, server.url, creds, ["atlas", "scout"]), output);
      await procs.start();
    });
    after(async () => {
      await procs?.stop();
    });

    it("atlas takes a task the operator sends, delegates it to scout, and both complete it; no process meets a refusal", async () => {
      const { kv } = await openFleetResources(operator, names);
      for (const id of ["atlas", "scout"]) await waitFor(`${id} to announce itself`, async () => (await kv.agents.get(id)) ?? undefined, 20_000);
      const jsm = await jetstreamManager(operator);
      await waitFor("governance's durables", async () => (await jsm.consumers.info(names.stream("PROPOSALS"), "governance-intake").catch(() => undefined)) ?? undefined, 20_000);
      const sent = await requestOperation(operator, names, "atlas", "SendMessage", {
        message: { messageId: randomUUID(), role: "ROLE_USER", parts: [{ text: "check the competitors' pricing pages" }] },
      });
      const done: Task = await waitFor(
        "atlas's task to complete",
        async () => {
          const t = await requestOperation(operator, names, "atlas", "GetTask", { id: sent.id });
          return t.status.state === "TASK_STATE_COMPLETED" || t.status.state === "TASK_STATE_FAILED" ? t : undefined;
        },
        30_000,
      );
      assert.equal(done.status.state, "TASK_STATE_COMPLETED", `atlas's task ended ${done.status.state}:\n${output.join("\n")}`);
      const delegation = done.artifacts?.find((a) => a.name === "delegation")?.parts.find((p) => "data" in p);
      const { agent, taskId } = (delegation && "data" in delegation ? delegation.data : {}) as { agent?: string; taskId?: string };
      assert.equal(agent, "scout");
      assert.ok(taskId);
      const scoutTask = await requestOperation(operator, names, "scout", "GetTask", { id: taskId });
      assert.equal(scoutTask.status.state, "TASK_STATE_COMPLETED");
      assert.ok(scoutTask.artifacts?.some((a) => a.name === "simulated-answer"), "scout's answer came through the router");

      // what they wrote: their records, the Tasks in KV, the model call's usage, scout's session log
      assert.ok(await kv.tasks.get(names.taskKey("scout", taskId)));
      await waitFor("the router's usage record", async () => (await jsm.streams.info(names.stream("USAGE"))).state.messages > 0);
      await waitFor("scout's session log", async () => (await jsm.streams.info(names.stream("MEMLOG"))).state.messages > 0);
      // A late refusal would meet a periodic write: a heartbeat or a lease renewal. Wait until every agent has written a
      // heartbeat and every lease holder has renewed after this point: each periodic write has then run once more, and a
      // refused one would not have landed (this wait fails then, and the assertions below say why).
      const periodicWrites = async (): Promise<Map<string, number>> => {
        const revisions = new Map<string, number>();
        for (const id of ["atlas", "scout"]) revisions.set(`agent ${id}`, (await kv.agents.get(id))?.revision ?? 0);
        for await (const key of await kv.leases.keys()) revisions.set(`lease ${key}`, (await kv.leases.get(key))?.revision ?? 0);
        return revisions;
      };
      const before = await periodicWrites();
      assert.ok(before.size > 2, `the leased roles hold their leases: ${[...before.keys()].join(", ")}`);
      const rewritten = await waitFor("a heartbeat from every agent and a renewal of every lease", async () => {
        const now = await periodicWrites();
        return [...before].every(([key, revision]) => (now.get(key) ?? 0) > revision) ? now : undefined;
      }, 20_000).catch((err: unknown) => err);
      const refused = output.filter((line) => /Permissions Violation|PERMISSION_DENIED/.test(line));
      assert.deepEqual(refused, [], "no process met a refusal: their permissions are sufficient");
      assert.ok(!(rewritten instanceof Error), `every periodic write landed: ${String(rewritten)}\n${output.join("\n")}`);
      assert.ok(procs.status().every((c) => c.restarts === 0), `no process restarted:\n${output.join("\n")}`);
    });

    it("an agent asks the tool host, the router and memory search only as itself: another id in the subject is refused by the broker, in the payload by the service; nothing lands in the other's name", async () => {
      const jsm = await jetstreamManager(operator);
      const js = jetstream(operator);
      const usageOf = async (agent: string) => {
        const info = await jsm.streams.info(names.stream("USAGE"), { subjects_filter: names.usage(agent, "*") });
        return Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0);
      };
      const auditOf = async (agent: string) => (await readAuditRecords(js, names, CODEC, { agentId: agent })).records.length;
      const dlqBefore = (await jsm.streams.info(names.stream("DLQ"))).state.messages;
      const before = { usage: await usageOf("ship"), audit: await auditOf("ship") };
      const violation = (err: unknown) => err instanceof FleetError && err.code === "PERMISSION_DENIED" && isPermissionViolation(err);
      const typed = (err: unknown) => err instanceof FleetError && err.code === "PERMISSION_DENIED" && !isPermissionViolation(err);

      // atlas may call http_check (its "*"), ship too: but atlas may not call it as ship, nor as governance
      const atlas = await as("agent:atlas");
      const check = { input: { url: "https://example.com" } };
      await assert.rejects(callTool(atlas, names, "http_check", { agentId: "ship", ...check }, { codec: CODEC, timeoutMs: 5_000 }), violation, "ship's id in the subject");
      await assert.rejects(callTool(atlas, names, "http_check", { agentId: "ship", ...check }, { codec: CODEC, timeoutMs: 5_000, as: CALLERS.governance }), violation, "governance's form");
      await assert.rejects(callTool(atlas, names, "http_check", { agentId: "ship", ...check }, { codec: CODEC, timeoutMs: 5_000, as: "atlas" }), typed, "ship's id in the payload");

      const scout = await as("agent:scout");
      const router = new RouterClient(scout, names, { codec: CODEC, timeoutMs: 5_000, retries: 0 });
      const ask = (agentId: string) => ({ agentId, title: "spend someone else's budget", messages: [{ role: "user" as const, content: "hello" }] });
      await assert.rejects(router.complete(ask("ship")), violation, "a model call billed to ship");
      await assert.rejects(router.embed("ship", ["x"]), violation, "an embedding for ship");
      await assert.rejects(router.usage(), violation, "the operator's fleet-wide usage");
      await assert.rejects(requestTyped(scout, names.router("complete", "scout"), ask("ship"), CompleteReply, { codec: CODEC, timeoutMs: 5_000 }), typed, "ship in the payload");
      assert.ok((await router.usage("scout", { self: true })).agents.scout, "its own usage it may ask");

      const search = { query: "pricing", limit: 3 };
      await assert.rejects(requestTyped(scout, names.memorySearch("ship"), search, MemorySearchResult, { codec: CODEC, timeoutMs: 5_000 }), (err) => isPermissionViolation(err), "ship's memory");
      await assert.rejects(requestTyped(scout, names.memorySearch("scout"), { ...search, agentId: "ship" }, MemorySearchResult, { codec: CODEC, timeoutMs: 5_000 }), typed, "ship in the payload");
      assert.ok(await requestTyped(scout, names.memorySearch("scout"), search, MemorySearchResult, { codec: CODEC, timeoutMs: 5_000 }), "its own memory it may search");

      // the services' refusals are dead-lettered, with the code; nothing was billed to or audited as ship
      await waitFor("the three refusals in the DLQ", async () => (await jsm.streams.info(names.stream("DLQ"))).state.messages >= dlqBefore + 3);
      for (const source of ["tool", "router", "memory"]) {
        const dead = await jsm.streams.getMessage(names.stream("DLQ"), { last_by_subj: names.dlq(source) });
        assert.equal(dead?.header.get(HEADERS.dlqCode), "PERMISSION_DENIED", source);
      }
      assert.deepEqual({ usage: await usageOf("ship"), audit: await auditOf("ship") }, before, "nothing in ship's name");
    });
  });
});
