import { BusinessStandin } from "../bridges/index.js";
import { FleetError } from "../protocol/index.js";
import { loadConfig, rootLogger } from "./options.js";
import type { RunOptions } from "./run.js";
import { untilStopped } from "./until-stopped.js";

/**
 * `fleet run standin`: the business stand-in (CRM, CMS, analytics, search console, revenue, keywords, rankings from
 * fixture data) on the host and port of the config's `business.url`, so the business tools work offline.
 */
export async function runStandin(options: RunOptions, env: NodeJS.ProcessEnv): Promise<number> {
  const config = loadConfig(options, env);
  if (!config.business) throw new FleetError("CONFIG_INVALID", "business.url is not set: the stand-in serves at that URL (e.g. business: { url: http://127.0.0.1:8790 })");
  const url = new URL(config.business.url);
  const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
  const log = rootLogger(options, env, "standin");
  const standin = new BusinessStandin({ port, host: url.hostname.replace(/^\[(.*)\]$/, "$1"), log });
  const listening = await standin.start();
  console.log(`business stand-in serving ${url.protocol}//${url.hostname}:${listening} (fixture data; writes last until it stops)`);
  return untilStopped(() => standin.stop(), { log, supervised: options.supervised }).exitCode;
}
