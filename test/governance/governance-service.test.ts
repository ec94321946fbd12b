import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino } from "pino";
import { z } from "zod";
import { parseFleetConfig, type FleetConfig } from "../../config/index.js";
import { AgentTools, defineTool, GovernanceService, policyOf, ProposalStore, ToolHost, type ToolDefinition } from "../../governance/index.js";
import {
  ApprovalRequest,
  connectNats,
  decode,
  CALLERS,
  encode,
  ensureFleetResources,
  FleetError,
  FleetNames,
  HEADERS,
  openBuckets,
  ProposalEvent,
  ProposalRecord,
  requestTyped,
  type ApprovalDecision,
  type FleetResources,
  type ProposalState,
} from "../../protocol/index.js";
import { NatsServer } from "../helpers/nats-server.js";
import { waitFor as waitUntil } from "../helpers/wait.js";

const waitFor = <T>(probe: () => Promise<T | undefined | false>, timeoutMs: number, what: string) => waitUntil(what, probe, timeoutMs);

/**
 * The governance process on a real nats-server with a real tool host: proposals from submission to their end state,
 * on a simulated clock for the windows (rollback 15 min; reminder, escalation, expiry at 12, 20, 24 h), including a
 * restart of governance between deadlines and a crash in the middle of an execution.
 */

const PREFIX = "gv";
const T0 = Date.parse("2026-11-23T12:00:00Z");
const HOUR = 3600_000;
const MIN = 60_000;

function fleetYaml(): string {
  const tiers = ["nano", "workhorse", "capable", "power", "premium"].map((t) => `  ${t}: { model: offline-${t}, inputPerM: 1, outputPerM: 2 }`).join("\n");
  const agent = (id: string, layer: string, tools: string) =>
    `  - { id: ${id}, name: ${id}, role: r, layer: ${layer}, defaultTier: nano, cycleMinutes: 20, dailyCapUsd: 1, tools: ${tools}, skills: [{ id: s, name: S, description: s, tags: [s] }] }`;
  return `fleet: { name: gv, prefix: ${PREFIX}, timeZone: UTC, dailyCapUsd: 10 }
tiers:
${tiers}
agents:
${agent("atlas", "orchestration", '["*"]')}
${agent("ship", "execution", "[noop, deploy, send_mail, wire_money, slow_deploy, broken]")}
governance:
  retrySeconds: [60]
  approvals: { channels: [console], escalateTo: [ops] }
bridges:
  telegram: { chatId: "-100", approvers: [4242] }
`;
}

/** Test tools with counters, so a test can tell how often each effect really ran. */
function testTools(counts: Map<string, number>): ToolDefinition[] {
  const bump = (name: string) => counts.set(name, (counts.get(name) ?? 0) + 1);
  const Target = z.object({ target: z.string() });
  return [
    defineTool({ name: "noop", description: "does nothing, internally", risk: "AUTO+", input: z.object({ n: z.number() }), handler: async ({ n }) => (bump("noop"), { n }) }),
    defineTool({
      name: "deploy", description: "a reversible external effect", risk: "PROPOSE", input: Target,
      handler: async ({ target }) => (bump("deploy"), { deployed: target, previous: "v1" }),
      rollback: async (_input, output) => (bump("deploy.rollback"), { restored: (output as { previous: string }).previous }),
    }),
    defineTool({
      name: "slow_deploy", description: "a reversible effect that takes a while", risk: "PROPOSE", input: Target,
      handler: async ({ target }) => (bump("slow_deploy"), await sleep(1_500), { deployed: target }),
      rollback: async () => ({}),
    }),
    defineTool({ name: "send_mail", description: "irreversible", risk: "CONFIRM", input: z.object({ to: z.string(), body: z.string() }), handler: async ({ to }) => (bump("send_mail"), { sentTo: to }) }),
    defineTool({ name: "wire_money", description: "never", risk: "BLOCK", input: z.object({ amount: z.number() }), handler: async () => (bump("wire_money"), {}) }),
    defineTool({ name: "broken", description: "always fails", risk: "AUTO+", input: z.object({}), handler: async () => (bump("broken"), Promise.reject(new Error("disk full"))) }),
  ];
}

