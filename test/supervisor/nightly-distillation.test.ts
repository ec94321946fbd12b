import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino } from "pino";
import { connectNats, ensureFleetResources, FleetError, FleetNames } from "../../protocol/index.js";
import { dayEnding, NightlyDistillation, type DistilledDay } from "../../supervisor/index.js";
import { NatsServer } from "../helpers/nats-server.js";

const at = (iso: string) => Date.parse(iso);
const done: DistilledDay = { status: "applied", alreadyDone: false, added: ["x"], replaced: [], dropped: [], pruned: 0 };

/**
 * The schedule of the nightly distillation on an injected clock, against a real nats-server (its last run lives in KV
 * `schedules`). The distillation itself is our own stand-in for `distillDay` (test/memory/distiller.test.ts covers it):
 * here only when it is called, for which day, and what happens when it fails.
 */
describe("NightlyDistillation", () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let fleets = 0;
  before(async () => {
    server = await NatsServer.start();
    nc = await connectNats({ servers: server.url, name: "nightly-distillation-test" });
  });
  after(async () => {
    await nc.close();
    await server.stop();
  });

  /** A job for atlas, scout and ship whose distill records its calls and fails as `fails` says. */
  async function job(fails: (agentId: string, call: number) => boolean = () => false, retryDelaysMs = [60_000, 120_000]) {
    const { kv } = await ensureFleetResources(nc, new FleetNames(`nd${++fleets}`));
    const clock = { now: () => at("2026-11-22T12:00:00Z") };
    const calls: string[] = [];
    const options: ConstructorParameters<typeof NightlyDistillation>[0] = {
      kv,
      codec: "msgpack",
      agents: ["atlas", "scout", "ship"],
      at: "23:00",
      timeZone: "Europe/Berlin",
      clock,
      log: pino({ level: "silent" }),
      retryDelaysMs,
      distill: async (agentId, day) => {
        calls.push(`${agentId}@${day}`);
        if (fails(agentId, calls.filter((c) => c.startsWith(`${agentId}@`)).length)) throw new FleetError("PROVIDER_FAILED", "scripted failure");
        return done;
      },
    };
    const setNow = (iso: string) => (clock.now = () => at(iso));
    return { nightly: new NightlyDistillation(options), options, calls, setNow };
  }

  it("runs once at 23:00 Berlin for the day that is ending, and not again that day", async () => {
    const { nightly, calls, setNow } = await job();
    assert.equal(await nightly.tick(), undefined, "first sight: nothing was due yet");
    setNow("2026-11-22T21:59:00Z"); // 22:59 Berlin
    assert.equal(await nightly.tick(), undefined);
    assert.deepEqual(calls, []);
    setNow("2026-11-22T22:00:30Z"); // 23:00:30 Berlin
    const summary = await nightly.tick();
    assert.deepEqual(summary, { day: "2026-11-22", dueAt: at("2026-11-22T22:00:00Z"), applied: ["atlas", "scout", "ship"], empty: [], failed: [] });
    assert.deepEqual(calls, ["atlas@2026-11-22", "scout@2026-11-22", "ship@2026-11-22"]);
    setNow("2026-11-22T22:59:00Z");
    assert.equal(await nightly.tick(), undefined, "once per night");
    setNow("2026-11-23T21:00:00Z");
    assert.equal(await nightly.tick(), undefined);
    assert.equal(calls.length, 3);
  });

  it("a restarted scheduler does not run the night again, and downtime over several nights is made up once", async () => {
    const { nightly, options, calls, setNow } = await job();
    await nightly.tick();
    setNow("2026-11-22T22:01:00Z");
    await nightly.tick();
    assert.equal(calls.length, 3);

    const restarted = new NightlyDistillation(options);
    assert.equal(await restarted.tick(), undefined, "the night's run is recorded in KV");

    setNow("2026-11-25T09:00:00Z"); // down through the nights of the 23rd and the 24th
    const summary = await restarted.tick();
    assert.equal(summary?.day, "2026-11-24", "one catch-up run, for the latest night");
    assert.deepEqual(calls.slice(3), ["atlas@2026-11-24", "scout@2026-11-24", "ship@2026-11-24"]);
    assert.equal(await restarted.tick(), undefined);
  });

  it("retries a failed agent with backoff, only that agent, and reports the night when it succeeds", async () => {
    const { nightly, calls, setNow } = await job((agentId, call) => agentId === "ship" && call <= 2);
    await nightly.tick();
    setNow("2026-11-22T22:00:10Z");
    assert.equal(await nightly.tick(), undefined, "not settled while ship is to be retried");
    assert.deepEqual(calls, ["atlas@2026-11-22", "scout@2026-11-22", "ship@2026-11-22"]);
    setNow("2026-11-22T22:00:40Z");
    await nightly.tick();
    assert.equal(calls.length, 3, "the first retry waits 60 s");
    setNow("2026-11-22T22:01:20Z");
    assert.equal(await nightly.tick(), undefined);
    assert.deepEqual(calls.slice(3), ["ship@2026-11-22"], "only the failed agent is retried");
    setNow("2026-11-22T22:02:30Z");
    await nightly.tick();
    assert.equal(calls.length, 4, "the second retry waits 120 s");
    setNow("2026-11-22T22:03:30Z");
    const summary = await nightly.tick();
    assert.deepEqual(summary?.applied, ["atlas", "scout", "ship"]);
    assert.deepEqual(summary?.failed, []);
    assert.equal(calls.length, 5);
  });

  it("gives an agent up after its retries and reports it as failed; the next night runs as usual", async () => {
    const { nightly, calls, setNow } = await job((agentId, call) => agentId === "scout" && call <= 2, [60_000]);
    await nightly.tick();
    setNow("2026-11-22T22:00:10Z");
    assert.equal(await nightly.tick(), undefined);
    setNow("2026-11-22T22:01:20Z");
    const summary = await nightly.tick();
    assert.deepEqual(summary?.applied, ["atlas", "ship"]);
    assert.deepEqual(summary?.failed.map((f) => f.agentId), ["scout"]);
    assert.match(summary?.failed[0]?.error ?? "", /PROVIDER_FAILED: scripted failure/);
    assert.equal(calls.filter((c) => c.startsWith("scout@")).length, 2, "one attempt and one retry");

    setNow("2026-11-23T22:00:05Z");
    const next = await nightly.tick();
    assert.equal(next?.day, "2026-11-23");
    assert.deepEqual(next?.applied, ["atlas", "scout", "ship"]);
  });

  it("start() ticks at once and on its interval; stop() waits for the run in flight", async () => {
    const { nightly, calls, setNow } = await job();
    await nightly.tick();
    setNow("2026-11-22T22:00:30Z");
    nightly.start();
    await nightly.stop();
    assert.equal(calls.length, 3, "the night ran to the end before stop() returned");
    await nightly[Symbol.asyncDispose]();
  });

  it("names the day that is ending, also when distillAt is just after midnight", () => {
    assert.equal(dayEnding(at("2026-11-22T22:00:00Z"), "Europe/Berlin"), "2026-11-22");
    assert.equal(dayEnding(at("2026-11-22T23:30:00Z"), "Europe/Berlin"), "2026-11-22", "00:30 on the 23rd ends the 22nd");
    assert.equal(dayEnding(at("2026-03-29T21:00:00Z"), "Europe/Berlin"), "2026-03-29", "a 23-hour DST day");
  });
});

