import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { budgetStateOf, roundUsd, stricter } from "../../router/index.js";
import { fleetDay, nextMidnight } from "../../config/index.js";

const at = (iso: string): number => Date.parse(iso);
const HOUR = 3_600_000;

describe("budgetStateOf and stricter", () => {
  it("79.9 % is normal, exactly 80 % downgraded, exactly 100 % nanoOnly (>=)", () => {
    assert.equal(budgetStateOf(7.99, 10, 0.8), "normal");
    assert.equal(budgetStateOf(8, 10, 0.8), "downgraded");
    assert.equal(budgetStateOf(9.99, 10, 0.8), "downgraded");
    assert.equal(budgetStateOf(10, 10, 0.8), "nanoOnly");
    assert.equal(budgetStateOf(12, 10, 0.8), "nanoOnly");
  });

  it("compares as written, not as floating point happens to round", () => {
    // 3 × 0.8 is 2.4000000000000004 and 0.1 + 0.2 is 0.30000000000000004 in binary floating point
    assert.equal(budgetStateOf(2.4, 3, 0.8), "downgraded");
    assert.equal(budgetStateOf(0.1 + 0.2, 0.3, 0.8), "nanoOnly");
    assert.equal(roundUsd(0.1 + 0.2), 0.3);
  });

  it("a zero cap admits only nano from the first call", () => {
    assert.equal(budgetStateOf(0, 0, 0.8), "nanoOnly");
  });

  it("stricter picks the more restrictive state, in either order", () => {
    assert.equal(stricter("normal", "downgraded"), "downgraded");
    assert.equal(stricter("nanoOnly", "downgraded"), "nanoOnly");
    assert.equal(stricter("downgraded", "nanoOnly"), "nanoOnly");
    assert.equal(stricter("normal", "normal"), "normal");
  });
});

describe("fleet day", () => {
  it("is the local date and changes at local midnight", () => {
    assert.equal(fleetDay(at("2026-06-15T21:59:59Z"), "Europe/Berlin"), "2026-06-15");
    assert.equal(fleetDay(at("2026-06-15T22:00:00Z"), "Europe/Berlin"), "2026-06-16");
    assert.equal(fleetDay(at("2026-06-15T22:00:00Z"), "UTC"), "2026-06-15");
    assert.equal(nextMidnight(at("2026-06-15T12:00:00Z"), "Europe/Berlin"), at("2026-06-15T22:00:00Z"));
    // strictly after: at midnight the next one is a day away
    assert.equal(nextMidnight(at("2026-06-15T22:00:00Z"), "Europe/Berlin"), at("2026-06-16T22:00:00Z"));
  });

  it("DST days in Berlin are 23 and 25 hours long", () => {
    const springStart = at("2026-03-28T23:00:00Z"); // 00:00 CET
    assert.equal(nextMidnight(springStart, "Europe/Berlin") - springStart, 23 * HOUR);
    const autumnStart = at("2026-10-24T22:00:00Z"); // 00:00 CEST
    assert.equal(nextMidnight(autumnStart, "Europe/Berlin") - autumnStart, 25 * HOUR);
    // the repeated hour (02:00–03:00 twice) is still the same day
    assert.equal(fleetDay(at("2026-10-25T00:30:00Z"), "Europe/Berlin"), "2026-10-25");
    assert.equal(fleetDay(at("2026-10-25T01:30:00Z"), "Europe/Berlin"), "2026-10-25");
  });

  it("a midnight skipped by spring-forward happens at the first instant after the gap", () => {
    // Chile moves 2026-09-06 00:00 (-04) to 01:00 (-03): the day begins at 04:00Z
    const midnight = nextMidnight(at("2026-09-05T12:00:00Z"), "America/Santiago");
    assert.equal(midnight, at("2026-09-06T04:00:00Z"));
    assert.equal(fleetDay(midnight - 1, "America/Santiago"), "2026-09-05");
    assert.equal(fleetDay(midnight, "America/Santiago"), "2026-09-06");
  });
});
