import { hostname } from "node:os";
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { headers as natsHeaders, type NatsConnection } from "@nats-io/nats-core";
import pino from "pino";
import { z } from "zod";
import {
  connectNats,
  decodeUnknown,
  discoverServices,
  encode,
  endpoint,
  bodilessEndpoint,
  FleetError,
  FleetService,
  HEADERS,
  requestTyped,
} from "../../protocol/index.js";
import { NatsServer } from "../helpers/nats-server.js";
import { waitFor } from "../helpers/wait.js";

/**
 * The one request/reply skeleton, against a real nats-server: what every fleet service does with a good request, a bad
 * one, a forged reply subject and a one-way message, and the NATS micro discovery answers checked against the
 * micro v1 JSON schemas (nats-io/jsm.go `schemas/micro/v1/*.json`, transcribed below field by field).
 */

const NAME = /^[a-zA-Z0-9_-]+$/;
const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;
const metadata = z.union([z.record(z.string(), z.string()), z.null()]).optional();
const base = { name: z.string().regex(NAME).min(1), id: z.string().min(1), version: z.string().regex(SEMVER).min(5), metadata };
const int64 = z.number().int();
const PingResponse = z.object({ type: z.literal("io.nats.micro.v1.ping_response"), ...base });
const InfoResponse = z.object({
  type: z.literal("io.nats.micro.v1.info_response"),
  ...base,
  description: z.string(),
  endpoints: z.array(z.object({ name: z.string().regex(NAME).min(1), subject: z.string().min(1), metadata })).optional(),
});
const StatsResponse = z.object({
  type: z.literal("io.nats.micro.v1.stats_response"),
  ...base,
  started: z.iso.datetime({ offset: true }),
  endpoints: z.array(
    z.object({
      name: z.string().regex(NAME).min(1),
      subject: z.string().min(1),
      num_requests: int64,
      num_errors: int64,
      last_error: z.string(),
      processing_time: int64,
      average_processing_time: int64,
      data: z.record(z.string(), z.unknown()).optional(),
    }),
  ),
});

const Echo = z.object({ text: z.string().max(100) }).strict();
const Reply = z.object({ echoed: z.string() });
const Who = z.object({ agentId: z.string().optional(), text: z.string() });

