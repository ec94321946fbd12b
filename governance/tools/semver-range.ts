/*
 * A minimal semver comparator for advisory ranges. `semver` is only a transitive dependency here (through fastify), so
 * rather than lean on another package's internals this implements exactly the range syntax the advisory format allows:
 * comparators `<`, `<=`, `>`, `>=`, `=` (or a bare version), joined by spaces (all must hold) and `||` (any set may
 * hold). Versions compare by semver 2.0 precedence, prerelease included; unlike npm, a prerelease is not excluded from
 * a range that names none — an audit errs on the side of reporting. Build metadata is ignored, as semver says.
 */

export interface SemVer {
  major: number;
  minor: number;
  patch: number;
  prerelease: (string | number)[];
}

const VERSION = /^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$/;

export function parseVersion(text: string): SemVer | undefined {
  const m = VERSION.exec(text.trim());
  if (!m) return undefined;
  const prerelease = m[4] ? m[4].split(".").map((id) => (/^\d+$/.test(id) ? Number(id) : id)) : [];
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), prerelease };
}

/** Negative, zero or positive as a is before, equal to or after b in semver precedence. */
export function compareVersions(a: SemVer, b: SemVer): number {
  const core = a.major - b.major || a.minor - b.minor || a.patch - b.patch;
  if (core !== 0) return Math.sign(core);
  // a version without prerelease comes after every prerelease of it
  if (a.prerelease.length === 0 || b.prerelease.length === 0) return Math.sign(b.prerelease.length - a.prerelease.length);
  for (let i = 0; i < Math.max(a.prerelease.length, b.prerelease.length); i++) {
    const x = a.prerelease[i];
    const y = b.prerelease[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    if (x === y) continue;
    // numeric identifiers sort before alphanumeric ones
    if (typeof x === "number" && typeof y === "number") return Math.sign(x - y);
    if (typeof x === "number") return -1;
    if (typeof y === "number") return 1;
    return x < y ? -1 : 1;
  }
  return 0;
}

type Operator = "<" | "<=" | ">" | ">=" | "=";
interface Comparator {
  op: Operator;
  version: SemVer;
}

const COMPARATOR = /^(<=|>=|<|>|=)?\s*(\S+)$/;
const OPERATORS: Record<string, Operator> = { "<": "<", "<=": "<=", ">": ">", ">=": ">=", "=": "=" };

/** The range as sets of comparators, or the reason it is not in the supported syntax. */
export function parseRange(range: string): { ok: true; sets: Comparator[][] } | { ok: false; why: string } {
  const sets: Comparator[][] = [];
  for (const part of range.split("||")) {
    // "< 1.2.3" and "<1.2.3" are the same comparator: glue an operator to its version before splitting on spaces
    const tokens = part.trim().replace(/(<=|>=|<|>|=)\s+/g, "$1").split(/\s+/).filter(Boolean);
    if (tokens.length === 0) return { ok: false, why: `"${range}" has an empty alternative` };
    const set: Comparator[] = [];
    for (const token of tokens) {
      const m = COMPARATOR.exec(token);
      const version = m?.[2] ? parseVersion(m[2]) : undefined;
      if (!m || !version) return { ok: false, why: `"${token}" in "${range}" is not a comparator (<, <=, >, >=, = and a full version x.y.z)` };
      set.push({ op: OPERATORS[m[1] ?? "="] ?? "=", version });
    }
    sets.push(set);
  }
  return { ok: true, sets };
}

function holds(version: SemVer, c: Comparator): boolean {
  const order = compareVersions(version, c.version);
  switch (c.op) {
    case "<":
      return order < 0;
    case "<=":
      return order <= 0;
    case ">":
      return order > 0;
    case ">=":
      return order >= 0;
    case "=":
      return order === 0;
  }
}

export function satisfies(version: SemVer, sets: readonly Comparator[][]): boolean {
  return sets.some((set) => set.every((c) => holds(version, c)));
}
