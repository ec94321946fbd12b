import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino } from "pino";
import type { AgentBehaviour } from "../../actors/index.js";
import { composeBehaviour, reportToStage } from "../../behaviours/index.js";
import { connectNats, decode, FleetNames, Message, textOf } from "../../protocol/index.js";
import { NatsServer } from "../helpers/nats-server.js";
import { waitFor } from "../helpers/wait.js";

/** An agent that reports to Atlas sends a note of each task it completes to Atlas's inbox, over a real nats-server. */
describe("report-to stage", () => {
  let server: NatsServer;
  let nc: NatsConnection;
  const names = new FleetNames("rep");
  const notes: Message[] = [];

  before(async () => {
    server = await NatsServer.start();
    nc = await connectNats({ servers: server.url, name: "report-to-test" });
    nc.subscribe(names.agentInbox("atlas"), {
      callback: (_err, msg) => {
        const decoded = decode(Message, msg.data);
        if (decoded.ok) notes.push(decoded.value);
      },
    });
    await nc.flush();
  });
  after(async () => {
    await nc?.close();
    await server?.stop();
  });

  const terminal = (ok: boolean): AgentBehaviour => ({
    plan: async () => ({ kind: "nothing" }),
    act: async () => (ok ? { ok: true, artifacts: [{ artifactId: "a", parts: [{ text: "Competitor X cut prices by 20% on its pricing page." }] }] } : { ok: false, reason: "fetch failed" }),
  });
  const ctx = { signal: new AbortController().signal, log: pino({ level: "silent" }) };
  const item = (taskId: string) => ({ taskId, contextId: taskId, message: { messageId: taskId, role: "ROLE_USER" as const, parts: [{ text: "Check competitor pricing" }] } });

  it("a completed task becomes a note from scout on atlas's inbox; a failed one sends nothing", async () => {
    const stage = reportToStage({ self: "scout", to: "atlas", nc, names, codec: "msgpack" });
    await composeBehaviour([stage], terminal(true)).act({ agentId: "scout", trigger: "task", plan: { kind: "work", item: item("t-1"), skillId: "research" } }, ctx);
    await composeBehaviour([stage], terminal(false)).act({ agentId: "scout", trigger: "task", plan: { kind: "work", item: item("t-2"), skillId: "research" } }, ctx);
    await waitFor("the note", () => notes.length > 0);
    await nc.flush();
    assert.equal(notes.length, 1);
    assert.equal(notes[0]?.metadata?.from, "scout");
    assert.equal(notes[0]?.messageId, "note:scout:t-1");
    assert.equal(textOf(notes[0]!), 'scout completed "Check competitor pricing" (task t-1): Competitor X cut prices by 20% on its pricing page.');
  });
});
