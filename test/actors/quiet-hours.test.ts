import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { initialTransition, transition } from "xstate";
import { FleetError } from "../../protocol/index.js";
import { deferUntil, isQuiet, localParts, nextBoundary, nextDailyAt, zonedTimeToEpoch, type DailyWindow } from "../../config/index.js";
import { quietHoursMachine, type QuietHoursEmitted, type QuietHoursSnapshot } from "../../actors/quiet-hours.js";

const at = (iso: string): number => Date.parse(iso);
const HOUR = 3_600_000;
const MIN = 60_000;
const BERLIN: DailyWindow = { start: "23:30", end: "06:30", timeZone: "Europe/Berlin" };
const NEW_YORK: DailyWindow = { start: "23:30", end: "06:30", timeZone: "America/New_York" };

function isConfigInvalid(err: unknown): boolean {
  return err instanceof FleetError && err.code === "CONFIG_INVALID";
}

describe("quiet hours: ordinary days", () => {
  it("is quiet from 23:30 (inclusive) to 06:30 (exclusive) Berlin time", () => {
    // 2026-01-15 is winter time: Berlin = UTC+1
    assert.equal(isQuiet(BERLIN, at("2026-01-15T22:29:59Z")), false);
    assert.equal(isQuiet(BERLIN, at("2026-01-15T22:30:00Z")), true);
    assert.equal(isQuiet(BERLIN, at("2026-01-15T23:59:00Z")), true);
    assert.equal(isQuiet(BERLIN, at("2026-01-16T05:29:59Z")), true);
    assert.equal(isQuiet(BERLIN, at("2026-01-16T05:30:00Z")), false);
    assert.equal(isQuiet(BERLIN, at("2026-01-16T12:00:00Z")), false);
  });

  it("a window that does not cross midnight", () => {
    const lunch: DailyWindow = { start: "12:00", end: "13:30", timeZone: "Europe/Berlin" };
    assert.equal(isQuiet(lunch, at("2026-07-01T09:59:00Z")), false);
    assert.equal(isQuiet(lunch, at("2026-07-01T10:00:00Z")), true);
    assert.equal(isQuiet(lunch, at("2026-07-01T11:29:00Z")), true);
    assert.equal(isQuiet(lunch, at("2026-07-01T11:30:00Z")), false);
    assert.equal(isQuiet(lunch, at("2026-07-01T23:00:00Z")), false);
    assert.deepEqual(nextBoundary(lunch, at("2026-07-01T12:00:00Z")), { at: at("2026-07-02T10:00:00Z"), quiet: true });
  });

  it("start === end is never quiet and has no boundary", () => {
    const never: DailyWindow = { start: "08:00", end: "08:00", timeZone: "Europe/Berlin" };
    for (const iso of ["2026-01-15T07:00:00Z", "2026-01-15T07:00:01Z", "2026-03-29T01:00:00Z"]) {
      assert.equal(isQuiet(never, at(iso)), false);
      assert.equal(deferUntil(never, at(iso)), at(iso));
    }
    assert.deepEqual(nextBoundary(never, at("2026-01-15T07:00:00Z")), { at: Number.POSITIVE_INFINITY, quiet: false });
  });

  it("nextBoundary names the next entry and exit", () => {
    assert.deepEqual(nextBoundary(BERLIN, at("2026-01-15T12:00:00Z")), { at: at("2026-01-15T22:30:00Z"), quiet: true });
    assert.deepEqual(nextBoundary(BERLIN, at("2026-01-15T22:30:00Z")), { at: at("2026-01-16T05:30:00Z"), quiet: false });
    assert.deepEqual(nextBoundary(BERLIN, at("2026-01-16T05:30:00Z")), { at: at("2026-01-16T22:30:00Z"), quiet: true });
  });

  it("localParts reads the zone's calendar and clock", () => {
    assert.deepEqual(localParts(at("2026-01-15T23:45:00Z"), "Europe/Berlin"), { year: 2026, month: 1, day: 16, hour: 0, minute: 45, weekday: 5 });
    assert.deepEqual(localParts(at("2026-01-01T03:00:00Z"), "America/New_York"), { year: 2025, month: 12, day: 31, hour: 22, minute: 0, weekday: 3 });
  });
});

