import { z } from "zod";

/** Strict object whose unknown-key error names the key the operator probably meant. */
export function strict<Shape extends z.core.$ZodLooseShape>(shape: Shape) {
  const allowed = Object.keys(shape);
  return z.strictObject(shape, {
    error: (iss) => (iss.code === "unrecognized_keys" ? unknownKeyMessage(iss.keys, allowed) : undefined),
  });
}

function unknownKeyMessage(keys: readonly string[], allowed: readonly string[]): string {
  const only = keys.length === 1 ? keys[0] : undefined;
  const guess = only === undefined ? undefined : closest(only, allowed);
  return guess ? `unknown key, did you mean "${guess}"?` : `unknown key (allowed: ${allowed.join(", ")})`;
}

/** The allowed key within edit distance 2 (case-insensitive) of `key`, if any: enough to catch real typos. */
export function closest(key: string, allowed: readonly string[]): string | undefined {
  let best: { name: string; distance: number } | undefined;
  for (const name of allowed) {
    const distance = editDistance(key.toLowerCase(), name.toLowerCase());
    if (distance <= 2 && (!best || distance < best.distance)) best = { name, distance };
  }
  return best?.name;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row.push(Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost));
    }
    prev = row;
  }
  return prev[b.length] ?? 0;
}
