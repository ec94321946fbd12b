import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { parse, stringify } from "yaml";
import { loadFleetConfig, nextDue, scheduleOf, shippedFleetPath, type FleetConfig } from "../config/index.js";
import type { DaySites } from "./fleet-day-sites.js";

/*
 * The reference fleet (config/fleets/dcode-ops.yaml) made into one measurable day, twice:
 * - the day config: every schedule restated as the interval it runs at on a Monday (the day every duty of the week runs
 *   once: lead-review on weekdays, content-calendar and weekly-growth on Mondays, the audits daily), quiet hours off (a
 *   compressed day crosses no night), duty targets pointed at the bench's local sites, feed and files. `fleet simulate`
 *   projects this config.
 * - the compressed config: the same with every interval and cycle divided by `factor`: what the processes run.
 * Everything else (agents, tiers and prices, routing, pipelines, budgets) is the reference file's.
 */

const DAY_MS = 86_400_000;
// a Monday (2026-01-05) in the fleet's zone is within a day of its UTC midnight; the window below is searched exactly
const MONDAY_UTC = Date.UTC(2026, 0, 5);

type Obj = Record<string, unknown>;
const isObj = (x: unknown): x is Obj => typeof x === "object" && x !== null && !Array.isArray(x);
const list = (x: unknown): Obj[] => (Array.isArray(x) ? x.filter(isObj) : []);

/** How many times a schedule runs on the Monday (local midnight to midnight) in the fleet's zone. */
function mondayRuns(item: Obj, timeZone: string): number {
  const schedule = scheduleOf({
    at: typeof item.at === "string" ? item.at : undefined,
    days: Array.isArray(item.days) ? (item.days as never) : undefined,
    every: undefined,
    cron: typeof item.cron === "string" ? item.cron : undefined,
  });
  // local midnight: the first instant whose local date is the Monday
  const fmt = new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" });
  let start = MONDAY_UTC - DAY_MS;
  while (fmt.format(new Date(start)) !== "2026-01-05") start += 60_000;
  let runs = 0;
  for (let due = nextDue(schedule, timeZone, start - 1); due < start + DAY_MS; due = nextDue(schedule, timeZone, due)) runs++;
  return runs;
}

const interval = (ms: number): string => (ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`);
const EVERY = /^(\d+)(s|m|h|d)$/;
const toMs = (text: string): number => {
  const m = EVERY.exec(text);
  if (!m) throw new Error(`not an interval: ${text}`);
  return Number(m[1]) * { s: 1_000, m: 60_000, h: 3_600_000, d: DAY_MS }[m[2] as "s" | "m" | "h" | "d"];
};

/** A schedule restated as the interval it runs at on the Monday; undefined when it does not run that day. */
function mondayInterval(item: Obj, timeZone: string): number | undefined {
  if (typeof item.every === "string") return toMs(item.every);
  const runs = mondayRuns(item, timeZone);
  return runs === 0 ? undefined : DAY_MS / runs;
}

export interface DayTargets {
  sites: DaySites["sites"];
  feedUrl: string;
  lockfile: string;
  advisoriesFile: string;
  diskPath: string;
}

/** Where each duty looks in the bench: the local sites, feed and files instead of the internet and /srv. */
function localInput(pipeline: string, input: Obj, t: DayTargets): Obj {
  const hosts = t.sites.map((s) => `127.0.0.1:${s.port}`);
  switch (pipeline) {
    case "site-health":
      // no TLS: the local sites speak plain HTTP (a self-signed certificate would be a finding every run)
      return { sites: t.sites.map((s) => ({ name: s.name, url: s.url })), tls: [], ports: t.sites.map((s) => ({ name: s.name, host: "127.0.0.1", port: s.port })) };
    case "host-health":
      return { paths: [t.diskPath] };
    case "dns-watch":
      return { sites: ["localhost"] };
    case "feed-scan":
      return { feeds: [t.feedUrl] };
    case "headers-audit":
      return { sites: hosts };
    case "tls-audit":
      return { ...input, sites: [] };
    case "dependency-audit":
      return { lockfile: t.lockfile, advisoriesFile: t.advisoriesFile };
    default:
      return input;
  }
}

export interface DayConfigs {
  dayFile: string;
  compressedFile: string;
  day: FleetConfig;
  compressed: FleetConfig;
  /** schedules left out because they do not run on a Monday */
  dropped: string[];
}

export function writeDayConfigs(dir: string, t: DayTargets, opts: { factor: number; openaiBaseUrl: string; businessUrl: string }): DayConfigs {
  const source = shippedFleetPath("dcode-ops");
  const doc = parse(readFileSync(source, "utf8")) as Obj;
  const fleet = doc.fleet as Obj;
  const timeZone = String(fleet.timeZone ?? "UTC");
  fleet.quietHours = { start: "00:00", end: "00:00" };
  for (const tier of Object.values(doc.tiers as Obj)) if (isObj(tier)) tier.baseUrl = opts.openaiBaseUrl;
  const memory = doc.memory as Obj;
  for (const key of ["knowledgeDir", "skillsDir"]) if (typeof memory[key] === "string") memory[key] = resolve(dirname(source), String(memory[key]));
  memory.dir = join(dir, "memory");
  doc.backups = { ...(isObj(doc.backups) ? doc.backups : {}), dir: join(dir, "backups") };
  doc.business = { url: opts.businessUrl, standin: true };
  // plain HTTP: the local sites have no certificates
  const headers = (doc.pipelines as Obj)["headers-audit"] as Obj;
  for (const step of list(headers.steps)) if (isObj(step.input)) step.input = { ...step.input, url: "http://{{item}}/" };

  const dropped: string[] = [];
  const restate = (item: Obj, where: string): boolean => {
    const every = mondayInterval(item, timeZone);
    if (every === undefined) {
      dropped.push(where);
      return false;
    }
    delete item.at;
    delete item.days;
    delete item.cron;
    item.every = interval(every);
    return true;
  };
  for (const agent of list(doc.agents)) {
    agent.duties = list(agent.duties).filter((d) => restate(d, `${String(agent.id)}.duties.${String(d.id)}`));
    for (const d of list(agent.duties)) d.input = localInput(String(d.pipeline), isObj(d.input) ? d.input : {}, t);
  }
  doc.cron = list(doc.cron).filter((job) => restate(job, `cron.${String(job.id)}`));

  const dayFile = join(dir, "day.yaml");
  writeFileSync(dayFile, stringify(doc));
  const day = loadFleetConfig(dayFile);

  // the same day, `factor` times faster
  for (const agent of list(doc.agents)) {
    agent.cycleMinutes = Number(agent.cycleMinutes) / opts.factor;
    for (const d of list(agent.duties)) d.every = interval(toMs(String(d.every)) / opts.factor);
  }
  for (const job of list(doc.cron)) job.every = interval(toMs(String(job.every)) / opts.factor);
  const compressedFile = join(dir, "compressed.yaml");
  writeFileSync(compressedFile, stringify(doc));
  return { dayFile, compressedFile, day, compressed: loadFleetConfig(compressedFile), dropped };
}
