import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { parse, stringify } from "yaml";
import { describeSchedule, latestDue, nextDue, parseFleetConfig, runsPerDay, scheduleOf, shippedFleetPath, type Schedule } from "../../config/index.js";
import { FleetError } from "../../protocol/index.js";

const at = (iso: string) => Date.parse(iso);
const BERLIN = "Europe/Berlin";

/** The local fleet with its own cron jobs removed, a test pipeline added, and `edit` applied. */
function fleetWith(edit: (config: Record<string, any>) => void): string {
  const config = parse(readFileSync(shippedFleetPath("local"), "utf8")) as Record<string, any>;
  delete config.cron;
  config.pipelines = {
    ...config.pipelines,
    probe: { description: "probe a URL", steps: [{ id: "http", tool: "http_check", input: { url: "{{input.url}}" } }] },
  };
  edit(config);
  return stringify(config);
}

function refusal(yaml: string): { paths: string[]; message: string } {
  try {
    parseFleetConfig(yaml, "fleet.yaml");
  } catch (err) {
    assert.ok(err instanceof FleetError && err.code === "CONFIG_INVALID", String(err));
    return { paths: (err.details ?? []).map((d) => d.path), message: err.message };
  }
  assert.fail("the config was accepted");
}

const agentIndex = (config: Record<string, any>, id: string): number => (config.agents as { id: string }[]).findIndex((a) => a.id === id);

describe("schedules in the fleet config", () => {
  it("refuses an invalid cron expression in a duty, with the duty's path and croner's reason", () => {
    let ship = -1;
    const yaml = fleetWith((config) => {
      ship = agentIndex(config, "ship");
      config.agents[ship].duties = [
        { id: "ok", pipeline: "probe", cron: "*/15 * * * *", input: { url: "http://127.0.0.1/" }, delivery: "none" },
        { id: "bad", pipeline: "probe", cron: "61 * * * *", input: { url: "http://127.0.0.1/" }, delivery: "none" },
        { id: "six", pipeline: "probe", cron: "0 0 9 * * *", input: { url: "http://127.0.0.1/" }, delivery: "none" },
      ];
    });
    const { paths, message } = refusal(yaml);
    assert.deepEqual(paths, [`agents[${ship}].duties[1].cron`, `agents[${ship}].duties[2].cron`]);
    assert.match(message, new RegExp(`agents\\[${ship}\\]\\.duties\\[1\\]\\.cron: not a 5-field cron expression .*Invalid value for minute: 61`));
    assert.match(message, /requires exactly 5 parts/);
  });

  it("accepts cron jobs on a daily time, an interval or a cron expression, running a message, a tool or a pipeline", () => {
    const config = parseFleetConfig(
      fleetWith((c) => {
        c.cron = [
          { id: "old-form", agent: "atlas", at: "08:00", days: ["mon"], message: "status report", delivery: "none" },
          { id: "disk", agent: "ship", every: "15m", tool: "disk_usage", input: { path: "/" }, delivery: "none" },
          { id: "probe", agent: "ship", cron: "0 9 * * 1-5", pipeline: "probe", input: { url: "http://127.0.0.1/" }, tier: "triage", delivery: { channel: "console", to: "operator" } },
        ];
      }),
      "fleet.yaml",
    );
    assert.deepEqual(
      config.cron.map((job) => describeSchedule(scheduleOf(job))),
      ["at 08:00 mon", "every 15m", "cron 0 9 * * 1-5"],
    );
    assert.equal(config.cron[1]!.every, 15 * 60_000);
  });

  it("refuses a cron job with no or two schedules, two kinds of work, a tool its agent lacks, an unknown pipeline or a stray field", () => {
    const { paths, message } = refusal(
      fleetWith((c) => {
        c.cron = [
          { id: "none", agent: "ship", message: "x", delivery: "none" },
          { id: "two", agent: "ship", at: "08:00", every: "1h", message: "x", delivery: "none" },
          { id: "both", agent: "ship", every: "1h", message: "x", tool: "disk_usage", delivery: "none" },
          { id: "lacks", agent: "scout", every: "1h", tool: "disk_usage", delivery: "none" },
          { id: "ghost", agent: "ship", every: "1h", pipeline: "nope", delivery: "none" },
          { id: "days", agent: "ship", cron: "0 9 * * *", days: ["mon"], message: "x", delivery: "none" },
          { id: "bad-cron", agent: "ship", cron: "every day", message: "x", delivery: "none" },
        ];
      }),
    );
    for (const p of ["cron[0].at", "cron[1].every", "cron[2].tool", "cron[3].tool", "cron[4].pipeline", "cron[5].days", "cron[6].cron"]) {
      assert.ok(paths.includes(p), `${p} in ${paths.join(", ")}`);
    }
    assert.match(message, /cron\[3\]\.tool: agent "scout" may not use "disk_usage"/);
    assert.match(message, /cron\[4\]\.pipeline: no pipeline "nope"/);
  });
});

