import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  authorizationConfig,
  directTools,
  fleetIdentities,
  fleetPermissions,
  seedFileName,
  writeFleetCredentials,
  type Identity,
  type Permissions,
} from "../../governance/index.js";
import { GOVERNED_TOOLS as TOOLS, governedFleet } from "../helpers/governed-fleet.js";

/*
 * The broker's permissions as data: generated from the test fleet (atlas with "*", scout and ship with allow lists), a
 * console principal, a nightly report to Slack, and Telegram as the approval channel.
 */


/** NATS subject matching: `*` is one token, `>` one or more at the end. */
function matches(pattern: string, subject: string): boolean {
  const p = pattern.split(".");
  const s = subject.split(".");
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return s.length > i;
    if (i >= s.length || (p[i] !== "*" && p[i] !== s[i])) return false;
  }
  return p.length === s.length;
}

/** What the server decides for a publish: some allow matches and no deny does. */
function mayPublish(perms: Permissions, subject: string): boolean {
  return perms.publish.allow.some((a) => matches(a, subject)) && !perms.publish.deny.some((d) => matches(d, subject));
}

function maySubscribe(perms: Permissions, subject: string): boolean {
  return perms.subscribe.allow.some((a) => matches(a, subject)) && !perms.subscribe.deny.some((d) => matches(d, subject));
}