describe("quiet hours: DST in Europe/Berlin", () => {
  it("on spring-forward day (2026-03-29) the night lasts 6 h of real time", () => {
    const begins = nextBoundary(BERLIN, at("2026-03-28T12:00:00Z"));
    assert.deepEqual(begins, { at: at("2026-03-28T22:30:00Z"), quiet: true }); // 23:30 CET
    const ends = nextBoundary(BERLIN, begins.at);
    assert.deepEqual(ends, { at: at("2026-03-29T04:30:00Z"), quiet: false }); // 06:30 CEST
    assert.equal(ends.at - begins.at, 6 * HOUR);
    assert.equal(isQuiet(BERLIN, at("2026-03-29T01:00:00Z")), true); // 03:00 CEST, just after the jump
    assert.equal(nextBoundary(BERLIN, ends.at).at, at("2026-03-29T21:30:00Z")); // 23:30 CEST
  });

  it("on fall-back day (2026-10-25) the night lasts 8 h of real time", () => {
    const begins = nextBoundary(BERLIN, at("2026-10-24T12:00:00Z"));
    assert.deepEqual(begins, { at: at("2026-10-24T21:30:00Z"), quiet: true }); // 23:30 CEST
    const ends = nextBoundary(BERLIN, begins.at);
    assert.deepEqual(ends, { at: at("2026-10-25T05:30:00Z"), quiet: false }); // 06:30 CET
    assert.equal(ends.at - begins.at, 8 * HOUR);
    for (const iso of ["2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z"]) assert.equal(isQuiet(BERLIN, at(iso)), true); // 02:30 twice
    assert.equal(nextBoundary(BERLIN, ends.at).at, at("2026-10-25T22:30:00Z")); // 23:30 CET
  });

  it("a window starting at 02:30 on spring-forward day starts at 03:00 local", () => {
    const early: DailyWindow = { start: "02:30", end: "05:00", timeZone: "Europe/Berlin" };
    assert.equal(zonedTimeToEpoch({ year: 2026, month: 3, day: 29 }, "02:30", "Europe/Berlin"), at("2026-03-29T01:00:00Z"));
    assert.deepEqual(nextBoundary(early, at("2026-03-28T12:00:00Z")), { at: at("2026-03-29T01:00:00Z"), quiet: true });
    assert.equal(isQuiet(early, at("2026-03-29T00:59:59Z")), false); // 01:59:59 CET
    assert.equal(isQuiet(early, at("2026-03-29T01:00:00Z")), true); // 03:00 CEST
    assert.deepEqual(localParts(at("2026-03-29T01:00:00Z"), "Europe/Berlin").hour, 3);
  });

  it("an ambiguous time resolves to its first occurrence, and a boundary happens once", () => {
    assert.equal(zonedTimeToEpoch({ year: 2026, month: 10, day: 25 }, "02:30", "Europe/Berlin"), at("2026-10-25T00:30:00Z"));
    const late: DailyWindow = { start: "22:00", end: "02:30", timeZone: "Europe/Berlin" };
    assert.deepEqual(nextBoundary(late, at("2026-10-24T21:00:00Z")), { at: at("2026-10-25T00:30:00Z"), quiet: false });
    // the second 02:15 (CET) is after the window ended at the first 02:30: it does not re-open
    assert.equal(isQuiet(late, at("2026-10-25T01:15:00Z")), false);
  });

  it("nextDailyAt: the 02:00 backup on fall-back day runs at the first 02:00, once", () => {
    assert.equal(nextDailyAt("02:00", "Europe/Berlin", at("2026-10-24T12:00:00Z")), at("2026-10-25T00:00:00Z"));
    // in the repeated hour the next run is tomorrow's, not the second 02:00 today
    assert.equal(nextDailyAt("02:00", "Europe/Berlin", at("2026-10-25T00:00:00Z")), at("2026-10-26T01:00:00Z"));
    assert.equal(nextDailyAt("02:00", "Europe/Berlin", at("2026-10-25T00:30:00Z")), at("2026-10-26T01:00:00Z"));
    // on spring-forward day 02:00 does not exist: it runs at 03:00 CEST
    assert.equal(nextDailyAt("02:00", "Europe/Berlin", at("2026-03-28T12:00:00Z")), at("2026-03-29T01:00:00Z"));
    assert.equal(nextDailyAt("23:00", "Europe/Berlin", at("2026-03-29T01:00:00Z")), at("2026-03-29T21:00:00Z"));
  });

  it("nextDailyAt is strictly after now", () => {
    assert.equal(nextDailyAt("23:00", "Europe/Berlin", at("2026-01-15T22:00:00Z")), at("2026-01-16T22:00:00Z"));
    assert.equal(nextDailyAt("23:00", "Europe/Berlin", at("2026-01-15T21:59:59Z")), at("2026-01-15T22:00:00Z"));
  });
});

