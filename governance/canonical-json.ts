/*
 * The one canonical JSON of the fleet. Two things rest on it: Sentinel's "same action" key for proposal dedup, and the
 * audit trail's hashes — a contract with every record already written, pinned by a test (test/governance/audit-chain):
 * change a rule here and that test fails before any stored chain would stop verifying.
 */

/**
 * One JSON text per value, whatever order its keys arrived in: the identity of "the same action" for proposal dedup, and
 * the text the pattern and size rules read. Keys are sorted by UTF-16 code unit at every level; otherwise it is what
 * JSON.stringify writes (toJSON honoured, undefined members dropped, undefined array slots and non-finite numbers as
 * null). A bigint — msgpack can decode a 64-bit integer as one — is written as its digits, as the number it is.
 */
export function canonicalJson(value: unknown): string {
  return write(value, new Set()) ?? "null";
}

function write(value: unknown, ancestors: Set<object>): string | undefined {
  if (value === null) return "null";
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "number":
      return Number.isFinite(value) ? JSON.stringify(value) : "null";
    case "boolean":
      return value ? "true" : "false";
    case "bigint":
      return value.toString();
    case "object":
      break;
    default:
      // undefined, functions and symbols have no JSON form
      return undefined;
  }
  const toJson: unknown = Reflect.get(value, "toJSON");
  if (typeof toJson === "function") return write(toJson.call(value), ancestors);
  // a cycle cannot come off the wire; it would be a caller's bug, and a key must never be computed from half a value
  if (ancestors.has(value)) throw new TypeError("canonicalJson: the value contains a cycle");
  ancestors.add(value);
  try {
    if (Array.isArray(value)) return `[${value.map((item: unknown) => write(item, ancestors) ?? "null").join(",")}]`;
    const members: string[] = [];
    for (const key of Object.keys(value).sort()) {
      const text = write(Reflect.get(value, key), ancestors);
      if (text !== undefined) members.push(`${JSON.stringify(key)}:${text}`);
    }
    return `{${members.join(",")}}`;
  } finally {
    ancestors.delete(value);
  }
}