describe("broker permissions generated from the fleet config", () => {
  let fleet: ReturnType<typeof governedFleet>;
  let perms: Map<Identity, Permissions>;
  const of = (identity: Identity): Permissions => {
    const p = perms.get(identity);
    assert.ok(p, `permissions for ${identity}`);
    return p;
  };
  before(() => {
    fleet = governedFleet();
    perms = fleetPermissions(fleet.config, TOOLS, { inboxOf: (identity) => `_INBOX.${identity.replace(":", "-")}` });
  });
  after(() => fleet.cleanup());

  it("one identity per agent, service, channel and the operator; each role that serves has a serving twin", () => {
    assert.deepEqual(fleetIdentities(fleet.config), [
      "agent:atlas",
      "serve:agent:atlas",
      "agent:scout",
      "serve:agent:scout",
      "agent:ship",
      "serve:agent:ship",
      "router",
      "serve:router",
      "scheduler",
      "serve:scheduler",
      "governance",
      "serve:governance",
      "tools",
      "serve:tools",
      "bridge:console",
      "bridge:slack",
      "bridge:telegram",
      "webhook",
      "operator",
    ]);
    assert.deepEqual([...perms.keys()], fleetIdentities(fleet.config));
  });

  it("an agent gets the subjects of its allowed AUTO and AUTO+ tools only; '*' means every AUTO and AUTO+ tool", () => {
    assert.deepEqual(directTools(["web_fetch", "note_write", "deploy_site", "money_transfer"], TOOLS), ["note_write", "web_fetch"]);
    // each calls as itself: an agent with its id in the caller's place, governance as `_governance`
    const callerOf = (identity: Identity) => (identity.startsWith("agent:") ? identity.slice("agent:".length) : identity === "governance" ? "_governance" : identity);
    const tools = (identity: Identity) => Object.keys(TOOLS).filter((t) => mayPublish(of(identity), `fleet.tool.${t}.${callerOf(identity)}`)).sort();
    assert.deepEqual(tools("agent:scout"), ["note_write", "web_fetch"], "not its PROPOSE or BLOCK tool, not http_check (not on its list)");
    assert.deepEqual(tools("agent:ship"), ["http_check"]);
    assert.deepEqual(tools("agent:atlas"), ["http_check", "note_write", "web_fetch"]);
    assert.equal(mayPublish(of("agent:atlas"), "fleet.tool.not_in_the_catalogue.atlas"), false, "a tool the catalogue does not know is nobody's");
    assert.deepEqual(tools("governance"), ["deploy_site", "email_send"], "governance runs what needs a proposal, nothing else");
    for (const subject of ["fleet.tool.web_fetch", "fleet.tool.web_fetch.ship", "fleet.tool.web_fetch.*", "fleet.tool.deploy_site._governance", "fleet.tool.web_fetch._governance"]) {
      assert.equal(mayPublish(of("agent:scout"), subject), false, `scout calls in no one else's name: ${subject}`);
    }
    assert.equal(mayPublish(of("agent:atlas"), "fleet.tool.web_fetch.scout"), false, "not even the wildcard agent");
    assert.equal(mayPublish(of("governance"), "fleet.tool.deploy_site.scout"), false, "governance calls as itself, with the proposal");
    for (const identity of ["router", "scheduler", "tools", "webhook", "bridge:telegram"] as const) assert.deepEqual(tools(identity), [], identity);
  });

  it("the router and memory search learn the caller from the subject, where each identity may put only its own id", () => {
    const scout = of("agent:scout");
    for (const subject of ["fleet.router.complete.ship", "fleet.router.usage._operator", "fleet.router.complete", "fleet.router.complete.*", "fleet.memory.search.ship", "fleet.memory.search"]) {
      assert.equal(mayPublish(scout, subject), false, subject);
    }
    assert.equal(mayPublish(of("agent:atlas"), "fleet.router.complete.scout"), false, "not even the orchestrator");
    // the scheduler distils each agent's day and embeds its memory and searches, billed to that agent; nothing else
    const scheduler = of("scheduler");
    for (const subject of ["fleet.router.complete.scout", "fleet.router.embed.ship"]) assert.equal(mayPublish(scheduler, subject), true, subject);
    for (const subject of ["fleet.router.route.scout", "fleet.router.usage.scout", "fleet.router.usage._operator"]) assert.equal(mayPublish(scheduler, subject), false, subject);
    for (const identity of ["router", "governance", "tools", "webhook", "bridge:telegram"] as const) {
      assert.equal(mayPublish(of(identity), "fleet.router.complete.scout"), false, identity);
      assert.equal(mayPublish(of(identity), "fleet.memory.search.scout"), false, identity);
    }
  });

  it("an approval decision may be published by the approval channel's bridge under its own channel, and the operator only", () => {
    const decision = "fleet.approval.decision.telegram.p-1";
    const allowed = [...perms].filter(([, p]) => mayPublish(p, decision)).map(([identity]) => identity);
    assert.deepEqual(allowed, ["bridge:telegram", "operator"]);
    assert.equal(mayPublish(of("agent:atlas"), decision), false, "not even the wildcard agent");
    // a bridge cannot claim another channel (and so its approvers), the operator's token, or a subject of another shape
    for (const subject of ["fleet.approval.decision._operator.p-1", "fleet.approval.decision.discord.p-1", "fleet.approval.decision.console.p-1", "fleet.approval.decision.p-1", "fleet.approval.decision.telegram.p-1.x"]) {
      assert.equal(mayPublish(of("bridge:telegram"), subject), false, subject);
    }
    assert.ok(of("bridge:telegram").publish.deny.includes("fleet.approval.decision._operator.*"), "no bridge takes the operator's token");
    const operatorDecision = "fleet.approval.decision._operator.p-1";
    assert.deepEqual([...perms].filter(([, p]) => mayPublish(p, operatorDecision)).map(([identity]) => identity), ["operator"]);
    assert.ok(of("agent:scout").publish.deny.includes("fleet.approval.>"), "agents are denied approvals explicitly");
    assert.equal(mayPublish(of("governance"), "fleet.approval.request.telegram"), true, "governance asks");
    assert.equal(mayPublish(of("bridge:telegram"), "fleet.approval.request.telegram"), false, "a bridge cannot make up requests");
  });

  it("an agent submits proposals for itself only; governance publishes their states and never a submission", () => {
    const scout = of("agent:scout");
    assert.equal(mayPublish(scout, "fleet.proposal.scout.submitted"), true);
    assert.equal(mayPublish(scout, "fleet.proposal.ship.submitted"), false);
    assert.equal(mayPublish(scout, "fleet.proposal.scout.completed"), false, "a state change is governance's");
    assert.ok(scout.publish.deny.includes("fleet.proposal.ship.>") && scout.publish.deny.includes("fleet.proposal.atlas.>"));
    assert.equal(mayPublish(of("governance"), "fleet.proposal.scout.completed"), true);
    assert.equal(mayPublish(of("governance"), "fleet.proposal.scout.submitted"), false);
  });

  it("an agent publishes on its own subjects and writes its own keys; agents still message each other", () => {
    const scout = of("agent:scout");
    for (const subject of [
      "fleet.agent.scout.events",
      "fleet.task.scout",
      "fleet.agent.ship.a2a.SendMessage",
      "fleet.agent.ship.inbox",
      "fleet.router.complete.scout",
      "fleet.router.route.scout",
      "fleet.router.embed.scout",
      "fleet.router.usage.scout",
      "fleet.memory.search.scout",
      "fleet.memory.log.scout.20260115",
      "fleet.finding.scout",
      "fleet.dlq.a2a",
      "$KV.fleet-tasks.scout.t-1",
      "$KV.fleet-agents.scout",
      "$KV.fleet-dedup.scout",
      // its held tasks: kept, listed at start, released
      "$KV.fleet-held.scout.t-1",
      "$JS.API.DIRECT.GET.KV_fleet-held.$KV.fleet-held.scout.t-1",
      "$JS.API.CONSUMER.CREATE.KV_fleet-held.w1.$KV.fleet-held.scout.>",
      "$KV.fleet-pipelineruns.scout.t-1",
      "$JS.API.DIRECT.GET.KV_fleet-pipelineruns.$KV.fleet-pipelineruns.scout.t-1",
      "$JS.API.DIRECT.GET.KV_fleet-memory.$KV.fleet-memory.scout",
      "$JS.API.CONSUMER.CREATE.FLEET_TASKS.agent-scout.fleet.task.scout",
      "$JS.API.CONSUMER.MSG.NEXT.FLEET_TASKS.agent-scout",
      "$JS.ACK.FLEET_TASKS.agent-scout.1.5.5.1700000000.0",
    ]) {
      assert.equal(mayPublish(scout, subject), true, subject);
    }
    for (const subject of [
      "fleet.agent.ship.events",
      "fleet.finding.ship",
      "fleet.agent.ship.a2a.CancelTask",
      "fleet.task.ship",
      "fleet.wake.ship",
      "fleet.memory.log.ship.20260115",
      "fleet.audit.scout",
      "fleet.outbox.console",
      "fleet.usage.scout.nano",
      "$KV.fleet-tasks.ship.t-1",
      "$KV.fleet-agents.ship",
      "$KV.fleet-budgets.20260115.scout",
      "$KV.fleet-proposals.p-1",
      // another agent's held work: neither written nor read nor listed
      "$KV.fleet-held.ship.t-1",
      "$JS.API.DIRECT.GET.KV_fleet-held.$KV.fleet-held.ship.t-1",
      "$JS.API.CONSUMER.CREATE.KV_fleet-held.w1.$KV.fleet-held.>",
      "$KV.fleet-pipelineruns.ship.t-1",
      "$JS.API.DIRECT.GET.KV_fleet-pipelineruns.$KV.fleet-pipelineruns.ship.t-1",
      "$JS.API.DIRECT.GET.KV_fleet-tasks.$KV.fleet-tasks.ship.t-1",
      "$JS.API.CONSUMER.CREATE.KV_fleet-tasks.w1.$KV.fleet-tasks.>",
      "$JS.API.STREAM.MSG.GET.KV_fleet-tasks",
      // its own durable, pointed at another agent's tasks: the filter is in the subject, so the broker refuses it
      "$JS.API.CONSUMER.CREATE.FLEET_TASKS.agent-scout.fleet.task.ship",
      "$JS.API.CONSUMER.DURABLE.CREATE.FLEET_TASKS.agent-scout",
      "$JS.API.CONSUMER.MSG.NEXT.FLEET_TASKS.agent-ship",
      "$JS.ACK.FLEET_TASKS.agent-ship.1.5.5.1700000000.0",
    ]) {
      assert.equal(mayPublish(scout, subject), false, subject);
    }
  });

  it("the orchestrator assigns work to every agent and reads their records; the others do not", () => {
    const atlas = of("agent:atlas");
    for (const subject of ["fleet.task.ship", "$KV.fleet-tasks.ship.t-1", "$KV.fleet-dedup.ship", "$JS.API.DIRECT.GET.KV_fleet-agents.$KV.fleet-agents.ship", "$KV.fleet-leases.agent.atlas"]) {
      assert.equal(mayPublish(atlas, subject), true, subject);
    }
    assert.equal(mayPublish(atlas, "$KV.fleet-agents.ship"), false, "it reads other agents' records, never writes them");
    assert.equal(mayPublish(of("agent:scout"), "$KV.fleet-leases.agent.atlas"), false);
  });

  it("only governance (and the operator) anchors the audit chain; an agent reports only its own refusals, which the tool host serves", () => {
    for (const [identity, p] of perms) {
      assert.equal(mayPublish(p, "fleet.anchor.audit"), identity === "governance" || identity === "operator", identity);
      if (identity.startsWith("agent:")) {
        for (const other of fleet.config.agents) assert.equal(mayPublish(p, `fleet.refusal.${other.id}`), identity === `agent:${other.id}`, `${identity} → ${other.id}`);
      }
    }
    assert.equal(maySubscribe(of("serve:tools"), "fleet.refusal.scout"), true);
    // the orchestrator's delegations to peers: only it reports them, only in its own name, and the tool host serves them
    for (const [identity, p] of perms) {
      if (identity === "operator") continue;
      for (const other of fleet.config.agents) assert.equal(mayPublish(p, `fleet.delegation.${other.id}`), identity === "agent:atlas" && other.id === "atlas", `${identity} → delegation of ${other.id}`);
    }
    assert.equal(maySubscribe(of("serve:tools"), "fleet.delegation.atlas"), true);
    assert.equal(mayPublish(of("governance"), "$JS.API.STREAM.MSG.GET.FLEET_AUDIT"), true, "governance reads the tip it anchors");
    assert.equal(mayPublish(of("governance"), "fleet.audit.scout"), false, "and never writes the trail itself");
  });

  it("nobody but the operator creates, changes, purges or deletes a stream or deletes a durable", () => {
    const subjects = [
      "$JS.API.STREAM.CREATE.FLEET_TASKS",
      "$JS.API.STREAM.UPDATE.FLEET_TASKS",
      "$JS.API.STREAM.DELETE.FLEET_TASKS",
      "$JS.API.STREAM.PURGE.FLEET_APPROVALS",
      "$JS.API.STREAM.MSG.DELETE.FLEET_AUDIT",
      "$JS.API.CONSUMER.DELETE.FLEET_TASKS.agent-scout",
      "$JS.API.CONSUMER.DELETE.FLEET_APPROVALS.governance-decisions",
      "$JS.API.CONSUMER.DELETE.FLEET_OUTBOX.outbox-console",
    ];
    for (const [identity, p] of perms) {
      for (const subject of subjects) assert.equal(mayPublish(p, subject), identity === "operator", `${identity}: ${subject}`);
    }
  });

  it("a durable is worked by its owner only, even by the scheduler that reads every stream", () => {
    const scheduler = of("scheduler");
    assert.equal(mayPublish(scheduler, "$JS.API.CONSUMER.CREATE.FLEET_TASKS.oc_x_1"), true, "its backup reads TASKS through an ephemeral consumer");
    assert.equal(mayPublish(scheduler, "$JS.API.CONSUMER.MSG.NEXT.FLEET_TASKS.oc_x_1"), true);
    for (const subject of [
      "$JS.API.CONSUMER.MSG.NEXT.FLEET_TASKS.agent-scout",
      "$JS.API.CONSUMER.CREATE.FLEET_TASKS.agent-scout",
      "$JS.API.CONSUMER.CREATE.FLEET_TASKS.agent-scout.fleet.task.scout",
      "$JS.API.CONSUMER.MSG.NEXT.FLEET_APPROVALS.governance-decisions",
      "$JS.API.CONSUMER.MSG.NEXT.FLEET_APPROVALS.approvals-telegram",
    ]) {
      assert.equal(mayPublish(scheduler, subject), false, subject);
    }
    assert.equal(mayPublish(of("bridge:telegram"), "$JS.API.CONSUMER.MSG.NEXT.FLEET_APPROVALS.approvals-telegram"), true);
    assert.equal(mayPublish(of("bridge:telegram"), "$JS.API.CONSUMER.MSG.NEXT.FLEET_OUTBOX.outbox-telegram"), true);
    assert.equal(mayPublish(of("bridge:console"), "$JS.API.CONSUMER.MSG.NEXT.FLEET_APPROVALS.approvals-console"), false, "console is no approval channel");
    assert.equal(mayPublish(of("governance"), "$JS.API.CONSUMER.CREATE.FLEET_PROPOSALS.governance-intake.fleet.proposal.*.submitted"), true);
    assert.equal(mayPublish(of("governance"), "$JS.API.CONSUMER.MSG.NEXT.FLEET_TASKS.agent-scout"), false);
  });

  it("each identity subscribes to its own inbox; services are served by the serving twins; replies go to inboxes, never by allow_responses", () => {
    for (const [identity, p] of perms) {
      assert.equal(p.allow_responses, false, identity);
      if (identity === "operator") continue;
      const inbox = `_INBOX.${identity.replace(":", "-")}`;
      assert.equal(maySubscribe(p, `${inbox}.abc.1`), true, identity);
      assert.equal(maySubscribe(p, "_INBOX.someone-else.abc.1"), false, `${identity} reads no other inbox`);
      assert.equal(maySubscribe(p, "fleet.>"), false, identity);
    }
    const scout = of("serve:agent:scout");
    for (const subject of ["fleet.agent.scout.a2a.SendMessage", "fleet.agent.scout.control.Restart", "fleet.agent.scout.inbox", "fleet.wake.scout", "$SRV.PING"]) {
      assert.equal(maySubscribe(scout, subject), true, subject);
      assert.equal(maySubscribe(of("agent:scout"), subject), false, `scout's data identity serves nothing: ${subject}`);
    }
    assert.equal(maySubscribe(scout, "fleet.agent.ship.a2a.SendMessage"), false);
    assert.equal(maySubscribe(of("serve:tools"), "fleet.tool.web_fetch.*"), true);
    assert.equal(maySubscribe(of("serve:router"), "fleet.router.*.*"), true);
    assert.equal(maySubscribe(of("serve:scheduler"), "fleet.memory.search.*"), true);
    assert.equal(maySubscribe(of("serve:governance"), "fleet.governance.rollback"), true);
    for (const role of ["agent:atlas", "agent:scout", "agent:ship", "router", "scheduler", "governance", "tools"] as const) {
      // the serving twin publishes replies and nothing else; the data identity publishes no reply at all
      assert.deepEqual(of(`serve:${role}`).publish, { allow: ["_INBOX.>"], deny: [] }, role);
      assert.equal(mayPublish(of(role), "_INBOX.x.y"), false, `${role} writes data and answers nobody`);
      for (const subject of ["fleet.tool.web_fetch.x", "fleet.router.*.*", "fleet.memory.search.*", "fleet.governance.rollback"]) {
        assert.equal(maySubscribe(of(role), subject), false, `${role} serves nothing: ${subject}`);
      }
    }
    assert.equal(mayPublish(of("webhook"), "_INBOX.x.y"), false, "a process that serves nothing answers nobody");
    assert.deepEqual(of("webhook").publish.allow, ["fleet.wake.atlas", "fleet.wake.scout", "fleet.wake.ship", "fleet.event.*", "fleet.dlq.webhook"]);
  });

  it("atlas reads its plan's inputs and keeps its records; no execution agent does", () => {
    const atlas = of("agent:atlas");
    const reads = [
      "$JS.API.CONSUMER.CREATE.FLEET_FINDINGS.read_1.fleet.finding.*",
      "$JS.API.CONSUMER.CREATE.FLEET_EVENTS.read_1.fleet.event.*",
      "$JS.API.CONSUMER.CREATE.FLEET_DLQ.read_1.fleet.dlq.tasks",
      "$JS.API.CONSUMER.CREATE.KV_fleet-tasks.read_1.$KV.fleet-tasks.>",
      "$JS.API.CONSUMER.MSG.NEXT.KV_fleet-tasks.read_1",
      "$JS.API.CONSUMER.CREATE.KV_fleet-proposals.read_1.$KV.fleet-proposals.>",
      "$JS.API.CONSUMER.MSG.NEXT.KV_fleet-proposals.read_1",
      "$JS.API.DIRECT.GET.KV_fleet-budgets.$KV.fleet-budgets.2030-01-01.ship",
      "$KV.fleet-plans.cursor",
    ];
    for (const subject of reads) {
      assert.equal(mayPublish(atlas, subject), true, subject);
      assert.equal(mayPublish(of("agent:scout"), subject), false, `scout: ${subject}`);
    }
    assert.equal(mayPublish(atlas, "$JS.API.CONSUMER.CREATE.FLEET_DLQ.read_1.fleet.dlq.inbox"), false, "only the tasks' dead letters");
    assert.equal(mayPublish(atlas, "$KV.fleet-budgets.2030-01-01.ship"), false, "it reads budgets, never writes them");
    assert.equal(mayPublish(atlas, "$KV.fleet-proposals.p-1"), false, "nor proposals");
    // its notices go to the first principal's channel, and to no other
    const notices = fleet.config.principals[0]?.channel ?? "";
    assert.ok(notices);
    assert.equal(mayPublish(atlas, `fleet.outbox.${notices}`), true);
    assert.equal(mayPublish(atlas, "fleet.outbox.some-other"), false);
  });

  it("an agent may not enumerate: no stream info (its subjects filter lists other agents' keys), no stream or consumer listings", () => {
    for (const agent of ["agent:atlas", "agent:scout", "agent:ship"] as const) {
      for (const subject of ["$JS.API.STREAM.INFO.KV_fleet-tasks", "$JS.API.STREAM.INFO.FLEET_MEMLOG", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST", "$JS.API.CONSUMER.LIST.FLEET_TASKS", "$JS.API.CONSUMER.NAMES.FLEET_TASKS", "$JS.API.STREAM.MSG.GET.KV_fleet-memory"]) {
        assert.equal(mayPublish(of(agent), subject), false, `${agent}: ${subject}`);
      }
    }
    const scout = of("agent:scout");
    // what it reads names its own keys in the subject
    assert.equal(mayPublish(scout, "$JS.API.DIRECT.GET.KV_fleet-tasks.$KV.fleet-tasks.scout.t1"), true);
    assert.equal(mayPublish(scout, "$JS.API.DIRECT.GET.KV_fleet-tasks.$KV.fleet-tasks.ship.t1"), false);
    assert.equal(mayPublish(scout, "$JS.API.CONSUMER.CREATE.KV_fleet-tasks.x.$KV.fleet-tasks.ship.>"), false);
    assert.equal(mayPublish(scout, "$JS.API.DIRECT.GET.KV_fleet-memory.$KV.fleet-memory.scout"), true);
    assert.equal(mayPublish(scout, "$JS.API.DIRECT.GET.KV_fleet-memory.$KV.fleet-memory.ship"), false);
    // the services keep stream info: the router rebuilds budgets from USAGE, the scheduler backs everything up
    assert.equal(mayPublish(of("scheduler"), "$JS.API.STREAM.INFO.KV_fleet-tasks"), true);
  });

  it("the server's authorization block: one nkey user per identity, with its permissions as JSON", () => {
    const users = [...perms].map(([identity, permissions], i) => ({ identity, publicKey: `UKEY${i}`, permissions }));
    const text = authorizationConfig(users, "test");
    assert.match(text, /^authorization \{$/m);
    const rows = text.split("\n").filter((l) => l.trim().startsWith("{")).map((l) => JSON.parse(l) as { nkey: string; permissions: { publish: { allow?: string[] }; allow_responses?: boolean } });
    assert.equal(rows.length, perms.size);
    assert.deepEqual(rows.map((r) => r.nkey), users.map((u) => u.publicKey));
    assert.ok(rows.every((r) => r.permissions.allow_responses === undefined), "allow_responses is never written");
    assert.ok(text.includes("# agent:scout"), "each user is labelled with its identity");
  });
});

describe("credentials on disk", () => {
  let fleet: ReturnType<typeof governedFleet>;
  let dir: string;
  before(() => {
    fleet = governedFleet();
    dir = mkdtempSync(join(tmpdir(), "fleet-creds-"));
  });
  after(() => {
    fleet.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it("one seed file per identity (0600), kept across runs; auth.conf names each public key with its own inbox", () => {
    const first = writeFleetCredentials(join(dir, "creds"), fleet.config, TOOLS);
    assert.equal(seedFileName("agent:ship"), "agent-ship.nk");
    assert.equal(seedFileName("bridge:telegram"), "bridge-telegram.nk");
    for (const user of first.users) {
      const file = first.seedFile(user.identity);
      assert.equal(statSync(file).mode & 0o777, 0o600, file);
      assert.match(readFileSync(file, "utf8"), /^SU[A-Z2-7]+\n$/);
      assert.ok(user.permissions.subscribe.allow.includes(`_INBOX.${user.publicKey}.>`) || user.identity === "operator");
    }
    const auth = readFileSync(first.authFile, "utf8");
    for (const user of first.users) assert.ok(auth.includes(user.publicKey), user.identity);
    assert.equal(statSync(join(dir, "creds")).mode & 0o777, 0o700);

    const again = writeFleetCredentials(join(dir, "creds"), fleet.config, TOOLS);
    assert.deepEqual(again.users.map((u) => u.publicKey), first.users.map((u) => u.publicKey), "a restart keeps every identity");
  });
});

describe("the email bridge's permissions", () => {
  const EMAIL = `bridges:
  email: { host: 127.0.0.1, port: 2525, security: none, from: "fleet@ops.localhost" }
`;
  let fleet: ReturnType<typeof governedFleet>;
  let perms: Map<Identity, Permissions>;
  const of = (identity: Identity): Permissions => {
    const p = perms.get(identity);
    assert.ok(p, `permissions for ${identity}`);
    return p;
  };
  before(() => {
    fleet = governedFleet({ extraYaml: EMAIL });
    perms = fleetPermissions(fleet.config, TOOLS);
  });
  after(() => fleet.cleanup());

  it("exists only when bridges.email is configured, and is an OUTBOX channel, not an approval channel", () => {
    assert.ok(fleetIdentities(fleet.config).includes("bridge:email"));
    const without = governedFleet();
    try {
      assert.ok(!fleetIdentities(without.config).includes("bridge:email"));
    } finally {
      without.cleanup();
    }
    const email = of("bridge:email");
    assert.equal(mayPublish(email, "$JS.API.CONSUMER.MSG.NEXT.FLEET_OUTBOX.outbox-email"), true);
    assert.equal(mayPublish(email, "$JS.API.CONSUMER.CREATE.FLEET_OUTBOX.outbox-email.fleet.outbox.email"), true);
    assert.equal(mayPublish(email, "$JS.ACK.FLEET_OUTBOX.outbox-email.1.2.3.4.5.6"), true);
    assert.equal(mayPublish(email, "$JS.API.CONSUMER.MSG.NEXT.FLEET_OUTBOX.outbox-telegram"), false, "another channel's messages");
    assert.equal(mayPublish(email, "$JS.API.CONSUMER.MSG.NEXT.FLEET_APPROVALS.approvals-email"), false, "no approval requests");
    assert.equal(mayPublish(email, "fleet.approval.decision.email.p-1"), false, "no decisions");
    assert.equal(mayPublish(email, "fleet.dlq.outbox"), true);
  });

  it("writes what it sent under its own channel's keys of KV deliveries, and nobody else writes there", () => {
    const email = of("bridge:email");
    assert.equal(mayPublish(email, "$KV.fleet-deliveries.email.run.0123abcd"), true);
    assert.equal(mayPublish(email, "$JS.API.DIRECT.GET.KV_fleet-deliveries.$KV.fleet-deliveries.email.run.0123abcd"), true);
    assert.equal(mayPublish(email, "$KV.fleet-deliveries.telegram.run.0123abcd"), false);
    assert.equal(mayPublish(email, "$KV.fleet-toolruns.email.run.0123abcd"), false);
    for (const identity of ["agent:atlas", "agent:scout", "tools", "governance", "router", "bridge:console", "webhook"] as const) {
      assert.equal(mayPublish(of(identity), "$KV.fleet-deliveries.email.run.0123abcd"), false, identity);
    }
  });
});
