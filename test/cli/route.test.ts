import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino } from "pino";
import { loadFleetConfig } from "../../config/index.js";
import { connectNats, ensureFleetResources, FleetNames } from "../../protocol/index.js";
import { startRouter, type RunningRouter } from "../../router/index.js";
import { writeTestFleet } from "../helpers/fleet-processes.js";
import { NatsServer } from "../helpers/nats-server.js";
import { runFleet } from "../helpers/run-cli.js";

/** `fleet route` and `fleet route teach` against a real router on a real nats-server, as an operator runs them. */
describe("fleet route", () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let router: RunningRouter;
  let fleetFile: ReturnType<typeof writeTestFleet>;
  const names = new FleetNames("routecli");

  before(async () => {
    server = await NatsServer.start();
    fleetFile = writeTestFleet({ prefix: names.prefix });
    nc = await connectNats({ servers: server.url, name: "route-cli-test" });
    await ensureFleetResources(nc, names);
    router = await startRouter({ nc, config: loadFleetConfig(fleetFile.file), env: {}, log: pino({ level: "silent" }) });
  });
  after(async () => {
    await router?.stop();
    await nc?.close();
    await server?.stop();
    fleetFile?.cleanup();
  });

  const fleet = (args: string[]) => runFleet([...args, "--nats", server.url, "--config", fleetFile.file]);

  it("shows the decision for a title, then the operator's correction holds for it", async () => {
    const title = "Renew the TLS certificates of the docs site";
    const before_ = await fleet(["route", title, "--json"]);
    assert.equal(before_.code, 0, before_.stderr);
    const decision = JSON.parse(before_.stdout);
    assert.deepEqual([decision.tier, decision.reason], ["workhorse", "local-classifier"]);
    const taught = await fleet(["route", "teach", title, "power"]);
    assert.equal(taught.code, 0, taught.stderr);
    assert.match(taught.stdout, /taught: "Renew the TLS certificates of the docs site" → power; it said workhorse \(confidence 0\.\d\d\)/);
    const after_ = await fleet(["route", title]);
    assert.match(after_.stdout, /^power ← local-classifier \(confidence 1\.00\): local classifier → power, taught \(operator\)/m);
  });

  it("a teach without a tier is a usage error", async () => {
    const r = await fleet(["route", "teach", "Renew the certificates", "gigantic"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /usage: fleet route/);
  });
});
