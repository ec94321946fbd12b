import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { headers, type NatsConnection } from "@nats-io/nats-core";
import { jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { fleetDay } from "../../config/index.js";
import { callTool, servingIdentity, type Identity } from "../../governance/index.js";
import { AgentMemory, SessionLog } from "../../memory/index.js";
import {
  CompleteReply,
  encode,
  FleetError,
  FleetNames,
  HEADERS,
  isPermissionViolation,
  MemorySearchResult,
  openFleetResources,
  requestTyped,
  type BucketKey,
  type StreamKey,
} from "../../protocol/index.js";
import { RouterClient } from "../../router/index.js";
import type { ProcessSupervisor } from "../../supervisor/index.js";
import { startProcesses } from "../helpers/fleet-processes.js";
import { refusals, securedFleetSpecs, startSecuredServer, type SecuredServer } from "../helpers/governed-fleet.js";
import { waitFor } from "../helpers/wait.js";

/*
 * The attacker holds ship's seeds (an execution agent allowed one AUTO tool, http_check): `agent-ship.nk` and its
 * serving twin beside it, on a fleet started as `fleet up` starts one, every role a process under its own identity on a
 * server with the generated authorization. Every class of attack is tried on every service and bucket; each is refused
 * by the broker or answered with a typed error, and the records of every bucket and stream are the same afterwards.
 */

const CODEC = "msgpack" as const;
const BUCKETS = ["tasks", "agents", "proposals", "budgets", "memory", "leases", "schedules", "dedup", "cache", "toolruns", "answers", "held", "pipelineruns", "toolstate", "deliveries", "labels"] as const satisfies readonly BucketKey[];
const STREAMS = ["TASKS", "PROPOSALS", "APPROVALS", "OUTBOX", "AUDIT", "USAGE", "MEMLOG", "DLQ"] as const satisfies readonly StreamKey[];
/** written on a timer by the fleet itself (heartbeats, lease renewals): their keys' revisions move without any attack */
const PERIODIC: readonly BucketKey[] = ["agents", "leases"];

interface Snapshot {
  keys: Record<string, Record<string, number>>;
  lastSeq: Record<string, number>;
}

const violation = (err: unknown) => isPermissionViolation(err);
const typedDenial = (err: unknown) => err instanceof FleetError && err.code === "PERMISSION_DENIED" && !isPermissionViolation(err);

describe("an attacker holding one agent's seeds", { timeout: 90_000 }, () => {
  const names = new FleetNames("fleet");
  const output: string[] = [];
  let secured: SecuredServer;
  let procs: ProcessSupervisor;
  let operator: NatsConnection;
  let opKv: Record<BucketKey, KV>;
  let opJsm: JetStreamManager;
  let day: string;
  let before_: Snapshot;
  const as = (identity: Identity): Promise<NatsConnection> => secured.as(identity);

  const snapshot = async (): Promise<Snapshot> => {
    const keys: Snapshot["keys"] = {};
    for (const bucket of BUCKETS) {
      const revisions: Record<string, number> = {};
      for await (const key of await opKv[bucket].keys()) revisions[key] = (await opKv[bucket].get(key))?.revision ?? 0;
      keys[bucket] = revisions;
    }
    const lastSeq: Snapshot["lastSeq"] = {};
    for (const stream of STREAMS) lastSeq[stream] = (await opJsm.streams.info(names.stream(stream))).state.last_seq;
    return { keys, lastSeq };
  };

  /** Where a forged reply subject would write: a key of every bucket an agent must not write, and every stream. */
  const forgedTargets = () => [
    `$KV.${names.bucket("tasks")}.scout.t-victim`,
    `$KV.${names.bucket("budgets")}.${day}.fleet`,
    `$KV.${names.bucket("budgets")}.${day}.scout`,
    `$KV.${names.bucket("memory")}.scout`,
    `$KV.${names.bucket("proposals")}.p-victim`,
    `$KV.${names.bucket("agents")}.scout`,
    `$KV.${names.bucket("toolruns")}.x`,
    `$KV.${names.bucket("toolstate")}.feed.x`,
    `$KV.${names.bucket("answers")}.scout.t-victim.1`,
    `$KV.${names.bucket("held")}.scout.t-victim`,
    `$KV.${names.bucket("pipelineruns")}.scout.t-victim`,
    `$KV.${names.bucket("deliveries")}.email.run.x`,
    names.audit("scout"),
    names.usage("scout", "nano"),
    names.task("scout"),
    names.outbox("console"),
    names.proposal("scout", "submitted"),
    names.approvalDecision("telegram", "p-victim"),
    names.memoryLog("scout", day.replaceAll("-", "")),
    names.dlq("forged"),
  ];

  before(async () => {
    secured = await startSecuredServer(names);
    operator = secured.operator;
    procs = startProcesses(securedFleetSpecs(secured.fleet.file, secured.server.url, secured.creds, ["atlas", "scout", "ship"]), output);
    await procs.start();
    opKv = (await openFleetResources(operator, names)).kv;
    opJsm = await jetstreamManager(operator);
    day = fleetDay(Date.now(), secured.fleet.config.fleet.timeZone);

    // the victim's records: a task, MEMORY.md, a session log day, a budget and usage from a real model call
    await opKv.tasks.put(names.taskKey("scout", "t-victim"), encode({ victim: true }, CODEC));
    await opKv.tasks.put(names.taskKey("ship", "t-own"), encode({ own: true }, CODEC));
    await opKv.proposals.put("p-victim", encode({ victim: true }, CODEC));
    await new AgentMemory({ kv: opKv.memory, maxLines: 50, codec: CODEC }).append("scout", "the deploy key lives in the vault");
    const sessionLog = new SessionLog({ js: jetstream(operator), jsm: opJsm, names, timeZone: "UTC", codec: CODEC });
    await sessionLog.append({ agentId: "scout", kind: "note", text: "scout's private note" });
    for (const id of ["atlas", "ship", "scout"]) await waitFor(`${id} to announce itself`, async () => (await opKv.agents.get(id)) ?? undefined, 30_000);
    await waitFor("governance's durables", async () => (await opJsm.consumers.info(names.stream("PROPOSALS"), "governance-intake").catch(() => undefined)) ?? undefined, 30_000);
    const router = new RouterClient(operator, names, { codec: CODEC, timeoutMs: 3_000, retries: 0 });
    await waitFor("the router", async () => router.complete({ agentId: "scout", title: "seed", messages: [{ role: "user", content: "hello" }] }).catch(() => undefined), 30_000);
    await waitFor("memory search", async () => requestTyped(operator, names.memorySearch("scout"), { query: "deploy", limit: 1 }, MemorySearchResult, { codec: CODEC, timeoutMs: 2_000 }).catch(() => undefined), 30_000);
    await waitFor("the tool host", async () => (await operator.request("$SRV.PING.fleet-tools", undefined, { timeout: 1_000 }).catch(() => undefined)) ?? undefined, 30_000);
    await waitFor("the usage record", async () => ((await opJsm.streams.info(names.stream("USAGE"))).state.messages > 0 ? true : undefined));
    before_ = await snapshot();
  });

  after(async () => {
    await procs?.stop();
    await secured?.stop();
  });

  it("a forged reply subject towards every bucket, stream and the audit trail lands nowhere: every service refuses and counts it", async () => {
    const ship = await as("agent:ship");
    const dlqBefore = (await opJsm.streams.info(names.stream("DLQ"))).state.last_seq;
    // every service ship may ask (the others it may not even reach: see the broker's refusals below)
    const services = [names.agentOperation("scout", "SendMessage"), names.agentOperation("ship", "SendMessage"), names.router("usage", "ship"), names.router("complete", "ship"), names.router("embed", "ship"), names.memorySearch("ship"), names.tool("http_check", "ship")];
    const targets = forgedTargets();
    for (const subject of services) for (const reply of targets) ship.publish(subject, encode({ agentId: "ship" }, CODEC), { reply });
    await ship.flush();
    const forged = services.length * targets.length;
    await waitFor("every forged request dead-lettered as refused", async () => ((await opJsm.streams.info(names.stream("DLQ"))).state.last_seq >= dlqBefore + forged ? true : undefined), 30_000);
    const dead = await opJsm.streams.getMessage(names.stream("DLQ"), { seq: dlqBefore + 1 });
    assert.equal(dead?.header.get(HEADERS.dlqCode), "PERMISSION_DENIED");
  });

  it("the serving identities may publish replies only: a raw publish on each serving connection towards any record is refused by the broker", async () => {
    const targets = forgedTargets();
    for (const role of ["agent:scout", "router", "scheduler", "tools", "governance"] as const) {
      const serving = await as(servingIdentity(role));
      const seen = refusals(serving);
      for (const subject of targets) serving.publish(subject, encode({ garbage: true }, CODEC));
      // a reply to an inbox is what it is for
      serving.publish("_INBOX.nobody.1", encode({ result: {} }, CODEC));
      await serving.flush();
      await waitFor(`${role}'s serving connection to be refused every target`, () => (targets.every((t) => seen.some((s) => s.includes(`"${t}"`))) ? true : undefined), 10_000);
      assert.ok(!seen.some((s) => s.includes("_INBOX.nobody")), `${role} may reply`);
      // and it serves nothing it could write with: JetStream is out of its reach altogether
      await assert.rejects(jetstream(serving).publish(names.audit("scout"), encode({ garbage: true }, CODEC)), violation, role);
    }
  });

  it("another agent's id, in the subject or in the payload, is refused by the broker or with a typed error on every service", async () => {
    const ship = await as("agent:ship");
    const js = jetstream(ship);
    const router = new RouterClient(ship, names, { codec: CODEC, timeoutMs: 5_000, retries: 0 });
    const ask = (agentId: string) => ({ agentId, title: "spend scout's budget", messages: [{ role: "user" as const, content: "hi" }] });
    const search = { query: "deploy key", limit: 3 };
    // in the subject: the broker
    await assert.rejects(router.complete(ask("scout")), violation, "router complete as scout");
    await assert.rejects(router.embed("scout", ["x"]), violation, "router embed as scout");
    await assert.rejects(requestTyped(ship, names.memorySearch("scout"), search, MemorySearchResult, { codec: CODEC, timeoutMs: 5_000 }), violation, "scout's memory");
    await assert.rejects(callTool(ship, names, "http_check", { agentId: "scout", input: {} }, { codec: CODEC, timeoutMs: 5_000, as: "scout" }), violation, "a tool as scout");
    await assert.rejects(ship.request(names.agentOperation("scout", "GetTask"), encode({ id: "t-victim" }, CODEC), { timeout: 3_000 }), violation, "scout's GetTask");
    await assert.rejects(ship.request(names.agentControl("scout", "Restart"), undefined, { timeout: 3_000 }), violation, "scout's controls");
    await assert.rejects(ship.request(names.governance("rollback"), encode({ id: "p-victim" }, CODEC), { timeout: 3_000 }), violation, "governance's rollback");
    for (const subject of [names.proposal("scout", "submitted"), names.approvalDecision("telegram", "p-victim"), names.audit("scout"), names.usage("scout", "nano"), names.task("scout"), names.outbox("console"), names.memoryLog("scout", day.replaceAll("-", ""))]) {
      await assert.rejects(js.publish(subject, encode({ agentId: "scout" }, CODEC)), violation, subject);
    }
    // in the payload, on its own subject: the service, before the handler
    await assert.rejects(requestTyped(ship, names.router("complete", "ship"), ask("scout"), CompleteReply, { codec: CODEC, timeoutMs: 5_000 }), typedDenial, "router payload");
    await assert.rejects(requestTyped(ship, names.memorySearch("ship"), { ...search, agentId: "scout" }, MemorySearchResult, { codec: CODEC, timeoutMs: 5_000 }), typedDenial, "memory payload");
    await assert.rejects(callTool(ship, names, "http_check", { agentId: "scout", input: {} }, { codec: CODEC, timeoutMs: 5_000, as: "ship" }), typedDenial, "tool payload");
  });

  it("listing or reading another agent's keys, memory and session log is refused by every route; its own work", async () => {
    const ship = await as("agent:ship");
    const jsm = await jetstreamManager(ship, { checkAPI: false });
    const { kv } = await openFleetResources(ship, names, { create: false, probe: { bucket: "agents", key: "ship" } });
    const tasks = `KV_${names.bucket("tasks")}`;
    const scoutTask = `$KV.${names.bucket("tasks")}.scout.t-victim`;
    // stream info with a subjects filter, stream names and lists, consumer lists: no enumeration at all
    for (const stream of [tasks, `KV_${names.bucket("memory")}`, names.stream("MEMLOG"), names.stream("TASKS"), names.stream("AUDIT")]) {
      await assert.rejects(jsm.streams.info(stream, { subjects_filter: ">" }), violation, `info of ${stream}`);
      await assert.rejects(jsm.consumers.list(stream).next(), violation, `consumers of ${stream}`);
    }
    await assert.rejects(jsm.streams.names("$KV.>").next(), violation, "stream names");
    await assert.rejects(jsm.streams.list("$KV.>").next(), violation, "stream list");
    // reads by sequence or by last subject, in the body where the broker cannot see it
    await assert.rejects(jsm.streams.getMessage(tasks, { last_by_subj: scoutTask }), violation, "msg get");
    await assert.rejects(jsm.direct.getMessage(tasks, { last_by_subj: scoutTask }), violation, "direct get by body");
    await assert.rejects(kv.tasks.get(names.taskKey("scout", "t-victim")), violation, "scout's task");
    await assert.rejects(kv.memory.get("scout"), violation, "scout's MEMORY.md");
    await assert.rejects(kv.budgets.get(`${day}.scout`), violation, "scout's budget");
    // key listings and watches: a consumer whose filter is another agent's
    await assert.rejects((async () => { for await (const _ of await kv.tasks.keys("scout.>")) break; })(), violation, "scout's task keys");
    await assert.rejects((async () => { for await (const _ of await kv.tasks.keys()) break; })(), violation, "every task key");
    await assert.rejects(kv.memory.watch({ key: "scout" }), violation, "a watch on scout's memory");
    const log = new SessionLog({ js: jetstream(ship), jsm, names, timeZone: "UTC", codec: CODEC });
    await assert.rejects(log.read("scout", day), violation, "scout's session log");
    // its own filter in the create subject, another's in the body: the server refuses the mismatch
    const smuggled = await ship.request(
      `$JS.API.CONSUMER.CREATE.${tasks}.steal.$KV.${names.bucket("tasks")}.ship.>`,
      JSON.stringify({ stream_name: tasks, config: { name: "steal", filter_subjects: [`$KV.${names.bucket("tasks")}.scout.>`], ack_policy: "none" } }),
      { timeout: 3_000 },
    );
    assert.match(new TextDecoder().decode(smuggled.data), /"error"/);
    await assert.rejects(opJsm.consumers.info(tasks, "steal"), "no consumer was made");

    // what is its own, it reads and lists
    assert.ok(await kv.tasks.get(names.taskKey("ship", "t-own")));
    const own: string[] = [];
    for await (const key of await kv.tasks.keys("ship.>")) own.push(key);
    assert.deepEqual(own, [names.taskKey("ship", "t-own")]);
    assert.equal(await kv.memory.get("ship"), null);
    assert.deepEqual(await log.read("ship", day), []);
  });

  it("nothing can be deleted or purged: streams, buckets, keys, messages, durables", async () => {
    const ship = await as("agent:ship");
    const jsm = await jetstreamManager(ship, { checkAPI: false });
    const { kv } = await openFleetResources(ship, names, { create: false, probe: { bucket: "agents", key: "ship" } });
    for (const stream of [...STREAMS.map((s) => names.stream(s)), ...BUCKETS.map((b) => `KV_${names.bucket(b)}`)]) {
      await assert.rejects(jsm.streams.purge(stream), violation, `purge ${stream}`);
      await assert.rejects(jsm.streams.delete(stream), violation, `delete ${stream}`);
      await assert.rejects(jsm.streams.deleteMessage(stream, 1), violation, `delete a message of ${stream}`);
    }
    for (const durable of ["agent-scout", "agent-ship"]) await assert.rejects(jsm.consumers.delete(names.stream("TASKS"), durable), violation, durable);
    await assert.rejects(kv.tasks.delete(names.taskKey("scout", "t-victim")), violation, "scout's task");
    await assert.rejects(kv.tasks.purge(names.taskKey("scout", "t-victim")), violation, "scout's task, purged");
    await assert.rejects(kv.memory.delete("scout"), violation, "scout's memory");
    await assert.rejects(kv.budgets.delete(`${day}.fleet`), violation, "the fleet's budget");
    const h = headers();
    h.set("KV-Operation", "PURGE");
    h.set("Nats-Rollup", "sub");
    await assert.rejects(jetstream(ship).publish(`$KV.${names.bucket("answers")}.scout.t-victim.1`, new Uint8Array(), { headers: h }), violation, "a rollup of scout's answers");
  });

  it("afterwards every record is as it was, no process met a refusal of its own, none restarted", async () => {
    const after_ = await snapshot();
    for (const bucket of BUCKETS) {
      if (PERIODIC.includes(bucket)) assert.deepEqual(Object.keys(after_.keys[bucket] ?? {}).sort(), Object.keys(before_.keys[bucket] ?? {}).sort(), bucket);
      else assert.deepEqual(after_.keys[bucket], before_.keys[bucket], `bucket ${bucket}`);
    }
    for (const stream of STREAMS) if (stream !== "DLQ") assert.equal(after_.lastSeq[stream], before_.lastSeq[stream], `stream ${stream}`);
    // the victim's records still decode as what they were
    assert.deepEqual((await new AgentMemory({ kv: opKv.memory, maxLines: 50, codec: CODEC }).read("scout")).lines, ["the deploy key lives in the vault"]);
    const refused = output.filter((line) => /Permissions Violation/.test(line));
    assert.deepEqual(refused, [], "the fleet's own work met no refusal");
    assert.ok(procs.status().every((c) => c.restarts === 0), `no process restarted:\n${output.join("\n")}`);
  });
});