describe("the one service skeleton (protocol/service.ts)", () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let client: NatsConnection;
  const deadLetters: { subject: string; data: Uint8Array; code: string }[] = [];
  const effects: string[] = [];
  let service: FleetService;
  let release: (() => void) | undefined;

  before(async () => {
    nats = await NatsServer.start();
    nc = await connectNats({ servers: nats.url, name: "service-test", longLived: false });
    client = await connectNats({ servers: nats.url, name: "service-client", longLived: false });
    service = new FleetService({
      nc,
      name: "test-echo",
      version: "1.2.3",
      description: "echoes",
      metadata: { agent: "scout" },
      queue: "echo",
      subscribe: ["t.echo.*"],
      endpoints: [
        endpoint({ name: "say", subject: "t.echo.say", request: Echo, handle: async ({ text }) => ({ echoed: text }) }),
        endpoint({
          name: "note",
          subject: "t.echo.note",
          request: Echo,
          oneWay: "run",
          handle: async ({ text }) => {
            effects.push(text);
            return {};
          },
        }),
        endpoint({
          name: "slow",
          subject: "t.echo.slow",
          request: Echo,
          handle: async ({ text }) => {
            await new Promise<void>((resolve) => (release = resolve));
            return { echoed: text };
          },
        }),
        endpoint({
          name: "fail",
          subject: "t.echo.fail",
          request: Echo,
          handle: async () => {
            throw new FleetError("TASK_NOT_FOUND", "no such thing");
          },
        }),
        bodilessEndpoint({ name: "ping", subject: "t.echo.ping", handle: async () => ({ pong: true }) }),
      ],
      codec: "msgpack",
      maxPayloadBytes: 200,
      deadLetter: async (subject, data, error) => {
        deadLetters.push({ subject, data, code: error.code });
      },
      log: pino({ level: "silent" }),
    });
    service.start();
    await nc.flush();
  });
  after(async () => {
    await service.stop();
    await client.close();
    await nc.close();
    await nats.stop();
  });

  const ask = (subject: string, body: unknown) => requestTyped(client, subject, body, Reply, { codec: "msgpack", timeoutMs: 3_000 });
  async function refusal(subject: string, data: Uint8Array, headers?: ReturnType<typeof natsHeaders>): Promise<string> {
    const reply = await client.request(subject, data, { timeout: 3_000, ...(headers ? { headers } : {}) });
    const decoded = decodeUnknown(reply.data);
    assert.ok(decoded.ok);
    const parsed = z.object({ error: z.object({ code: z.string() }) }).parse(decoded.value);
    return parsed.error.code;
  }
  const deadLetterOf = (code: string, subject: string) =>
    waitFor(`a ${code} dead letter from ${subject}`, () => deadLetters.find((d) => d.code === code && d.subject === subject), 5_000);

  it("a valid request gets its result", async () => {
    assert.deepEqual(await ask("t.echo.say", { text: "hello" }), { echoed: "hello" });
  });

  it("a handler's typed error is answered as that error, and is not a dead letter (it is an answer)", async () => {
    await assert.rejects(ask("t.echo.fail", { text: "x" }), (err: unknown) => err instanceof FleetError && err.code === "TASK_NOT_FOUND");
    assert.equal(deadLetters.filter((d) => d.subject === "t.echo.fail").length, 0);
  });

  it("a body that fails the schema: MESSAGE_INVALID, dead-lettered with its original bytes", async () => {
    const data = encode({ text: 42 });
    assert.equal(await refusal("t.echo.say", data), "MESSAGE_INVALID");
    const dead = await deadLetterOf("MESSAGE_INVALID", "t.echo.say");
    assert.deepEqual([...dead.data], [...data]);
  });

  it("a body over maxPayloadBytes: MESSAGE_TOO_LARGE, dead-lettered", async () => {
    assert.equal(await refusal("t.echo.say", encode({ text: "x".repeat(300) })), "MESSAGE_TOO_LARGE");
    await deadLetterOf("MESSAGE_TOO_LARGE", "t.echo.say");
  });

  it("a Content-Type we do not speak: CONTENT_TYPE_NOT_SUPPORTED, dead-lettered (nothing decoded after a failed negotiation)", async () => {
    const h = natsHeaders();
    h.set(HEADERS.contentType, "text/plain");
    assert.equal(await refusal("t.echo.note", encode({ text: "never run" }), h), "CONTENT_TYPE_NOT_SUPPORTED");
    await deadLetterOf("CONTENT_TYPE_NOT_SUPPORTED", "t.echo.note");
    assert.ok(!effects.includes("never run"));
  });

  it("an operation nobody serves under the subscribed wildcard: UNSUPPORTED_OPERATION, dead-lettered", async () => {
    assert.equal(await refusal("t.echo.frobnicate", encode({ text: "?" })), "UNSUPPORTED_OPERATION");
    await deadLetterOf("UNSUPPORTED_OPERATION", "t.echo.frobnicate");
  });

  it("a bodiless endpoint answers an empty request and refuses a body", async () => {
    const reply = await client.request("t.echo.ping", new Uint8Array(), { timeout: 3_000 });
    const decoded = decodeUnknown(reply.data);
    assert.ok(decoded.ok);
    assert.deepEqual(decoded.value, { result: { pong: true } });
    assert.equal(await refusal("t.echo.ping", encode({ sneaky: true })), "MESSAGE_INVALID");
  });

  it("a question without a reply subject is dead-lettered; a one-way message with an effect runs", async () => {
    client.publish("t.echo.say", encode({ text: "nobody listens" }));
    client.publish("t.echo.note", encode({ text: "one-way effect" }));
    await deadLetterOf("MESSAGE_INVALID", "t.echo.say");
    await waitFor("the one-way effect", () => effects.includes("one-way effect"), 5_000);
  });

  it("a forged reply subject (not an inbox) lands nowhere: refused, counted and dead-lettered, the handler never runs", async () => {
    const forged = "fleet.audit.scout";
    const seen: string[] = [];
    const spy = client.subscribe(forged, { callback: (_err, msg) => void seen.push(msg.subject) });
    await client.flush();
    const before = service.forgedReplies;
    client.publish("t.echo.note", encode({ text: "forged effect" }), { reply: forged });
    const dead = await deadLetterOf("PERMISSION_DENIED", "t.echo.note");
    assert.ok(dead);
    // the service's connection has sent everything it was going to: a reply would be ahead of this round trip
    await nc.flush();
    await client.flush();
    spy.unsubscribe();
    assert.deepEqual(seen, []);
    assert.equal(service.forgedReplies, before + 1);
    assert.ok(!effects.includes("forged effect"));
  });

  it("the caller is the subject's `*` token; a payload naming another is PERMISSION_DENIED, dead-lettered, the handler never runs", async () => {
    const who = new FleetService({
      nc, name: "test-who", version: "1.0.0", description: "says who asks", queue: "who", codec: "msgpack", maxPayloadBytes: 200, log: pino({ level: "silent" }),
      deadLetter: async (subject, data, error) => {
        deadLetters.push({ subject, data, code: error.code });
      },
      endpoints: [
        endpoint({
          name: "who",
          subject: "t.who.*",
          request: Who,
          claims: (r) => r.agentId,
          delegates: ["_operator"],
          handle: async ({ agentId, text }, call) => {
            effects.push(`who:${text}`);
            return { echoed: `${call.caller}:${agentId ?? ""}` };
          },
        }),
      ],
    });
    who.start();
    await nc.flush();
    after(() => who.stop());
    assert.deepEqual(await ask("t.who.scout", { text: "a" }), { echoed: "scout:" });
    assert.deepEqual(await ask("t.who.scout", { agentId: "scout", text: "b" }), { echoed: "scout:scout" }, "repeating the caller is fine");
    const data = encode({ agentId: "ship", text: "impostor" });
    assert.equal(await refusal("t.who.scout", data), "PERMISSION_DENIED");
    const dead = await deadLetterOf("PERMISSION_DENIED", "t.who.scout");
    assert.deepEqual([...dead.data], [...data]);
    assert.ok(!effects.includes("who:impostor"), "the handler never ran");
    assert.deepEqual(await ask("t.who._operator", { agentId: "ship", text: "c" }), { echoed: "_operator:ship" }, "a delegate may name whom it acts for");
  });

  it("an endpoint's subject holds at most one caller token", () => {
    const make = (subject: string) =>
      new FleetService({
        nc, name: "bad", version: "1.0.0", description: "x", queue: "x", codec: "msgpack", maxPayloadBytes: 10, log: pino({ level: "silent" }), deadLetter: async () => undefined,
        endpoints: [endpoint({ name: "x", subject, request: Echo, handle: async () => ({}) })],
      });
    assert.throws(() => make("t.*.x.*"), TypeError);
    assert.throws(() => make("t.x.>"), TypeError);
    assert.ok(make("t.x.*"));
  });

  it("stop() waits for the requests under way: their callers get their answer", async () => {
    const slow = ask("t.echo.slow", { text: "late" });
    await waitFor("the slow request to be in the handler", () => release !== undefined && service.busy === 1, 5_000);
    const stopping = service.stop();
    release?.();
    assert.deepEqual(await slow, { echoed: "late" });
    await stopping;
    service.start();
    // the re-made subscriptions are on the server before the next test asks
    await nc.flush();
  });

  describe("NATS micro discovery", () => {
    async function all(subject: string): Promise<unknown[]> {
      const out: unknown[] = [];
      for await (const m of await client.requestMany(subject, undefined, { strategy: "timer", maxWait: 300 })) out.push(JSON.parse(m.string()));
      return out;
    }

    it("$SRV.PING, $SRV.INFO and $SRV.STATS answer in the micro v1 JSON format", async () => {
      const [ping] = await all("$SRV.PING");
      const p = PingResponse.parse(ping);
      assert.equal(p.name, "test-echo");
      assert.equal(p.version, "1.2.3");
      assert.deepEqual(p.metadata, { host: hostname(), pid: String(process.pid), agent: "scout" }, "the configured metadata, with where the instance runs");

      const [info] = await all(`$SRV.INFO.test-echo`);
      const i = InfoResponse.parse(info);
      assert.equal(i.description, "echoes");
      assert.deepEqual(i.endpoints?.map((e) => e.subject).sort(), ["t.echo.fail", "t.echo.note", "t.echo.ping", "t.echo.say", "t.echo.slow"]);

      const [stats] = await all(`$SRV.STATS.test-echo.${p.id}`);
      const s = StatsResponse.parse(stats);
      const say = s.endpoints.find((e) => e.name === "say");
      assert.ok(say);
      assert.ok(say.num_requests >= 4, "the say requests above were counted");
      assert.ok(say.num_errors >= 3, "the refused ones as errors");
      assert.match(say.last_error, /MESSAGE_INVALID|MESSAGE_TOO_LARGE/);
      assert.ok(say.average_processing_time > 0 && say.processing_time >= say.average_processing_time);
    });

    it("a name or id that is not ours gets no answer from us; discoverServices() collects and validates answers", async () => {
      assert.deepEqual(await all("$SRV.PING.someone-else"), []);
      assert.deepEqual(await all(`$SRV.PING.test-echo.not-this-id`), []);
      const found = await discoverServices(client, 300);
      assert.deepEqual(found.map((s) => s.name), ["test-echo"]);
    });
  });
});
