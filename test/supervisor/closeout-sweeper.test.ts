import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { TaskStore } from "../../actors/index.js";
import { ProposalStore } from "../../governance/index.js";
import type { ProposalRecord, Task } from "../../protocol/index.js";
import { CloseoutSweeper } from "../../supervisor/index.js";
import { FleetClient } from "../helpers/fleet-client.js";
import { NatsServer } from "../helpers/nats-server.js";
import { reportsConfig } from "./report-fixture.js";

const log = pino({ level: "silent" });
const NOW = Date.parse("2026-11-23T07:00:00Z"); // 08:00 in Berlin: the sweep's time

describe("the closeout sweeper", () => {
  let server: NatsServer;
  let client: FleetClient;
  const config = reportsConfig();
  before(async () => {
    server = await NatsServer.start();
    client = await FleetClient.connect(server.url);
  });
  after(async () => {
    await client.close();
    await server.stop();
  });

  const task = (id: string, state: Task["status"]["state"], hoursAgo: number, extra: Partial<Task> = {}): Task => ({
    id, contextId: id, status: { state, timestamp: new Date(NOW - hoursAgo * 3_600_000).toISOString() },
    history: [{ messageId: `m-${id}`, role: "ROLE_USER", parts: [{ text: `work ${id}` }] }], metadata: { agentId: "scout" }, ...extra,
  });

  it("reports stale work with reason codes and evidence, and leaves every task record byte-identical", async () => {
    const store = new TaskStore(client.resources.kv.tasks, client.names, "msgpack");
    await store.create("scout", task("t-stale", "TASK_STATE_WORKING", 30));
    await store.create("scout", task("t-fresh", "TASK_STATE_WORKING", 2));
    await store.create("scout", task("t-done-ish", "TASK_STATE_WORKING", 1, { artifacts: [{ artifactId: "a1", parts: [{ text: "the answer" }] }] }));
    await store.create("scout", task("t-asks", "TASK_STATE_INPUT_REQUIRED", 13));
    await store.create("scout", task("t-finished", "TASK_STATE_COMPLETED", 100));
    // a CONFIRM proposal waiting for its human since 5 h ago, and one Sentinel has not judged yet (not listed)
    const proposals = new ProposalStore(client.resources.kv.proposals, client.js, client.names, "msgpack");
    const asked = NOW - 5 * 3_600_000;
    const proposal = (id: string, state: ProposalRecord["state"]): ProposalRecord => ({
      id, agentId: "closer", tool: "send_invoice", risk: "CONFIRM", input: { to: "acme" }, reason: `invoice acme (${id})`, taskId: "t-sale",
      state, createdAt: asked - 60_000, updatedAt: asked, notified: ["request"], attempts: 0,
      deadlines: { reminderAt: asked + 12 * 3_600_000, escalationAt: asked + 20 * 3_600_000, expiresAt: asked + 24 * 3_600_000 },
      history: [{ from: null, to: "pending", event: "submitted", at: asked - 60_000 }, ...(state === "awaiting_human" ? [{ from: "pending" as const, to: "awaiting_human" as const, event: "needs_human", at: asked }] : [])],
    });
    await proposals.create(proposal("p-waits", "awaiting_human"));
    await proposals.create(proposal("p-new", "pending"));
    const bytes = async () => {
      const out: Record<string, { value: string; revision: number }> = {};
      for (const [bucket, kv] of Object.entries({ tasks: client.resources.kv.tasks, proposals: client.resources.kv.proposals })) {
        for await (const key of await kv.keys()) {
          const e = await kv.get(key);
          out[`${bucket}/${key}`] = { value: Buffer.from(e!.value).toString("base64"), revision: e!.revision };
        }
      }
      return out;
    };
    const before_ = await bytes();
    const clock = { now: () => NOW - 86_400_000 };
    const sweeper = new CloseoutSweeper({ js: client.js, kv: client.resources.kv, names: client.names, codec: "msgpack", sweeper: config.sweeper!, timeZone: config.fleet.timeZone, clock, log });
    assert.equal(await sweeper.tick(), undefined, "first sight: nothing due");
    clock.now = () => NOW + 1_000;
    const text = await sweeper.tick();
    assert.ok(text);
    assert.match(text, /Closeout sweep: 4 item\(s\) \(report only; nothing was changed\)/);
    assert.match(text, /LOOKS_FINISHED scout\/t-done-ish "work t-done-ish": 1 artifact\(s\) but state WORKING/);
    assert.match(text, /STALE_WORKING scout\/t-stale "work t-stale": WORKING for 30 h/);
    assert.match(text, /WAITS_ON_HUMAN scout\/t-asks "work t-asks": INPUT_REQUIRED for 13 h/);
    assert.match(text, /WAITS_ON_HUMAN closer\/proposal:p-waits "invoice acme \(p-waits\)": proposal p-waits \(send_invoice, CONFIRM\) awaiting a human since 2026-11-23T02:00:00.000Z \(5 h\), expires 2026-11-24T02:00:00.000Z; task t-sale/);
    assert.doesNotMatch(text, /t-fresh|t-finished|p-new/);
    assert.deepEqual(await bytes(), before_, "the sweep changed no task or proposal record (values and revisions)");
    assert.equal(await sweeper.tick(), undefined, "once a day");
  });
});
