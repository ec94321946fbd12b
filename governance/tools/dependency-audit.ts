import { readFile } from "node:fs/promises";
import { z } from "zod";
import { FleetError } from "../../protocol/index.js";
import { defineTool } from "../tool.js";
import { fetchOrFail, readText } from "./http-fetch.js";
import { compareVersions, parseRange, parseVersion, satisfies, type SemVer } from "./semver-range.js";

/*
 * AUTO: the packages a package-lock.json installs, matched against advisory data (a JSON file on the tool host or an
 * http endpoint serving the same JSON). The advisory format is deliberately small, OSV-like:
 *
 *   { "advisories": [ { "id": "GHSA-…", "package": "lodash", "vulnerable": "<4.17.21", "severity": "high",
 *                       "summary": "…", "fixed": "4.17.21", "url": "https://…" } ] }
 *
 * (a bare array of advisories is accepted too). `vulnerable` is a range of `<`, `<=`, `>`, `>=`, `=` comparators joined
 * by spaces and `||` (semver-range.ts). An advisory that does not parse is refused with its index: a list that silently
 * skipped one would report a clean bill it has not checked.
 */

export const Severity = z.enum(["low", "moderate", "high", "critical"]);

export const Advisory = z.object({
  id: z.string().min(1),
  package: z.string().min(1),
  vulnerable: z.string().min(1),
  severity: Severity,
  summary: z.string().default(""),
  fixed: z.string().optional(),
  url: z.string().optional(),
});
export type Advisory = z.infer<typeof Advisory>;
const AdvisoryFile = z.union([z.object({ advisories: z.array(z.unknown()) }), z.array(z.unknown())]);

// lockfileVersion 2 and 3 list every installed package under `packages`, keyed by its path; version 1 nests `dependencies`
const LockV1Dependency: z.ZodType<{ version?: string | undefined; dependencies?: Record<string, unknown> | undefined }> = z.looseObject({
  version: z.string().optional(),
  dependencies: z.record(z.string(), z.unknown()).optional(),
});
const Lockfile = z.looseObject({
  lockfileVersion: z.number().int().optional(),
  packages: z.record(z.string(), z.looseObject({ version: z.string().optional(), name: z.string().optional(), link: z.boolean().optional() })).optional(),
  dependencies: z.record(z.string(), z.unknown()).optional(),
});

export interface Installed {
  name: string;
  version: string;
  path: string;
}

