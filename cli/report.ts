import { jetstream } from "@nats-io/jetstream";
import { FleetError } from "../protocol/index.js";
import { loadWeeklyReport } from "../supervisor/index.js";
import { inspect, loadConfig, prefixOf, type CliOptions } from "./options.js";

/**
 * `fleet report weekly [--json]`: the weekly cost report on demand, for the 7 days ending now: the same figures and
 * text the Monday job delivers (that one ends at its due time).
 */
export async function report(positionals: string[], options: CliOptions, env: NodeJS.ProcessEnv, now: number = Date.now()): Promise<number> {
  const [which] = positionals;
  if (which !== "weekly") throw new FleetError("MESSAGE_INVALID", `fleet report: unknown report "${which ?? ""}" (reports: weekly)`);
  const config = loadConfig(options);
  const { nc, names, kv } = await inspect({ ...options, prefix: prefixOf(options, config) }, env);
  try {
    const { report: weekly, text, malformed } = await loadWeeklyReport({ js: jetstream(nc), tasks: kv.tasks, names, codec: config.fleet.codec, config }, now);
    if (options.json) console.log(JSON.stringify({ timeZone: config.fleet.timeZone, malformed, ...weekly }, null, 2));
    else console.log(text + (malformed > 0 ? `\n${malformed} USAGE messages did not decode and were skipped` : ""));
    return 0;
  } finally {
    await nc.close();
  }
}
