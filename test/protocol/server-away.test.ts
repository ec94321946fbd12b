import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { RequestError, TimeoutError } from "@nats-io/nats-core";
import { pino } from "pino";
import { closeConnectionsWhenServerAway, connectNats, FleetError, isServerAway, isServerAwayError, retryWhileServerAway } from "../../protocol/index.js";
import { NatsServer } from "../helpers/nats-server.js";
import { waitFor } from "../helpers/wait.js";

const log = pino({ level: "silent" });

describe("while the NATS server is away", () => {
  let server: NatsServer;
  before(async () => {
    server = await NatsServer.start();
  });
  after(async () => {
    await server.stop();
  });

  it("an error that only says the server was away is told from one that says something else", () => {
    assert.equal(isServerAwayError(new TimeoutError()), true);
    assert.equal(isServerAwayError(new Error("a KV read failed", { cause: new TimeoutError() })), true);
    assert.equal(isServerAwayError(new FleetError("NATS_UNAVAILABLE", "no server")), true);
    assert.equal(isServerAwayError(new FleetError("CONFIG_INVALID", "bad label file")), false);
    assert.equal(isServerAwayError(new RequestError("connection closed", { cause: new RequestError("connection closed") })), true);
    assert.equal(isServerAwayError(new Error("anything else")), false);
  });

  it("a start step interrupted by the server's absence is tried again; any other failure is thrown", async () => {
    let calls = 0;
    const value = await retryWhileServerAway("step", async () => {
      if (++calls < 3) throw new TimeoutError();
      return "started";
    }, { log, pauseMs: 10 });
    assert.deepEqual([value, calls], ["started", 3]);
    await assert.rejects(retryWhileServerAway("step", async () => Promise.reject(new FleetError("CONFIG_INVALID", "bad")), { log, pauseMs: 10 }), /bad/);
  });

  it("a stop begun while the server is away closes the connections at once, so nothing waits for a reconnect", async () => {
    const nc = await connectNats({ servers: server.url, name: "away-test" });
    await server.kill();
    await waitFor("the connection to notice", () => isServerAway(nc), 10_000);
    // a request that would otherwise wait out its timeout (or a reconnect that may never come)
    const pending = nc.request("nobody.listens", new Uint8Array(), { timeout: 60_000 }).then(() => "answered", () => "failed");
    const started = Date.now();
    const watch = closeConnectionsWhenServerAway(log);
    await watch.closed;
    assert.equal(await pending, "failed");
    assert.ok(nc.isClosed());
    assert.ok(Date.now() - started < 2_000, "at once");
    watch.dispose();
    await server.restart();
  });

  it("with the server there, nothing is closed until it goes away during the stop", async () => {
    const nc = await connectNats({ servers: server.url, name: "away-test-2" });
    const watch = closeConnectionsWhenServerAway(log);
    let closed = false;
    void watch.closed.then(() => (closed = true));
    await nc.flush();
    assert.equal(nc.isClosed(), false);
    await server.kill();
    await waitFor("the connections to be closed once the server went", () => closed && nc.isClosed(), 10_000);
    watch.dispose();
    await server.restart();
  });
});