describe("due times", () => {
  const cron = (expression: string): Schedule => ({ kind: "cron", expression });

  it("a cron expression keeps its local time across both DST changes", () => {
    const nine = cron("0 9 * * *");
    assert.equal(nextDue(nine, BERLIN, at("2026-03-28T08:00:00Z")), at("2026-03-29T07:00:00Z"), "spring forward: 09:00 CEST");
    assert.equal(nextDue(nine, BERLIN, at("2026-10-24T07:00:00Z")), at("2026-10-25T08:00:00Z"), "fall back: 09:00 CET");
    // 02:30 does not exist on the spring-forward night: croner runs it at 03:00, once
    const early = cron("30 2 * * *");
    assert.equal(nextDue(early, BERLIN, at("2026-03-28T12:00:00Z")), at("2026-03-29T01:00:00Z"));
    // 02:30 happens twice on the fall-back night: it runs once, not twice
    const first = nextDue(early, BERLIN, at("2026-10-24T12:00:00Z"));
    assert.equal(first, at("2026-10-25T00:30:00Z"));
    assert.equal(nextDue(early, BERLIN, first), at("2026-10-26T01:30:00Z"));
  });

  it("weekday cron expressions and daily times with days skip the other days", () => {
    // Tuesday 2026-11-24 09:30 Berlin → Monday 2026-11-30 09:00 Berlin
    assert.equal(nextDue(cron("0 9 * * 1"), BERLIN, at("2026-11-24T08:30:00Z")), at("2026-11-30T08:00:00Z"));
    assert.equal(nextDue({ kind: "daily", at: "09:00", days: ["mon"] }, BERLIN, at("2026-11-24T08:30:00Z")), at("2026-11-30T08:00:00Z"));
  });

  it("intervals run on a grid from the epoch, and missed due times coalesce into the latest", () => {
    const half = { kind: "every", ms: 30 * 60_000 } as const;
    assert.equal(nextDue(half, BERLIN, at("2026-11-23T10:07:00Z")), at("2026-11-23T10:30:00Z"));
    assert.equal(nextDue(half, BERLIN, at("2026-11-23T10:30:00Z")), at("2026-11-23T11:00:00Z"), "strictly after");
    assert.equal(latestDue(half, BERLIN, at("2026-11-23T10:07:00Z"), at("2026-11-23T10:29:59Z")), undefined);
    assert.equal(latestDue(half, BERLIN, at("2026-11-23T10:07:00Z"), at("2026-11-23T14:45:00Z")), at("2026-11-23T14:30:00Z"));
    assert.equal(latestDue(cron("0 9 * * *"), BERLIN, at("2026-11-20T12:00:00Z"), at("2026-11-23T12:00:00Z")), at("2026-11-23T08:00:00Z"));
  });

  it("counts runs per day for projections", () => {
    assert.equal(runsPerDay({ kind: "every", ms: 30 * 60_000 }, BERLIN), 48);
    assert.equal(runsPerDay(cron("0 9 * * 1"), BERLIN), 1 / 7);
    assert.equal(runsPerDay(cron("*/10 8-17 * * 1-5"), BERLIN), (60 * 5) / 7);
    assert.equal(runsPerDay({ kind: "daily", at: "07:00", days: ["mon", "thu"] }, BERLIN), 2 / 7);
  });
});
