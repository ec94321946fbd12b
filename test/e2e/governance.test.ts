import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { ApprovalDecision, CALLERS, connectNats, decode, FleetNames, OutboxRecord, ProposalRecord } from "../../protocol/index.js";
import type { ProcessSupervisor } from "../../supervisor/index.js";
import { agentSpec, CLI, startProcesses, writeTestFleet } from "../helpers/fleet-processes.js";
import { NatsServer } from "../helpers/nats-server.js";
import { runFleet } from "../helpers/run-cli.js";
import { waitFor } from "../helpers/wait.js";

/**
 * Governance as an operator meets it: agents, a tool host and the governance process as real processes; tasks that name
 * tools sent with `fleet send --tool`; a CONFIRM proposal approved with `fleet approve`; a PROPOSE one rolled back with
 * `fleet rollback`; the audit trail listed and verified with `fleet audit`.
 */

const PREFIX = "gove2e";

describe("governance end to end", () => {
  let nats: NatsServer;
  let fleet: { file: string; cleanup: () => void };
  let processes: ProcessSupervisor;
  let site: Server;
  let siteUrl: string;
  const cli = (...args: string[]) => runFleet([...args, "--config", fleet.file, "--nats", nats.url, "--prefix", PREFIX], { timeoutMs: 30_000 });
  const names = new FleetNames(PREFIX);

  before(async () => {
    nats = await NatsServer.start();
    fleet = writeTestFleet({ prefix: PREFIX });
    writeFileSync(fleet.file, readFileSync(fleet.file, "utf8").replace("tools: [http_check]", "tools: [http_check, channel_post]"));
    // writeTestFleet already sends approval requests to the console
    site = createServer((_req, res) => res.writeHead(204).end());
    await new Promise<void>((r) => site.listen(0, "127.0.0.1", r));
    siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}/health`;
    const common = ["--config", fleet.file, "--nats", nats.url, "--supervised", "--log-level", "warn"];
    processes = startProcesses([
      { id: "tools", command: process.execPath, args: [CLI, "run", "tools", ...common], restart: "permanent" },
      { id: "governance", command: process.execPath, args: [CLI, "run", "governance", ...common], restart: "permanent" },
      agentSpec("ship", fleet.file, nats.url),
      agentSpec("atlas", fleet.file, nats.url),
    ]);
    await processes.start();
    await waitFor("agents and services up", async () => (await cli("status", "--json")).stdout.includes('"ship"'), 30_000);
  });

  after(async () => {
    await processes?.stop();
    site?.close();
    await nats?.stop();
    fleet?.cleanup();
  });

  it("an AUTO tool named in a task runs at once, without a model; a BLOCK one is refused", async () => {
    const ok = await cli("send", "ship", "--tool", "http_check", "--input", JSON.stringify({ url: siteUrl }));
    assert.equal(ok.code, 0, ok.stderr + ok.stdout);
    assert.match(ok.stdout, /http_check: .*"status":204/);
    const blocked = await cli("send", "ship", "--tool", "money_transfer", "--input", JSON.stringify({ amount: 10 }));
    assert.equal(blocked.code, 1);
    assert.match(blocked.stdout, /TASK_STATE_FAILED/);
  });

  it("a CONFIRM tool becomes a proposal; the operator approves it from the CLI; it runs once", async () => {
    const sent = await cli("send", "atlas", "--tool", "email_send", "--input", JSON.stringify({ to: "ops@mail.localhost", subject: "numbers", body: "the quarter's numbers" }), "--reason", "ops asked for them");
    assert.equal(sent.code, 0, sent.stderr + sent.stdout);
    const id = /proposal (\S+) submitted/.exec(sent.stdout)?.[1];
    assert.ok(id, sent.stdout);
    await waitFor("awaiting a human", async () => (await cli("proposals", "--json")).stdout.includes('"awaiting_human"'), 15_000);
    const listed = await cli("proposals");
    assert.match(listed.stdout, new RegExp(`${id}\\s+atlas\\s+email_send\\s+CONFIRM\\s+awaiting_human`));
    const shown = await cli("proposals", id);
    assert.match(shown.stdout, /needs_human\s+human_confirmation/);

    // the same action again while the first waits: the proposal layer of dedup refuses it, and `fleet status` counts it
    const again = await cli("send", "atlas", "--tool", "email_send", "--input", JSON.stringify({ body: "the quarter's numbers", subject: "numbers", to: "ops@mail.localhost" }), "--reason", "asked twice");
    const againId = /proposal (\S+) submitted/.exec(again.stdout)?.[1];
    assert.ok(againId, again.stdout);
    await waitFor("the duplicate refused", async () => JSON.parse((await cli("proposals", againId, "--json")).stdout).state === "rejected", 15_000);
    assert.match((await cli("proposals", againId)).stdout, /rejected by proposal_dedup/);
    const status = await cli("status");
    assert.match(status.stdout, /proposals: 1 open, 1 awaiting a human .*; 1 refused as duplicates in the last 24 h/);

    const approved = await cli("approve", id);
    assert.equal(approved.code, 0, approved.stderr + approved.stdout);
    assert.match(approved.stdout, new RegExp(`${id}: (completed|executing|sentinel_approved)`));
    await waitFor("completed", async () => JSON.parse((await cli("proposals", id, "--json")).stdout).state === "completed", 15_000);

    const nc = await connectNats({ servers: nats.url, name: "e2e-outbox", longLived: false });
    try {
      const jsm = await jetstreamManager(nc);
      const stored = await jsm.streams.getMessage(names.stream("OUTBOX"), { last_by_subj: names.outbox("email") });
      const mail = decode(OutboxRecord, stored!.data);
      assert.ok(mail.ok);
      assert.equal(mail.value.to, "ops@mail.localhost");
      assert.equal(mail.value.subject, "numbers");
      assert.equal(mail.value.text, "the quarter's numbers");
      assert.equal(mail.value.source.proposalId, id);
      const info = await jsm.streams.info(names.stream("OUTBOX"), { subjects_filter: names.outbox("email") });
      assert.equal(info.state.subjects?.[names.outbox("email")], 1, "one email, once");
      // the operator's decision is on its own channel token, and says so
      const decided = await jsm.streams.getMessage(names.stream("APPROVALS"), { last_by_subj: names.approvalDecision(CALLERS.operator, id) });
      const decision = decode(ApprovalDecision, decided!.data);
      assert.ok(decision.ok);
      assert.deepEqual([decision.value.proposalId, decision.value.decision, decision.value.via], [id, "approve", CALLERS.operator]);
    } finally {
      await nc.close();
    }
  });

  it("a PROPOSE tool runs after Sentinel and is rolled back from the CLI inside its window", async () => {
    const sent = await cli("send", "ship", "--tool", "channel_post", "--input", JSON.stringify({ channel: "console", text: "deployed v2" }), "--reason", "announce the deploy");
    assert.equal(sent.code, 0, sent.stderr + sent.stdout);
    const id = /proposal (\S+) submitted/.exec(sent.stdout)?.[1];
    assert.ok(id);
    const done = await waitFor("completed", async () => {
      const out = await cli("proposals", id, "--json");
      const parsed = ProposalRecord.safeParse(JSON.parse(out.stdout || "null"));
      return parsed.success && parsed.data.state === "completed" ? parsed.data : undefined;
    }, 15_000);
    assert.ok(done.rollbackUntil! > Date.now());
    const rolled = await cli("rollback", id, "--reason", "wrong channel");
    assert.equal(rolled.code, 0, rolled.stderr + rolled.stdout);
    assert.match(rolled.stdout, /rolled_back/);
    const again = await cli("rollback", id);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /PROPOSAL_STATE/);
  });

  it("every call is in the audit trail, and the chain verifies", async () => {
    const listed = await cli("audit", "--agent", "ship", "--json");
    assert.equal(listed.code, 0, listed.stderr);
    const records = (JSON.parse(listed.stdout) as { records: { tool: string; ok: boolean; refusedBy?: string }[] }).records;
    // the run and the rollback of the post are two calls; the BLOCK tool never got past the agent (its task failed), whose
    // host reported the refusal to the trail
    assert.deepEqual(records.map((r) => [r.tool, r.ok, r.refusedBy ?? ""]).sort(), [
      ["channel_post", true, ""],
      ["channel_post", true, ""],
      ["http_check", true, ""],
      ["money_transfer", false, "agent-host"],
    ]);
    const verified = await cli("audit", "verify");
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    assert.match(verified.stdout, /intact/);
  });
});