describe("quiet hours: DST in America/New_York", () => {
  it("on spring-forward day (2026-03-08) the night lasts 6 h", () => {
    const begins = nextBoundary(NEW_YORK, at("2026-03-07T17:00:00Z"));
    assert.deepEqual(begins, { at: at("2026-03-08T04:30:00Z"), quiet: true }); // 23:30 EST
    const ends = nextBoundary(NEW_YORK, begins.at);
    assert.deepEqual(ends, { at: at("2026-03-08T10:30:00Z"), quiet: false }); // 06:30 EDT
    assert.equal(ends.at - begins.at, 6 * HOUR);
    assert.equal(nextDailyAt("02:30", "America/New_York", at("2026-03-07T17:00:00Z")), at("2026-03-08T07:00:00Z")); // 03:00 EDT
  });

  it("on fall-back day (2026-11-01) the night lasts 8 h", () => {
    const begins = nextBoundary(NEW_YORK, at("2026-10-31T17:00:00Z"));
    assert.deepEqual(begins, { at: at("2026-11-01T03:30:00Z"), quiet: true }); // 23:30 EDT
    const ends = nextBoundary(NEW_YORK, begins.at);
    assert.deepEqual(ends, { at: at("2026-11-01T11:30:00Z"), quiet: false }); // 06:30 EST
    assert.equal(ends.at - begins.at, 8 * HOUR);
    assert.equal(nextDailyAt("01:30", "America/New_York", at("2026-10-31T17:00:00Z")), at("2026-11-01T05:30:00Z")); // first, EDT
  });
});

describe("deferUntil", () => {
  it("inside the window defers to its end; outside delivers now", () => {
    const inside = at("2026-01-16T01:00:00Z");
    assert.equal(deferUntil(BERLIN, inside), at("2026-01-16T05:30:00Z"));
    const outside = at("2026-01-16T05:30:00Z");
    assert.equal(deferUntil(BERLIN, outside), outside);
    assert.equal(deferUntil(BERLIN, at("2026-03-28T23:00:00Z")), at("2026-03-29T04:30:00Z"));
  });
});

describe("validation", () => {
  it("bad HH:MM or an unknown time zone throws CONFIG_INVALID", () => {
    const now = at("2026-01-15T12:00:00Z");
    for (const bad of ["24:00", "7:30", "07:60", "0730", "", "07:30:00"]) {
      assert.throws(() => isQuiet({ ...BERLIN, start: bad }, now), isConfigInvalid, bad);
      assert.throws(() => nextDailyAt(bad, "Europe/Berlin", now), isConfigInvalid, bad);
    }
    assert.throws(() => isQuiet({ ...BERLIN, timeZone: "Mars/Olympus_Mons" }, now), isConfigInvalid);
    assert.throws(() => nextBoundary({ ...BERLIN, end: "6:30" }, now), isConfigInvalid);
    assert.throws(() => deferUntil({ ...BERLIN, timeZone: "" }, now), isConfigInvalid);
    assert.throws(() => zonedTimeToEpoch({ year: 2026, month: 1, day: 1 }, "12:00", "Nowhere/City"), isConfigInvalid);
    // XState turns a throw while building context into an error snapshot rather than rethrowing
    const [failed] = initialTransition(quietHoursMachine, { window: { ...BERLIN, start: "25:00" }, now });
    assert.equal(failed.status, "error");
    assert.ok(isConfigInvalid(failed.error));
  });
});

