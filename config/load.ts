import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { LineCounter, parseDocument } from "yaml";
import { z } from "zod";
import { FleetError, formatPath, issuesOf, type FieldIssue } from "../protocol/index.js";
import { FleetConfig } from "./schema.js";

/*
 * The loader is pure apart from reading the file: it never looks at process.env. Secrets are named by env var
 * (tiers.*.apiKeyEnv) and resolved where the router is wired, so the frozen config holds no secret values.
 */

/** Reads, parses and validates a fleet config file. Throws CONFIG_NOT_FOUND or CONFIG_INVALID (listing every bad field). */
export function loadFleetConfig(file: string): FleetConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    const code = err instanceof Error && "code" in err ? err.code : undefined;
    if (code === "ENOENT" || code === "ENOTDIR") {
      throw new FleetError("CONFIG_NOT_FOUND", `${file}: fleet config not found`, { cause: err });
    }
    const reason = err instanceof Error ? err.message : String(err);
    throw invalid(file, [{ path: "(root)", message: `cannot read the file: ${reason}` }], err);
  }
  return parseFleetConfig(text, file);
}

/** Parses and validates YAML text; `source` names it in error messages (usually the file path). */
export function parseFleetConfig(text: string, source: string): FleetConfig {
  const data = parseYaml(text, source);
  const issues = interpolationIssues(data, []);
  const result = FleetConfig.safeParse(data, { error: requiredMessage });
  if (!result.success) issues.push(...fieldIssues(result.error));
  if (!result.success || issues.length > 0) throw invalid(source, issues);
  return deepFreeze(result.data);
}

function parseYaml(text: string, source: string): unknown {
  const lineCounter = new LineCounter();
  // Our own line/col formatting keeps each error on one line; yaml's pretty errors add a multi-line excerpt.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  if (doc.errors.length > 0) {
    throw invalid(
      source,
      doc.errors.map((err) => {
        const { line, col } = lineCounter.linePos(err.pos[0]);
        return { path: "(root)", message: `YAML syntax error at line ${line}, column ${col}: ${err.message}` };
      }),
    );
  }
  try {
    return doc.toJS();
  } catch (err) {
    // toJS throws on alias bombs (maxAliasCount) and similar structural abuse.
    const reason = err instanceof Error ? err.message : String(err);
    throw invalid(source, [{ path: "(root)", message: `cannot build the YAML document: ${reason}` }], err);
  }
}

/**
 * DESIGN allows `${ENV}` only for secrets, and secrets are referenced by apiKeyEnv, so no value is ever interpolated.
 * Refusing `${` outright keeps a config from looking as if it were templated when it is not.
 */
function interpolationIssues(value: unknown, path: PropertyKey[]): FieldIssue[] {
  const refuse = (at: PropertyKey[]): FieldIssue => ({
    path: formatPath(at),
    message: "contains ${...}: values are never interpolated; reference secrets by env var name with apiKeyEnv",
  });
  if (typeof value === "string") return value.includes("${") ? [refuse(path)] : [];
  if (Array.isArray(value)) return value.flatMap((item, i) => interpolationIssues(item, [...path, i]));
  if (value !== null && typeof value === "object") {
    return Object.entries(value).flatMap(([key, item]) => [
      ...(key.includes("${") ? [refuse([...path, key])] : []),
      ...interpolationIssues(item, [...path, key]),
    ]);
  }
  return [];
}

/** zod's default for a missing field ("expected string, received undefined") reads badly in a config file. */
function requiredMessage(iss: z.core.$ZodRawIssue): string | undefined {
  return iss.code === "invalid_type" && iss.input === undefined ? `required (${iss.expected})` : undefined;
}

/** One issue per bad field: zod groups unknown keys under their parent, we report each key at its own path. */
function fieldIssues(error: z.ZodError): FieldIssue[] {
  const plain = issuesOf(error);
  return error.issues.flatMap((issue, i): FieldIssue[] => {
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((key) => ({ path: formatPath([...issue.path, key]), message: issue.message }));
    }
    return [plain[i] ?? { path: formatPath(issue.path), message: issue.message }];
  });
}

function invalid(source: string, issues: FieldIssue[], cause?: unknown): FleetError {
  const lines = issues.map((issue) =>
    issue.path === "(root)" ? `${source}: ${issue.message}` : `${source}: ${issue.path}: ${issue.message}`,
  );
  return new FleetError("CONFIG_INVALID", lines.join("\n"), { details: issues, cause });
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const item of Object.values(value)) deepFreeze(item);
  }
  return value;
}

const PackageJson = z.object({ name: z.string() });
const PACKAGE_NAME = "natsfleet";
let packageRoot: string | undefined;

/**
 * The directory holding our package.json, found by walking up from this file, so it works from the sources and from
 * dist/ alike. The name check skips any package.json a build tool might drop into dist/.
 */
function findPackageRoot(): string {
  if (packageRoot !== undefined) return packageRoot;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, "package.json");
    if (existsSync(candidate)) {
      try {
        const parsed = PackageJson.safeParse(JSON.parse(readFileSync(candidate, "utf8")));
        if (parsed.success && parsed.data.name === PACKAGE_NAME) return (packageRoot = dir);
      } catch {
        // an unreadable or malformed package.json is not ours; keep walking up
      }
    }
    const parent = dirname(dir);
    if (parent === dir) throw new FleetError("INTERNAL", `cannot find the ${PACKAGE_NAME} package root above ${import.meta.url}`);
    dir = parent;
  }
}

function shippedFleetsDir(): string {
  return join(findPackageRoot(), "config", "fleets");
}

/** The routing labels shipped with natsfleet (`<tier> <title>` per line), the local classifier's default training set. */
export function shippedLabelsPath(): string {
  return join(findPackageRoot(), "config", "routing-labels.txt");
}

/** Names of the fleets shipped in config/fleets/, sorted. */
export function shippedFleetNames(): string[] {
  return readdirSync(shippedFleetsDir())
    .filter((file) => file.endsWith(".yaml"))
    .map((file) => file.slice(0, -".yaml".length))
    .sort();
}

/** Absolute path of a shipped fleet, e.g. `shippedFleetPath("local")`. Throws CONFIG_NOT_FOUND for an unknown name. */
export function shippedFleetPath(name: string): string {
  // The name comes from the command line: refuse anything that could climb out of config/fleets/.
  const file = join(shippedFleetsDir(), `${name}.yaml`);
  if (!/^[a-z0-9][a-z0-9-]*$/.test(name) || !existsSync(file)) {
    const known = shippedFleetNames().join(", ");
    throw new FleetError("CONFIG_NOT_FOUND", `no shipped fleet named "${name}" (shipped fleets: ${known})`);
  }
  return file;
}
