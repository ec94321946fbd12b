/**
 * Visits every string in an input — member names as well as values, since a key can carry text too — with its path.
 * Shared by the rules that read the input's text, so they agree on what "a field" is.
 */

export type Path = readonly (string | number)[];

export interface TextSite {
  path: Path;
  text: string;
  /** true for a member name (`path` then ends with that name), false for a value */
  isKey: boolean;
}

/** Integers are visited as their digits (a card number can arrive as a JSON number); other scalars are skipped. */
export function* textSites(value: unknown, path: Path = [], ancestors: Set<object> = new Set()): Generator<TextSite> {
  if (typeof value === "string") {
    yield { path, text: value, isKey: false };
    return;
  }
  if (typeof value === "bigint" || (typeof value === "number" && Number.isInteger(value))) {
    yield { path, text: value.toString(), isKey: false };
    return;
  }
  if (typeof value !== "object" || value === null || ancestors.has(value)) return;
  ancestors.add(value);
  if (Array.isArray(value)) {
    for (const [index, item] of value.entries()) yield* textSites(item, [...path, index], ancestors);
  } else {
    for (const key of Object.keys(value)) {
      yield { path: [...path, key], text: key, isKey: true };
      yield* textSites(Reflect.get(value, key), [...path, key], ancestors);
    }
  }
  ancestors.delete(value);
}

/** "to", "recipients.email": a declared field, split into member names (array indices are not part of it). */
export function fieldSegments(field: string): string[] {
  return field.split(".").filter((segment) => segment !== "");
}

/**
 * Whether `path` lies at or under a declared field. Array indices are skipped, so "to" covers `to[2]` and
 * "recipients.email" covers `recipients[0].email`.
 */
export function isUnder(path: Path, field: string): boolean {
  const names = path.filter((segment): segment is string => typeof segment === "string");
  const segments = fieldSegments(field);
  return segments.length > 0 && segments.every((segment, i) => names[i] === segment);
}

/**
 * The values at a declared field, each with its path: objects are followed by member name and arrays are flattened at
 * every step, so "to" on `{to: ["a", "b"]}` gives both recipients. Missing members give nothing.
 */
export function valuesAt(input: unknown, field: string): { path: Path; value: unknown }[] {
  let found: { path: Path; value: unknown }[] = [{ path: [], value: input }];
  for (const segment of fieldSegments(field)) {
    const next: { path: Path; value: unknown }[] = [];
    for (const site of flatten(found)) {
      if (typeof site.value !== "object" || site.value === null || !Object.hasOwn(site.value, segment)) continue;
      next.push({ path: [...site.path, segment], value: Reflect.get(site.value, segment) });
    }
    found = next;
  }
  return flatten(found);
}

function flatten(sites: { path: Path; value: unknown }[]): { path: Path; value: unknown }[] {
  return sites.flatMap((site) =>
    Array.isArray(site.value) ? flatten(site.value.map((item: unknown, i) => ({ path: [...site.path, i], value: item }))) : [site],
  );
}