describe("quietHours chart", () => {
  type Action = { type: string; params?: unknown };
  const emitted = (actions: ReadonlyArray<Action>): QuietHoursEmitted[] =>
    actions.filter((a) => a.type === "xstate.emit").map((a) => (a.params as { event: QuietHoursEmitted }).event);
  const tick = (snapshot: QuietHoursSnapshot, iso: string) => transition(quietHoursMachine, snapshot, { type: "TICK", now: at(iso) });

  it("starts in the state the input's now says, with the next boundary recorded", () => {
    const [day] = initialTransition(quietHoursMachine, { window: BERLIN, now: at("2026-01-15T12:00:00Z") });
    assert.equal(day.value, "active");
    assert.equal(day.context.nextBoundaryAt, at("2026-01-15T22:30:00Z"));
    const [night] = initialTransition(quietHoursMachine, { window: BERLIN, now: at("2026-01-16T01:00:00Z") });
    assert.equal(night.value, "quiet");
    assert.equal(night.context.nextBoundaryAt, at("2026-01-16T05:30:00Z"));
  });

  it("moves active → quiet → active on TICKs across the spring-forward night", () => {
    const [start] = initialTransition(quietHoursMachine, { window: BERLIN, now: at("2026-03-28T12:00:00Z") });
    const [before, none] = tick(start, "2026-03-28T22:29:00Z");
    assert.deepEqual([before.value, before.context.nextBoundaryAt, emitted(none)], ["active", at("2026-03-28T22:30:00Z"), []]);

    const [quiet, began] = tick(before, "2026-03-28T22:30:00Z");
    assert.equal(quiet.value, "quiet");
    assert.equal(quiet.context.nextBoundaryAt, at("2026-03-29T04:30:00Z"));
    assert.deepEqual(emitted(began), [{ type: "quietHours.began", at: at("2026-03-28T22:30:00Z"), until: at("2026-03-29T04:30:00Z") }]);

    const [still] = tick(quiet, "2026-03-29T04:29:00Z");
    assert.equal(still.value, "quiet");

    const [active, ended] = tick(still, "2026-03-29T04:30:00Z");
    assert.equal(active.value, "active");
    assert.equal(active.context.nextBoundaryAt, at("2026-03-29T21:30:00Z"));
    assert.deepEqual(emitted(ended), [{ type: "quietHours.ended", at: at("2026-03-29T04:30:00Z"), nextQuietAt: at("2026-03-29T21:30:00Z") }]);
  });

  it("a TICK after a long gap refreshes nextBoundaryAt and a JSON round-trip of the snapshot keeps it", () => {
    const [start] = initialTransition(quietHoursMachine, { window: BERLIN, now: at("2026-01-15T12:00:00Z") });
    const [later] = tick(start, "2026-01-17T12:00:00Z");
    assert.equal(later.value, "active");
    assert.equal(later.context.nextBoundaryAt, at("2026-01-17T22:30:00Z"));
    const restored = quietHoursMachine.resolveState(JSON.parse(JSON.stringify(later)) as typeof later);
    const [quiet] = tick(restored, "2026-01-17T22:30:00Z");
    assert.equal(quiet.value, "quiet");
  });

  it("a never-quiet window stays active with no boundary", () => {
    const [snapshot] = initialTransition(quietHoursMachine, { window: { ...BERLIN, end: "23:30" }, now: at("2026-01-15T22:45:00Z") });
    assert.deepEqual([snapshot.value, snapshot.context.nextBoundaryAt], ["active", null]);
    assert.equal(tick(snapshot, "2026-01-16T00:00:00Z")[0].value, "active");
  });

  it("minute precision: boundaries land on whole minutes", () => {
    assert.equal(nextBoundary(BERLIN, at("2026-06-01T12:00:00Z")).at % MIN, 0);
  });
});
