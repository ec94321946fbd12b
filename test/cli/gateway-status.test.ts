import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { appendFileSync } from "node:fs";
import { hostname } from "node:os";
import { after, before, describe, it } from "node:test";
import type { NatsConnection } from "@nats-io/nats-core";
import { loadFleetConfig } from "../../config/index.js";
import { connectNats, ensureFleetResources, FleetNames } from "../../protocol/index.js";
import { CLI, writeTestFleet } from "../helpers/fleet-processes.js";
import { startGateway, type TestGateway } from "../helpers/gateway.js";
import { NatsServer } from "../helpers/nats-server.js";

/*
 * `fleet status` and the A2A gateway, run as the compiled CLI in a child process the way an operator runs it, against a
 * real nats-server and a real gateway: the gateway answers NATS micro discovery while it listens, and status names its
 * URL, card, peers and tokens from that answer (as it names the routers and tool hosts); once it stops, status says the
 * configured gateway is not running.
 */

function fleetStatus(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = { ...process.env };
  delete env.NATS_URL;
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, "status", ...args], { env, timeout: 20_000, encoding: "utf8" }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : null) : 0, stdout, stderr });
    });
  });
}

describe("fleet status: the A2A gateway", () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let fleet: ReturnType<typeof writeTestFleet>;
  let gateway: TestGateway | undefined;

  before(async () => {
    nats = await NatsServer.start();
    nc = await connectNats({ servers: nats.url, name: "gateway-status-test" });
    fleet = writeTestFleet();
    appendFileSync(fleet.file, "gateway:\n  port: 0\n  peers:\n    - { id: acme, tokenEnv: ACME_TOKEN, agents: [scout] }\n    - { id: globex, tokenEnv: GLOBEX_TOKEN, agents: [\"*\"] }\n");
    await ensureFleetResources(nc, new FleetNames(loadFleetConfig(fleet.file).fleet.prefix));
  });
  after(async () => {
    await gateway?.stop();
    await nc?.close();
    await nats?.stop();
    fleet?.cleanup();
  });

  it("a running gateway: its URL, its card, its peers and tokens, where it runs", async () => {
    gateway = await startGateway({
      natsUrl: nats.url,
      configFile: fleet.file,
      peers: [
        { id: "acme", token: "acme-token-0123456789", agents: ["scout"] },
        { id: "globex", token: "globex-token-0123456789", agents: ["*"] },
      ],
    });
    const r = await fleetStatus(["--nats", nats.url, "--config", fleet.file]);
    assert.equal(r.code, 0, r.stderr);
    const line = r.stdout.split("\n").find((l) => l.startsWith("gateway:"));
    assert.equal(line, `gateway: running at ${gateway.url} (card ${gateway.url}/.well-known/agent-card.json), 2 peer(s) (acme, globex), 2 token(s) on ${hostname()}:${process.pid}`, r.stdout);
  });

  it("a configured gateway that is not running is said to be not running", async () => {
    await gateway?.stop();
    gateway = undefined;
    const r = await fleetStatus(["--nats", nats.url, "--config", fleet.file]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^gateway: not running \(fleet up starts it once every gateway\.peers\[\]\.tokenEnv is set; or: fleet run gateway\)$/m);
    // without a config naming one, nothing is said about a gateway
    const bare = await fleetStatus(["--nats", nats.url]);
    assert.doesNotMatch(bare.stdout, /gateway/);
  });
});
