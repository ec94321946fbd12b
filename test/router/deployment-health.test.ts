import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RoutingConfig } from "../../config/index.js";
import { DeploymentHealth } from "../../router/deployment-health.js";

/** A clock the test moves by hand. */
function simulatedClock(start = 1_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => void (now += ms) };
}

function health(clock: { now: () => number }) {
  return new DeploymentHealth({ failures: 3, baseMs: 60_000, maxMs: 200_000, clock: { now: clock.now } });
}

describe("DeploymentHealth", () => {
  it("cools a deployment down after `failures` consecutive failures, and only that deployment", () => {
    const clock = simulatedClock();
    const h = health(clock);
    h.recordFailure("nano-a");
    h.recordFailure("nano-a");
    assert.equal(h.isAvailable("nano-a"), true);
    assert.equal(h.coolingUntil("nano-a"), undefined);
    h.recordFailure("nano-a");
    assert.equal(h.isAvailable("nano-a"), false);
    assert.equal(h.coolingUntil("nano-a"), clock.now() + 60_000);
    assert.equal(h.isAvailable("nano-b"), true);
    assert.deepEqual(h.snapshot(), { "nano-a": { consecutiveFailures: 3, coolingUntil: clock.now() + 60_000 } });
  });

  it("comes back when the cool-down is over", () => {
    const clock = simulatedClock();
    const h = health(clock);
    for (let i = 0; i < 3; i++) h.recordFailure("d");
    clock.advance(59_999);
    assert.equal(h.isAvailable("d"), false);
    clock.advance(1);
    assert.equal(h.isAvailable("d"), true);
    assert.equal(h.coolingUntil("d"), undefined);
    assert.deepEqual(h.snapshot(), { d: { consecutiveFailures: 3 } });
  });

  it("cools down again at once when the first call after a cool-down fails, doubling up to maxMs", () => {
    const clock = simulatedClock();
    const h = health(clock);
    for (let i = 0; i < 3; i++) h.recordFailure("d");
    const durations: number[] = [];
    for (let round = 0; round < 4; round++) {
      const until = h.coolingUntil("d");
      assert.ok(until !== undefined);
      durations.push(until - clock.now());
      clock.advance(until - clock.now());
      assert.equal(h.isAvailable("d"), true);
      h.recordFailure("d"); // the probe fails
    }
    assert.deepEqual(durations, [60_000, 120_000, 200_000, 200_000]);
  });

  it("does not stretch a cool-down for calls that were already in flight when it began", () => {
    const clock = simulatedClock();
    const h = health(clock);
    for (let i = 0; i < 3; i++) h.recordFailure("d");
    const until = h.coolingUntil("d");
    clock.advance(1_000);
    h.recordFailure("d");
    h.recordFailure("d");
    assert.equal(h.coolingUntil("d"), until);
    assert.equal(h.snapshot().d?.consecutiveFailures, 5);
    // and those stragglers did not count as a failed probe: the next cool-down is still only the doubled one
    clock.advance(60_000);
    h.recordFailure("d");
    assert.equal(h.coolingUntil("d"), clock.now() + 120_000);
  });

  it("forgets everything on a success: counter, cool-down and the doubling", () => {
    const clock = simulatedClock();
    const h = health(clock);
    for (let i = 0; i < 3; i++) h.recordFailure("d");
    clock.advance(60_000);
    h.recordSuccess("d");
    assert.deepEqual(h.snapshot(), {});
    h.recordFailure("d");
    h.recordFailure("d");
    assert.equal(h.isAvailable("d"), true);
    h.recordFailure("d");
    assert.equal(h.coolingUntil("d"), clock.now() + 60_000);
  });

  it("interleaved successes keep a flaky deployment in service", () => {
    const clock = simulatedClock();
    const h = health(clock);
    for (let i = 0; i < 10; i++) {
      h.recordFailure("flaky");
      h.recordFailure("flaky");
      h.recordSuccess("flaky");
    }
    assert.equal(h.isAvailable("flaky"), true);
  });

  it("cools down on the first failure when failures is 1", () => {
    const clock = simulatedClock();
    const h = new DeploymentHealth({ failures: 1, baseMs: 5_000, maxMs: 5_000, clock: { now: clock.now } });
    h.recordFailure("d");
    assert.equal(h.coolingUntil("d"), clock.now() + 5_000);
  });

  it("is built from the routing config's cooldown section", () => {
    const clock = simulatedClock();
    const routing = RoutingConfig.parse({});
    const h = DeploymentHealth.fromConfig(routing.cooldown, { now: clock.now });
    for (let i = 0; i < routing.cooldown.failures; i++) h.recordFailure("d");
    assert.equal(h.coolingUntil("d"), clock.now() + routing.cooldown.seconds * 1000);
  });

  it("refuses nonsense options", () => {
    assert.throws(() => new DeploymentHealth({ failures: 0, baseMs: 1, maxMs: 1 }), RangeError);
    assert.throws(() => new DeploymentHealth({ failures: 1, baseMs: 0, maxMs: 1 }), RangeError);
    assert.throws(() => new DeploymentHealth({ failures: 1, baseMs: 10, maxMs: 5 }), RangeError);
  });
});
