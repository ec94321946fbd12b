import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { readFileSync } from "node:fs";
import { parse, stringify } from "yaml";
import { FleetError } from "../../protocol/index.js";
import { loadFleetConfig, parseFleetConfig, shippedFleetPath } from "../../config/index.js";

describe("cron jobs in the fleet config", () => {
  // the local fleet without its own cron jobs, so each test brings its own
  const { cron: _shipped, ...rest } = parse(readFileSync(shippedFleetPath("local"), "utf8")) as Record<string, unknown>;
  const base = stringify(rest);

  it("refuses a job without an explicit delivery, a job for an unknown agent, a bad time and a duplicate id", () => {
    const yaml = `${base}
cron:
  - id: daily
    agent: scout
    at: "09:00"
    message: research
  - id: daily
    agent: nobody
    at: "25:00"
    message: x
    delivery: none
`;
    let error: unknown;
    try {
      parseFleetConfig(yaml, "fleet.yaml");
    } catch (err) {
      error = err;
    }
    assert.ok(error instanceof FleetError && error.code === "CONFIG_INVALID");
    const paths = (error.details ?? []).map((d) => d.path);
    for (const p of ["cron[0].delivery", "cron[1].agent", "cron[1].at", "cron[1].id"]) assert.ok(paths.includes(p), `${p} in ${paths.join(", ")}`);
    assert.match(error.message, /cron\[0\]\.delivery: required: a channel and recipient/);
  });

  it("the reference fleet's jobs each name their delivery", () => {
    const config = loadFleetConfig(shippedFleetPath("dcode-ops"));
    assert.ok(config.cron.length >= 3);
    for (const job of config.cron) assert.ok(job.delivery === "none" || (job.delivery.channel && job.delivery.to));
  });
});
