import { after, before, describe, it } from "node:test";
import { startSpreadFleet, workThrough, type SpreadFleet } from "./spread-fleet.js";

/**
 * All three servers restarted one after another (each back on its store before the next goes) while tasks and proposals
 * are in flight: nothing is lost, nothing runs twice, and the seconds each stream spends electing a new leader are
 * ridden out by retries, not surfaced as failed tasks.
 */

const COUNT = process.env.FLEET_SOAK === "1" ? 600 : 96;

describe(`a rolling restart of the three servers with ${COUNT} tasks and ${COUNT} proposals in flight`, () => {
  let f: SpreadFleet;

  before(async () => {
    f = await startSpreadFleet("croll");
  });

  after(async () => {
    await f?.stop();
  });

  it("every acknowledged task and proposal completes exactly once", { timeout: 180_000 }, async () => {
    const restarted = new Set<number>();
    await workThrough(f, COUNT, async (sent) => {
      // one node per quarter of the work: 25 %, 50 %, 75 %
      const due = Math.floor((sent / COUNT) * 4);
      for (let i = 0; i < 3; i++) {
        if (i + 1 <= due && !restarted.has(i)) {
          restarted.add(i);
          await f.cluster.restart(i);
          await f.cluster.waitReady();
        }
      }
    }, 120_000);
  });
});
