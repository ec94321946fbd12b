import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { health, reportHealthTo, startHealthBeat } from "../../cli/health.js";

describe("fleet health", () => {
  const dir = mkdtempSync(join(tmpdir(), "fleet-health-"));
  const file = join(dir, "run", "healthy");
  const env = { FLEET_HEALTH_FILE: file };
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("is unhealthy before the role is up, healthy while it beats, unhealthy once it stops", () => {
    assert.equal(health({}, env), 1, "no file yet");
    reportHealthTo(file);
    const stop = startHealthBeat();
    try {
      assert.ok(existsSync(file));
      assert.equal(health({}, env), 0);
      // a process that stopped beating (hung): the file goes stale
      const old = (Date.now() - 31_000) / 1000;
      utimesSync(file, old, old);
      assert.equal(health({}, env), 1);
      assert.equal(health({ "max-age": "60" }, env), 0, "--max-age widens the window");
    } finally {
      stop();
      reportHealthTo(undefined);
    }
    assert.equal(existsSync(file), false, "a stopped process leaves no file");
    assert.equal(health({}, env), 1);
  });

  it("does nothing without a health file, and says so when asked", () => {
    const stop = startHealthBeat();
    stop();
    assert.equal(health({}, {}), 2);
    assert.equal(health({ "max-age": "soon" }, env), 2);
  });
});
