import assert from "node:assert/strict";
import { appendFileSync } from "node:fs";
import { after, describe, it } from "node:test";
import { loadFleetConfig } from "../../config/index.js";
import { FleetError } from "../../protocol/index.js";
import { writeTestFleet } from "../helpers/fleet-processes.js";
import { runFleet } from "../helpers/run-cli.js";

/** The gateway's config section: defaults, and each bad field refused at start with its path. */

function fleetWith(gatewayYaml: string) {
  const fleet = writeTestFleet();
  appendFileSync(fleet.file, gatewayYaml);
  return fleet;
}

function issuesOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof FleetError && err.code === "CONFIG_INVALID", String(err));
    return (err.details ?? []).map((d) => `${d.path}: ${d.message}`);
  }
  assert.fail("expected CONFIG_INVALID");
}

describe("gateway config", () => {
  const cleanups: (() => void)[] = [];
  after(() => cleanups.forEach((c) => c()));
  const make = (yaml: string) => {
    const fleet = fleetWith(yaml);
    cleanups.push(fleet.cleanup);
    return fleet.file;
  };

  it("defaults to loopback with sane limits; peers name their token's variable", () => {
    const config = loadFleetConfig(make("gateway:\n  peers:\n    - { id: acme, tokenEnv: ACME_TOKEN, agents: [scout], skills: [research] }\n"));
    assert.equal(config.gateway?.host, "127.0.0.1");
    assert.equal(config.gateway?.port, 8420);
    assert.equal(config.gateway?.enabled, true);
    assert.deepEqual(config.gateway?.rateLimit, { requests: 120, perSeconds: 60 });
    assert.deepEqual(config.gateway?.peers[0], { id: "acme", tokenEnv: "ACME_TOKEN", agents: ["scout"], skills: ["research"] });
    assert.equal(loadFleetConfig(make("")).gateway, undefined, "no section, no gateway");
  });

  it("refuses a bad gateway section, naming each field", () => {
    const issues = issuesOf(() =>
      loadFleetConfig(
        make(`gateway:
  port: 70000
  hots: 0.0.0.0
  maxBodyBytes: 10
  peers:
    - { id: acme, tokenEnv: acme-token, agents: [scout, nobody], skills: [deploy] }
    - { id: acme, tokenEnv: SHARED, agents: ["*", ship] }
    - { id: beta, tokenEnv: SHARED, agents: [ship], rateLimit: { requests: 0, perSeconds: 1 } }
`),
      ),
    );
    const paths = issues.map((i) => i.slice(0, i.indexOf(":")));
    for (const path of [
      "gateway.port",
      "gateway.hots",
      "gateway.maxBodyBytes",
      "gateway.peers[0].tokenEnv",
      "gateway.peers[0].agents[1]",
      "gateway.peers[0].skills[0]",
      "gateway.peers[1].agents",
      "gateway.peers[1].id",
      "gateway.peers[2].tokenEnv",
      "gateway.peers[2].rateLimit.requests",
    ]) {
      assert.ok(paths.includes(path), `${path} in:\n${issues.join("\n")}`);
    }
    assert.ok(issues.some((i) => /gateway\.hots: unknown key, did you mean "host"/.test(i)), issues.join("\n"));
  });

  it("fleet run gateway refuses to start when a peer's token variable is unset, naming the field", async () => {
    const file = make("gateway:\n  port: 0\n  peers:\n    - { id: acme, tokenEnv: NATSFLEET_TEST_UNSET_GATEWAY_TOKEN, agents: [scout] }\n");
    const out = await runFleet(["run", "gateway", "--config", file, "--nats", "nats://127.0.0.1:1"]);
    assert.notEqual(out.code, 0);
    assert.match(out.stderr + out.stdout, /gateway\.peers\[0\]\.tokenEnv: NATSFLEET_TEST_UNSET_GATEWAY_TOKEN is not set/);
  });
});
