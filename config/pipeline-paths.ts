/*
 * The paths and placeholders of pipeline templates and conditions, parsed the same way by the config check (which refuses
 * a path that could never resolve) and the runner (which resolves it). A path is dot-separated: its first segment is a
 * root of the step's scope, the rest are keys or list indexes (`steps.http.output.0.status`).
 */

/** The roots a path may start with: the run's input, an earlier step's record, the findings so far, a forEach element. */
export const PATH_ROOTS = ["input", "steps", "findings", "item"] as const;
/** In a finding rule, the tool's output (of this call, or of this element under forEach) is in scope too. */
export const RULE_PATH_ROOTS = [...PATH_ROOTS, "output"] as const;

const PLACEHOLDER = /\{\{\s*([^{}\s]+)\s*\}\}/g;
const WHOLE = /^\{\{\s*([^{}\s]+)\s*\}\}$/;

/** The path segments of `path`; empty segments (`a..b`, a trailing dot) make it invalid (undefined). */
export function splitPath(path: string): string[] | undefined {
  const segments = path.split(".");
  return segments.every((s) => s.length > 0) ? segments : undefined;
}

/** Every placeholder's path in a template, in order. */
export function placeholdersOf(template: string): string[] {
  return [...template.matchAll(PLACEHOLDER)].map((m) => m[1] ?? "");
}

/** The path when the whole template is one placeholder (its value then keeps its type), else undefined. */
export function wholePlaceholder(template: string): string | undefined {
  return WHOLE.exec(template)?.[1];
}

/** Replaces each placeholder with `render(path)`. */
export function replacePlaceholders(template: string, render: (path: string) => string): string {
  return template.replace(PLACEHOLDER, (_match, path: string) => render(path));
}

/**
 * Why a path cannot resolve in a scope with these roots and earlier steps, or undefined when it can. `steps.<id>` must
 * name a step before this one (a later step has not run yet).
 */
export function pathProblem(path: string, roots: readonly string[], earlierSteps: ReadonlySet<string>): string | undefined {
  const segments = splitPath(path);
  if (!segments) return `"${path}" is not a path (empty segment)`;
  const [root, stepId] = segments;
  if (root === undefined || !roots.includes(root)) return `"${path}" must start with ${roots.join(", ")}`;
  if (root === "steps") {
    if (stepId === undefined) return `"${path}" must name a step: steps.<id>.output`;
    if (!earlierSteps.has(stepId)) return `"${path}" names no earlier step "${stepId}" (earlier: ${[...earlierSteps].join(", ") || "none"})`;
  }
  return undefined;
}

/** Every string in a JSON value (a tool input), for checking the placeholders they hold. */
export function stringsIn(value: unknown, path: PropertyKey[] = []): { path: PropertyKey[]; text: string }[] {
  if (typeof value === "string") return [{ path, text: value }];
  if (Array.isArray(value)) return value.flatMap((v, i) => stringsIn(v, [...path, i]));
  if (typeof value === "object" && value !== null) return Object.entries(value).flatMap(([k, v]) => stringsIn(v, [...path, k]));
  return [];
}
