import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { GatewayPeers } from "../../bridges/index.js";
import { GatewayConfig } from "../../config/index.js";
import { FleetError } from "../../protocol/index.js";

/** The gateway's peers on a simulated clock: tokens, grants and each peer's token bucket. */

const AGENTS = [{ id: "atlas" }, { id: "scout" }, { id: "ship" }];
const settings = GatewayConfig.parse({
  rateLimit: { requests: 3, perSeconds: 60 },
  peers: [
    { id: "acme", tokenEnv: "ACME_TOKEN", agents: ["*"] },
    { id: "beta", tokenEnv: "BETA_TOKEN", agents: ["scout"], skills: ["research"], rateLimit: { requests: 1, perSeconds: 10 } },
  ],
});
const tokens = { ACME_TOKEN: "acme-0123456789abcdef", BETA_TOKEN: "beta-0123456789abcdef" };

describe("gateway peers", () => {
  it("a bearer token proves its peer; anything else proves nobody", () => {
    const peers = new GatewayPeers(settings, AGENTS, tokens, { now: () => 0 });
    assert.equal(peers.authenticate(`Bearer ${tokens.ACME_TOKEN}`)?.id, "acme");
    assert.equal(peers.authenticate(`bearer ${tokens.BETA_TOKEN}`)?.id, "beta");
    for (const bad of [undefined, "", tokens.ACME_TOKEN, "Bearer", `Bearer ${tokens.ACME_TOKEN}x`, `Basic ${tokens.ACME_TOKEN}`, `Bearer ${tokens.ACME_TOKEN.slice(1)}`]) {
      assert.equal(peers.authenticate(bad), undefined, String(bad));
    }
    assert.deepEqual([...peers.authenticate(`Bearer ${tokens.ACME_TOKEN}`)!.agents], ["atlas", "scout", "ship"], '"*" grants every agent');
    assert.deepEqual([...(peers.authenticate(`Bearer ${tokens.BETA_TOKEN}`)!.skills ?? [])], ["research"]);
  });

  it("each peer's bucket allows a burst, refills evenly and says how long to wait", () => {
    let now = 0;
    const peers = new GatewayPeers(settings, AGENTS, tokens, { now: () => now });
    const acme = peers.authenticate(`Bearer ${tokens.ACME_TOKEN}`)!;
    const beta = peers.authenticate(`Bearer ${tokens.BETA_TOKEN}`)!;
    for (let i = 0; i < 3; i++) peers.take(acme);
    const refused = (() => {
      try {
        peers.take(acme);
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    assert.ok(refused instanceof FleetError && refused.code === "RATE_LIMITED");
    assert.equal(refused.retryAfterMs, 20_000, "3 per minute: one every 20 s");
    // beta has its own bucket, untouched by acme's
    peers.take(beta);
    assert.throws(() => peers.take(beta), (err) => err instanceof FleetError && err.retryAfterMs === 10_000);
    now = 19_999;
    assert.throws(() => peers.take(acme), (err) => err instanceof FleetError && err.code === "RATE_LIMITED");
    now = 20_000;
    peers.take(acme);
    now = 10_000_000;
    for (let i = 0; i < 3; i++) peers.take(acme);
    assert.throws(() => peers.take(acme), "a long pause refills the bucket, never past its size");
  });

  it("refuses a peer whose token variable is unset or short, naming the field", () => {
    assert.throws(() => new GatewayPeers(settings, AGENTS, { ACME_TOKEN: tokens.ACME_TOKEN }, { now: () => 0 }), (err) => err instanceof FleetError && err.code === "CONFIG_INVALID" && /gateway\.peers\[1\]\.tokenEnv: BETA_TOKEN is not set/.test(err.message));
    assert.throws(() => new GatewayPeers(settings, AGENTS, { ...tokens, ACME_TOKEN: "short" }, { now: () => 0 }), (err) => err instanceof FleetError && /gateway\.peers\[0\]\.tokenEnv: ACME_TOKEN holds fewer than 16 characters/.test(err.message));
  });
});