describe("governance service", () => {
  const names = new FleetNames(PREFIX);
  // warnings are kept, so a test can wait on what a component says it decided instead of on the clock
  const warnings: Array<Record<string, unknown>> = [];
  const log = pino({ level: "warn" }, { write: (line: string) => void warnings.push(JSON.parse(line) as Record<string, unknown>) });
  const counts = new Map<string, number>();
  let now = T0;
  const clock = () => now;
  let nats: NatsServer;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let jsm: JetStreamManager;
  let resources: FleetResources;
  let config: FleetConfig;
  let tools: ToolDefinition[];
  let host: ToolHost;
  let governance: GovernanceService;
  let ship: AgentTools;
  let store: ProposalStore;

  /** A governance process on its own connection (KV included), so closing that connection is a crash. */
  async function startGovernance(connection = nc): Promise<GovernanceService> {
    const service = new GovernanceService({
      nc: connection, js: jetstream(connection), jsm: await jetstreamManager(connection), names, codec: "msgpack", config,
      proposalsKv: (await openBuckets(connection, names)).proposals, tools, policy: policyOf(config),
      budgetOf: async () => ({ spentUsd: 0, capUsd: 1 }), clock: { now: clock }, log, tickMs: 0, toolTimeoutMs: 5_000,
    });
    await service.start();
    return service;
  }

  const stateOf = async (id: string) => (await store.get(id))?.record;
  const until = async (id: string, state: ProposalState) => {
    await waitFor(async () => (await stateOf(id))?.state === state, 10_000, `proposal ${id} to reach ${state} (is ${(await stateOf(id))?.state})`);
    return (await stateOf(id))!;
  };

  async function streamMessages(stream: string, filter: string): Promise<{ subject: string; data: Uint8Array; headers: Map<string, string> }[]> {
    const info = await jsm.streams.info(stream);
    const out = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
      const m = await jsm.streams.getMessage(stream, { seq }).catch(() => undefined);
      if (!m || !matches(filter, m.subject)) continue;
      const headers = new Map<string, string>();
      for (const key of m.header?.keys() ?? []) headers.set(key, m.header.get(key));
      out.push({ subject: m.subject, data: m.data, headers });
    }
    return out;
  }

  before(async () => {
    nats = await NatsServer.start();
    nc = await connectNats({ servers: nats.url, name: "governance-test", longLived: false });
    resources = await ensureFleetResources(nc, names);
    js = jetstream(nc);
    jsm = resources.jsm;
    config = parseFleetConfig(fleetYaml(), "governance-test.yaml");
    tools = testTools(counts);
    host = new ToolHost({ nc, js, names, codec: "msgpack", config, tools, kv: { proposals: resources.kv.proposals, toolruns: resources.kv.toolruns }, host: "test", log, clock: { now: clock } });
    await host.start();
    store = new ProposalStore(resources.kv.proposals, js, names, "msgpack");
    ship = new AgentTools({ nc, js, names, codec: "msgpack", agentId: "ship", allowed: config.agents[1]!.tools, risks: new Map(tools.map((t) => [t.name, t.risk])), clock: { now: clock } });
    governance = await startGovernance();
  });

  after(async () => {
    await governance?.stop();
    await host?.stop();
    await nc?.close();
    await nats?.stop();
  });

  beforeEach(() => {
    now = T0;
  });

  it("AUTO+: Sentinel approves, the tool runs once, the proposal completes; every transition is in PROPOSALS and the call in AUDIT", async () => {
    const id = await ship.propose({ tool: "noop", input: { n: 7 }, reason: "touch the cache" });
    const done = await until(id, "completed");
    assert.deepEqual(done.output, { n: 7 });
    assert.equal(done.verdict?.outcome, "approved");
    assert.ok(done.verdict!.results.length >= 9, "every rule's result is recorded");
    assert.deepEqual(done.history.map((h) => h.to), ["pending", "sentinel_approved", "executing", "completed"]);
    const events = (await streamMessages(names.stream("PROPOSALS"), names.proposal("ship", "*"))).filter((e) => !e.subject.endsWith(".submitted"));
    const mine = events.map((e) => ({ subject: e.subject, event: decode(ProposalEvent, e.data) })).filter((d) => d.event.ok && d.event.value.id === id);
    // one event per write: created already executing (three transitions), then completed
    assert.deepEqual(mine.map((d) => d.subject), [names.proposal("ship", "executing"), names.proposal("ship", "completed")]);
    assert.deepEqual(mine.flatMap((d) => (d.event.ok ? d.event.value.transitions.map((t) => t.to) : [])), ["pending", "sentinel_approved", "executing", "completed"]);
    const audit = await streamMessages(names.stream("AUDIT"), names.audit("ship"));
    assert.ok(audit.length >= 1);
  });

  it("PROPOSE: rolled back inside its 15-minute window; refused after it with the time it closed", async () => {
    const inside = await ship.propose({ tool: "deploy", input: { target: "site-a" }, reason: "ship the fix" });
    const done = await until(inside, "completed");
    assert.equal(done.rollbackUntil, T0 + 15 * MIN);
    now = T0 + 14 * MIN;
    const rolled = await requestTyped(nc, names.governance("rollback"), { proposalId: inside, by: "op" }, ProposalRecord, { codec: "msgpack", timeoutMs: 5_000 });
    assert.equal(rolled.state, "rolled_back");
    assert.equal(counts.get("deploy.rollback"), 1);

    now = T0;
    const late = await ship.propose({ tool: "deploy", input: { target: "site-b" }, reason: "ship the other fix" });
    await until(late, "completed");
    now = T0 + 15 * MIN;
    await assert.rejects(
      requestTyped(nc, names.governance("rollback"), { proposalId: late, by: "op" }, ProposalRecord, { codec: "msgpack", timeoutMs: 5_000 }),
      (err: unknown) => err instanceof FleetError && err.code === "PROPOSAL_STATE" && /rollback window closed at 2026-11-23T12:15:00/.test(err.message),
    );
    assert.equal(counts.get("deploy.rollback"), 1, "the rollback handler did not run after the window");
    assert.equal((await stateOf(late))?.state, "completed");
  });

  it("CONFIRM: request at once, reminder at 12 h, escalation at 20 h (also to the escalation channel), expiry at 24 h — across a governance restart", async () => {
    const id = await ship.propose({ tool: "send_mail", input: { to: "ops", body: "quarterly numbers" }, reason: "ops asked" });
    const waiting = await until(id, "awaiting_human");
    assert.equal(waiting.deadlines?.expiresAt, T0 + 24 * HOUR);
    const notices = async () =>
      (await streamMessages(names.stream("APPROVALS"), names.approvalRequest("*")))
        .map((m) => ({ channel: m.subject.split(".").at(-1), request: decode(ApprovalRequest, m.data) }))
        .filter((n) => n.request.ok && n.request.value.proposalId === id)
        .map((n) => `${n.channel}:${n.request.ok ? n.request.value.kind : ""}`);
    assert.deepEqual(await notices(), ["console:request"]);

    now = T0 + 12 * HOUR;
    await governance.tick();
    assert.deepEqual(await notices(), ["console:request", "console:reminder"]);
    await governance.tick();
    assert.deepEqual(await notices(), ["console:request", "console:reminder"], "a reminder goes out once");

    // every process restarts: the deadlines are absolute in KV, so the new governance carries on from them
    await governance.stop();
    now = T0 + 20 * HOUR;
    governance = await startGovernance();
    assert.deepEqual(await notices(), ["console:request", "console:reminder", "console:escalation", "ops:escalation"]);

    now = T0 + 24 * HOUR;
    await governance.tick();
    const expired = await stateOf(id);
    assert.equal(expired?.state, "expired");
    assert.deepEqual((await notices()).slice(4), ["console:expired"]);
    assert.equal(counts.get("send_mail") ?? 0, 0, "an expired proposal never runs");
  });

  it("CONFIRM: a person's approval from a bridge runs it once; a rejection ends it", async () => {
    const approve = await ship.propose({ tool: "send_mail", input: { to: "a", body: "x" }, reason: "r" });
    const reject = await ship.propose({ tool: "send_mail", input: { to: "b", body: "y" }, reason: "r" });
    await until(approve, "awaiting_human");
    await until(reject, "awaiting_human");
    const decide = (proposalId: string, decision: ApprovalDecision["decision"]) =>
      js.publish(names.approvalDecision("telegram", proposalId), encode({ proposalId, decision, by: "4242", via: "telegram", at: now } satisfies ApprovalDecision));
    await decide(approve, "approve");
    await decide(reject, "reject");
    const done = await until(approve, "completed");
    assert.equal(done.decision?.by, "4242");
    assert.equal((await until(reject, "rejected")).decision?.decision, "reject");
    assert.equal(counts.get("send_mail"), 1);
  });

  it("three failed executions go to dead_letter and to the DLQ, with the tool's error", async () => {
    const before = counts.get("broken") ?? 0;
    const id = await ship.propose({ tool: "broken", input: {}, reason: "try it" });
    await waitFor(async () => (await stateOf(id))?.attempts === 1 && (await stateOf(id))?.state === "sentinel_approved", 10_000, "first failure");
    for (const k of [1, 2]) {
      now += 61_000;
      await governance.tick();
      await waitFor(async () => (await stateOf(id))?.attempts === k + 1 && (await stateOf(id))?.state !== "executing", 10_000, `failure ${k + 1}`);
    }
    const dead = await until(id, "dead_letter");
    assert.equal(dead.attempts, 3);
    assert.equal(dead.lastError?.code, "TOOL_FAILED");
    assert.equal((counts.get("broken") ?? 0) - before, 3);
    const dlq = await streamMessages(names.stream("DLQ"), names.dlq("proposal"));
    const letter = dlq.find((m) => { const d = decode(ProposalRecord, m.data); return d.ok && d.value.id === id; });
    assert.ok(letter, "the dead proposal is on the DLQ");
    assert.equal(letter.headers.get(HEADERS.dlqCode), "TOOL_FAILED");
  });

  it("a governance crash in the middle of an execution: the new process finishes it, the tool ran once", async () => {
    const crashing = await connectNats({ servers: nats.url, name: "governance-crashing", longLived: false });
    await governance.stop();
    governance = await startGovernance(crashing);
    const id = await ship.propose({ tool: "slow_deploy", input: { target: "site-c" }, reason: "r" });
    await until(id, "executing");
    // the process dies: its connection goes, nothing it had in memory survives
    await crashing.close();
    await governance.stop();
    governance = await startGovernance();
    const done = await until(id, "completed");
    assert.deepEqual(done.output, { deployed: "site-c" });
    assert.equal(counts.get("slow_deploy"), 1, "the tool ran exactly once");
    assert.equal(done.attempts, 1);
  });

  it("no tool host for a while: the proposal waits executing without spending attempts, and completes when one is back", async () => {
    await host.stop();
    const id = await ship.propose({ tool: "noop", input: { n: 99 }, reason: "while the host is down" });
    await until(id, "executing");
    // the proof that the executor asked, found no host and chose to wait rather than fail: its warning for this proposal
    await waitFor(async () => warnings.some((w) => w.proposalId === id && w.code === "TOOL_UNAVAILABLE"), 10_000, "the executor to find no host and wait");
    const waiting = await stateOf(id);
    assert.equal(waiting?.state, "executing");
    assert.equal(waiting?.attempts, 1);
    host = new ToolHost({ nc, js, names, codec: "msgpack", config, tools, kv: { proposals: resources.kv.proposals, toolruns: resources.kv.toolruns }, host: "test", log, clock: { now: clock } });
    await host.start();
    const done = await until(id, "completed");
    assert.equal(done.attempts, 1);
    assert.deepEqual(done.output, { n: 99 });
  });

  it("the 47-email case: Sentinel's rate limit lets 10 through in one cycle and refuses the other 37, naming itself", async () => {
    const ids: string[] = [];
    for (let k = 0; k < 47; k++) ids.push(await new AgentTools({ nc, js, names, codec: "msgpack", agentId: "atlas", allowed: ["*"], risks: new Map(tools.map((t) => [t.name, t.risk])), clock: { now: clock } }).propose({ tool: "send_mail", input: { to: `lead-${k}`, body: "hello" }, reason: "outreach" }));
    await waitFor(async () => (await Promise.all(ids.map(stateOf))).every((r) => r && r.state !== "pending"), 15_000, "all 47 judged");
    const records = (await Promise.all(ids.map(stateOf))).map((r) => r!);
    const refused = records.filter((r) => r.state === "rejected");
    assert.equal(records.filter((r) => r.state === "awaiting_human").length, 10);
    assert.equal(refused.length, 37);
    assert.ok(refused.every((r) => r.verdict?.rejectedBy?.rule === "rate_limit"));
  });

  it("BLOCK never executes, and a second identical pending proposal is refused by proposal_dedup", async () => {
    const blocked = await ship.propose({ tool: "wire_money", input: { amount: 5000 }, reason: "pay the invoice" });
    const rejected = await until(blocked, "rejected");
    assert.equal(rejected.verdict?.rejectedBy?.rule, "risk_blocked");
    assert.equal(counts.get("wire_money") ?? 0, 0);

    const first = await ship.propose({ tool: "send_mail", input: { to: "dup", body: "same" }, reason: "r" });
    await until(first, "awaiting_human");
    const second = await ship.propose({ tool: "send_mail", input: { body: "same", to: "dup" }, reason: "r again" });
    const dup = await until(second, "rejected");
    assert.equal(dup.verdict?.rejectedBy?.rule, "proposal_dedup");
    assert.match(dup.verdict?.rejectedBy?.reason ?? "", new RegExp(first));
  });

  it("malformed proposals: a typed error for the agent, a dead letter for bytes on the wire, and governance keeps going", async () => {
    await assert.rejects(ship.propose({ id: "not a valid id!", tool: "noop", input: { n: 1 }, reason: "r" }), (err: unknown) => err instanceof FleetError && err.code === "MESSAGE_INVALID");
    await js.publish(names.proposal("ship", "submitted"), new Uint8Array([0xc1, 0x00, 0xff]));
    await js.publish(names.proposal("ship", "submitted"), encode({ id: "x1", agentId: "ship" }));
    await waitFor(async () => (await streamMessages(names.stream("DLQ"), names.dlq("governance"))).length >= 2, 10_000, "two dead letters");
    const letters = await streamMessages(names.stream("DLQ"), names.dlq("governance"));
    assert.deepEqual(letters.map((l) => l.headers.get(HEADERS.dlqCode)).sort(), ["MESSAGE_INVALID", "MESSAGE_MALFORMED"]);
    const id = await ship.propose({ tool: "noop", input: { n: 2 }, reason: "still working" });
    await until(id, "completed");
  });

  it("a decision is the subject's channel's: another channel claimed, a person off its list, a channel without one are refused and dead-lettered", async () => {
    const id = await ship.propose({ tool: "send_mail", input: { to: "forged", body: "x" }, reason: "r" });
    await until(id, "awaiting_human");
    const publish = (channel: string, body: ApprovalDecision) => js.publish(names.approvalDecision(channel, body.proposalId), encode(body));
    const approve = (by: string, via: string): ApprovalDecision => ({ proposalId: id, decision: "approve", by, via, at: now });
    const refused = [
      // published on telegram's subject, claiming discord (whose approvers governance would then have asked about)
      publish("telegram", approve("4242", "discord")),
      // telegram's subject and via, by someone not on telegram's approver list
      publish("telegram", approve("9999", "telegram")),
      // a channel with no approver list: nobody can decide through it
      publish("console", approve("4242", "console")),
      // the operator's token with a payload claiming telegram
      publish("_operator", approve("4242", "telegram")),
      // the subject names another proposal than the payload
      js.publish(names.approvalDecision("telegram", "p-other"), encode(approve("4242", "telegram"))),
    ];
    await Promise.all(refused);
    const decisionLetters = async () =>
      (await streamMessages(names.stream("DLQ"), names.dlq("governance"))).filter((l) => l.headers.get(HEADERS.dlqSubject)?.startsWith(`${PREFIX}.approval.decision.`));
    await waitFor(async () => (await decisionLetters()).length === refused.length, 10_000, "every refused decision dead-lettered");
    // governance takes decisions concurrently: the letters' order is not the publishing order
    assert.deepEqual(
      (await decisionLetters()).map((l) => `${l.headers.get(HEADERS.dlqSubject)} ${l.headers.get(HEADERS.dlqCode)}`).sort(),
      [
        `${names.approvalDecision("telegram", id)} PERMISSION_DENIED`,
        `${names.approvalDecision("telegram", id)} APPROVER_NOT_ALLOWED`,
        `${names.approvalDecision("console", id)} APPROVER_NOT_ALLOWED`,
        `${names.approvalDecision("_operator", id)} PERMISSION_DENIED`,
        `${names.approvalDecision("telegram", "p-other")} MESSAGE_INVALID`,
      ].sort(),
    );
    assert.equal((await stateOf(id))?.state, "awaiting_human", "no refused decision moved the proposal");
    assert.equal(counts.get("send_mail") ?? 0, 1, "only the earlier approved mail ran");

    // the operator decides under its own token, as whoever sits at the CLI
    await publish(CALLERS.operator, { proposalId: id, decision: "reject", by: "alice", via: CALLERS.operator, reason: "not this one", at: now });
    const rejected = await until(id, "rejected");
    assert.deepEqual([rejected.decision?.by, rejected.decision?.via], ["alice", CALLERS.operator]);
  });
});

function matches(filter: string, subject: string): boolean {
  const f = filter.split(".");
  const s = subject.split(".");
  if (f.at(-1) === ">") return s.length >= f.length - 1 && f.slice(0, -1).every((t, i) => t === "*" || t === s[i]);
  return f.length === s.length && f.every((t, i) => t === "*" || t === s[i]);
}
