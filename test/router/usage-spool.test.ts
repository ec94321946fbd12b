import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino } from "pino";
import { connectNats, ensureFleetResources, FleetNames } from "../../protocol/index.js";
import { startRouter, UsageSpool, type RunningRouter } from "../../router/index.js";
import { routerFleetConfig, usageRecords } from "../helpers/router-fleet.js";
import { NatsServer } from "../helpers/nats-server.js";
import { OpenAIServer } from "../helpers/openai-server.js";
import { waitFor } from "../helpers/wait.js";

const log = pino({ level: "silent" });

/**
 * A model call answered while the NATS server is away still gets its USAGE record, once: the router spools it, and
 * publishes it when the server is back under the record's own id, which the stream deduplicates.
 */
describe("USAGE spool", () => {
  let nats: NatsServer;
  let openai: OpenAIServer;
  let nc: NatsConnection;
  let dir: string;
  let running: RunningRouter | undefined;

  before(async () => {
    [nats, openai] = await Promise.all([NatsServer.start(), OpenAIServer.start()]);
    nc = await connectNats({ servers: nats.url, name: "spool-test" });
    dir = mkdtempSync(join(tmpdir(), "usage-spool-"));
  });
  after(async () => {
    await running?.stop().catch(() => undefined);
    await nc?.close();
    await Promise.all([nats?.stop(), openai?.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it("a call answered while the server is down has its USAGE record in the stream after recovery, exactly once", async () => {
    const config = routerFleetConfig({ baseUrl: openai.baseUrl, prefix: "spool1", routing: "  classifier: false\n  localClassifier: { enabled: false }" });
    const names = new FleetNames("spool1");
    const spoolDir = join(dir, "router");
    const lines: string[] = [];
    const captured = pino({ level: "info" }, { write: (line: string) => void lines.push(line) });
    running = await startRouter({ nc, config, env: {}, log: captured, spoolDir });
    // the provider answers after the server is gone: the record is made when nothing can take it
    openai.script("m-capable", { content: "answered during the outage", delayMs: 1_500 });
    const call = running.router.complete({ agentId: "scout", title: "summarise the outage", tier: "capable", callId: "call-outage-1", messages: [{ role: "user", content: "hi" }] });
    await waitFor("the provider to have the request", () => openai.requests.some((r) => r.model === "m-capable"), 10_000);
    await nats.kill();
    const reply = await call;
    assert.equal(reply.text, "answered during the outage");
    // an in-process caller gets its reply first and the record goes out on the next turn (a service's caller gets it
    // after: model-router.ts publishBeforeReply); either way it is written down before the publish is tried
    await waitFor("the record written down", () => readSpool(spoolDir).includes("call-outage-1"), 5_000);
    // the publish itself has failed (not merely waited in the client's buffer for the reconnect): only the spool has it
    await waitFor("the publish to fail", () => lines.some((l) => l.includes("USAGE record spooled")), 30_000);

    await nats.restart();
    const records = await waitFor("the spooled record in USAGE", async () => {
      const mine = (await usageRecords(nc, names)).filter((r) => r.callId === "call-outage-1");
      return mine.length > 0 ? mine : undefined;
    }, 30_000);
    assert.equal(records.length, 1);
    assert.equal(records[0]?.ok, true);
    assert.equal(records[0]?.servedTier, "capable");
    await waitFor("the spool to be empty", () => readSpool(spoolDir).trim() === "", 10_000);
    await running.stop();
    running = undefined;
    assert.equal((await usageRecords(nc, names)).filter((r) => r.callId === "call-outage-1").length, 1, "once");
  });

  it("a record whose publish landed but was never crossed off (a crash) is published again at the next start and kept once", async () => {
    const names = new FleetNames("spool2");
    await ensureFleetResources(nc, names);
    const js = jetstream(nc);
    const spoolDir = join(dir, "crashed");
    const first = new UsageSpool({ dir: spoolDir, js, nc, log, name: "1.jsonl" });
    first.start();
    const subject = names.usage("scout", "nano");
    const data = new TextEncoder().encode(JSON.stringify({ any: "bytes" }));
    // the router published it and died before writing "done": the file still holds it
    await js.publish(subject, data, { msgID: "call-crash.0" });
    writeFileSync(join(spoolDir, "1.jsonl"), JSON.stringify({ op: "add", id: "call-crash.0", subject, data: Buffer.from(data).toString("base64") }) + "\n");
    first.stop();

    // the next router (another pid) takes the dead one's file over and replays it
    const next = new UsageSpool({ dir: spoolDir, js, nc, log, name: "2.jsonl" });
    next.start();
    await waitFor("the replay", () => next.size === 0, 10_000);
    next.stop();
    const info = await (await jetstreamManager(nc)).streams.info(names.stream("USAGE"));
    assert.equal(info.state.messages, 1, "the stream kept one copy");
  });
});

function readSpool(spoolDir: string): string {
  try {
    return readFileSync(join(spoolDir, `${process.pid}.jsonl`), "utf8");
  } catch {
    return "";
  }
}