/** Every package the lock file installs: name, version and where (the root project itself is not a dependency). */
export function installedPackages(lock: z.infer<typeof Lockfile>): Installed[] {
  const out: Installed[] = [];
  if (lock.packages) {
    for (const [path, entry] of Object.entries(lock.packages)) {
      if (path === "" || entry.link || !entry.version) continue;
      const name = entry.name ?? path.slice(path.lastIndexOf("node_modules/") + "node_modules/".length);
      out.push({ name, version: entry.version, path });
    }
    return out;
  }
  const walk = (deps: Record<string, unknown>, prefix: string) => {
    for (const [name, raw] of Object.entries(deps)) {
      const dep = LockV1Dependency.safeParse(raw);
      if (!dep.success) continue;
      const path = `${prefix}node_modules/${name}`;
      if (dep.data.version) out.push({ name, version: dep.data.version, path });
      if (dep.data.dependencies) walk(dep.data.dependencies, `${path}/`);
    }
  };
  walk(lock.dependencies ?? {}, "");
  return out;
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new FleetError("TOOL_FAILED", `dependency_audit: ${what} is not JSON: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

async function readLocal(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    throw new FleetError("TOOL_FAILED", `dependency_audit: cannot read the ${what} ${path}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

/** The advisories, each checked; the first one that is not valid fails the call with its index. */
export function parseAdvisories(data: unknown, source: string): (Advisory & { sets: ReturnType<typeof parseRange> & { ok: true } })[] {
  const file = AdvisoryFile.safeParse(data);
  if (!file.success) throw new FleetError("TOOL_FAILED", `dependency_audit: ${source}: expected {"advisories": [...]} or an array of advisories`);
  const list = Array.isArray(file.data) ? file.data : file.data.advisories;
  return list.map((raw, i) => {
    const advisory = Advisory.safeParse(raw);
    if (!advisory.success) {
      throw new FleetError("TOOL_FAILED", `dependency_audit: ${source}: advisory [${i}]: ${advisory.error.issues.map((e) => `${e.path.join(".") || "(root)"}: ${e.message}`).join("; ")}`);
    }
    const sets = parseRange(advisory.data.vulnerable);
    if (!sets.ok) throw new FleetError("TOOL_FAILED", `dependency_audit: ${source}: advisory [${i}] (${advisory.data.id}): ${sets.why}`);
    return { ...advisory.data, sets };
  });
}

const SEVERITY_ORDER = Severity.options;

export const dependencyAudit = defineTool({
  name: "dependency_audit",
  description:
    "Audit a package-lock.json (a path on the tool host) against advisory data (a JSON file path or an http URL): every installed package in a vulnerable range, with its advisory id, severity and fixed version.",
  risk: "AUTO",
  input: z
    .strictObject({
      lockfile: z.string().min(1),
      advisoriesFile: z.string().min(1).optional(),
      advisoriesUrl: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).optional(),
      timeoutMs: z.number().int().min(1).max(60_000).default(15_000),
    })
    .refine((i) => (i.advisoriesFile === undefined) !== (i.advisoriesUrl === undefined), { error: "name exactly one of advisoriesFile and advisoriesUrl" }),
  targetFields: ["advisoriesUrl"],
  handler: async (input, ctx) => {
    const lock = Lockfile.safeParse(parseJson(await readLocal(input.lockfile, "lock file"), input.lockfile));
    if (!lock.success) throw new FleetError("TOOL_FAILED", `dependency_audit: ${input.lockfile} is not a package-lock.json`);
    let advisoryText: string;
    let source: string;
    if (input.advisoriesUrl) {
      source = input.advisoriesUrl;
      const res = await fetchOrFail("dependency_audit", source, ctx, input.timeoutMs, { headers: { accept: "application/json" } });
      if (!res.ok) {
        await res.body?.cancel().catch(() => undefined);
        throw new FleetError("TOOL_FAILED", `dependency_audit: ${source} answered HTTP ${res.status}`);
      }
      const body = await readText(res);
      if (body.truncated) throw new FleetError("TOOL_FAILED", `dependency_audit: ${source} is larger than the limit`);
      advisoryText = body.text;
    } else {
      source = input.advisoriesFile ?? "";
      advisoryText = await readLocal(source, "advisory file");
    }
    const advisories = parseAdvisories(parseJson(advisoryText, source), source);
    const byName = new Map<string, typeof advisories>();
    for (const a of advisories) byName.set(a.package, [...(byName.get(a.package) ?? []), a]);

    const installed = installedPackages(lock.data);
    const findings: { id: string; package: string; version: string; severity: z.infer<typeof Severity>; summary: string; fixed?: string; url?: string; paths: string[] }[] = [];
    const unreadable: Installed[] = [];
    for (const pkg of installed) {
      const relevant = byName.get(pkg.name);
      if (!relevant) continue;
      const version: SemVer | undefined = parseVersion(pkg.version);
      // a git or file dependency has no semver version: say so rather than call it safe
      if (!version) {
        unreadable.push(pkg);
        continue;
      }
      for (const a of relevant) {
        if (!satisfies(version, a.sets.sets)) continue;
        const same = findings.find((f) => f.id === a.id && f.version === pkg.version);
        if (same) same.paths.push(pkg.path);
        else findings.push({ id: a.id, package: a.package, version: pkg.version, severity: a.severity, summary: a.summary, ...(a.fixed ? { fixed: a.fixed } : {}), ...(a.url ? { url: a.url } : {}), paths: [pkg.path] });
      }
    }
    findings.sort(
      (x, y) =>
        SEVERITY_ORDER.indexOf(y.severity) - SEVERITY_ORDER.indexOf(x.severity) ||
        x.package.localeCompare(y.package) ||
        compareVersions(parseVersion(x.version) ?? { major: 0, minor: 0, patch: 0, prerelease: [] }, parseVersion(y.version) ?? { major: 0, minor: 0, patch: 0, prerelease: [] }),
    );
    const bySeverity = Object.fromEntries(SEVERITY_ORDER.map((s) => [s, findings.filter((f) => f.severity === s).length]));
    return {
      lockfile: input.lockfile,
      advisories: source,
      packages: installed.length,
      advisoriesChecked: advisories.length,
      vulnerable: findings.length,
      bySeverity,
      findings,
      ...(unreadable.length > 0 ? { unversioned: unreadable.map((p) => `${p.name}@${p.version}`) } : {}),
    };
  },
});
