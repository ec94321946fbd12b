import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { FleetError } from "../protocol/index.js";
import { DemoSite } from "./demo-site.js";
import { FLEET_DIR, rootLogger } from "./options.js";
import type { RunOptions } from "./run.js";
import { untilStopped } from "./until-stopped.js";

/** `fleet run demo-site`: the demo site, until stopped (`fleet up` runs it when a duty names `{{local.demo-site}}`). */
export async function runDemoSite(options: RunOptions, env: NodeJS.ProcessEnv): Promise<number> {
  const log = rootLogger(options, env, "demo-site");
  const site = new DemoSite({ dir: FLEET_DIR, log });
  await site.start();
  return untilStopped(() => site.stop(), { log, supervised: options.supervised }).exitCode;
}

/**
 * `fleet demo break | fix | status`: takes the demo site down (it answers 503) or brings it back, by the flag file it
 * reads on every request. The next run of ship's demo-site duty finds the difference.
 */
export function demo(positionals: string[], dir = FLEET_DIR): number {
  const [action = "status"] = positionals;
  const flag = DemoSite.brokenFlag(dir);
  const urlFile = DemoSite.urlFile(dir);
  const url = existsSync(urlFile) ? readFileSync(urlFile, "utf8").trim() : undefined;
  const where = url ? `the demo site (${url})` : "the demo site (not running here: `fleet up` starts it)";
  switch (action) {
    case "break":
      mkdirSync(dir, { recursive: true });
      writeFileSync(flag, `broken by fleet demo break at ${new Date().toISOString()}\n`);
      console.log(
        `${where} now answers 503. Ship's next demo-site duty run finds it within a minute, Atlas's next cycle assigns ship the fix ` +
          `(fleet wake atlas: now), and ship proposes demo_site_restart (fleet proposals). In quiet hours the finding waits for the morning plan. Undo by hand: fleet demo fix`,
      );
      return 0;
    case "fix":
      rmSync(flag, { force: true });
      console.log(`${where} answers 200 again; the next duty run is clean and says nothing.`);
      return 0;
    case "status":
      console.log(`${where} is ${existsSync(flag) ? "broken (answers 503)" : "up (answers 200)"}`);
      return 0;
  }
  throw new FleetError("CONFIG_INVALID", `usage: fleet demo break | fleet demo fix | fleet demo status (not "${action}")`);
}
