import { isDeepStrictEqual } from "node:util";
import { replacePlaceholders, splitPath, wholePlaceholder, type Condition } from "../config/index.js";

/**
 * What a step's templates and conditions can see: the run's input, the records of the steps it may read, the findings so
 * far (subject, key, severity and summary; `findingsView`), and under a forEach the current element (`item`), in a finding rule the tool's output (`output`).
 */
export interface PipelineScope {
  input: Record<string, unknown>;
  steps: Record<string, { output?: unknown; skipped?: boolean }>;
  findings: unknown[];
  item?: unknown;
  output?: unknown;
}

/** The value at a dot path (`steps.http.output.0.status`), or undefined when any segment is missing. */
export function resolvePath(scope: PipelineScope, path: string): unknown {
  const segments = splitPath(path);
  if (!segments) return undefined;
  let value: unknown = scope;
  for (const segment of segments) {
    if (Array.isArray(value)) {
      const index = /^\d+$/.test(segment) ? Number(segment) : Number.NaN;
      value = Number.isInteger(index) ? value[index] : segment === "length" ? value.length : undefined;
    } else if (typeof value === "object" && value !== null && Object.hasOwn(value, segment)) {
      value = Reflect.get(value, segment);
    } else {
      return undefined;
    }
  }
  return value;
}

/** A value as text inside a longer string: strings as they are, anything else as JSON; nothing is "". */
function asText(value: unknown): string {
  if (value === undefined || value === null) return "";
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

/** A template rendered as text: every placeholder replaced by its value as text. */
export function renderText(template: string, scope: PipelineScope): string {
  return replacePlaceholders(template, (path) => asText(resolvePath(scope, path)));
}

/**
 * A JSON value (a tool step's input) with its templates rendered: a string that is exactly one placeholder keeps the
 * value's type (a number stays a number, a list a list), any other string is rendered as text.
 */
export function renderValue(value: unknown, scope: PipelineScope): unknown {
  if (typeof value === "string") {
    const whole = wholePlaceholder(value);
    return whole !== undefined ? resolvePath(scope, whole) : renderText(value, scope);
  }
  if (Array.isArray(value)) return value.map((v) => renderValue(v, scope));
  if (typeof value === "object" && value !== null) {
    // a field whose placeholder resolves to nothing is left out, so the tool's default applies (tls_expiry's port 443)
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, renderValue(v, scope)]).filter(([, v]) => v !== undefined));
  }
  return value;
}

/** The findings as templates and conditions see them: what was found, not the evidence (that stays in the stream). */
export function findingsView(findings: readonly { subject: string; key: string; severity: string; summary: string }[]): unknown[] {
  return findings.map((f) => ({ subject: f.subject, key: f.key, severity: f.severity, summary: f.summary }));
}

function isEmpty(value: unknown): boolean {
  if (value === undefined || value === null || value === "") return true;
  if (Array.isArray(value)) return value.length === 0;
  if (typeof value === "object") return Object.keys(value).length === 0;
  return false;
}

/** Whether a condition holds in the scope. */
export function holds(condition: Condition, scope: PipelineScope): boolean {
  const value = resolvePath(scope, condition.path);
  switch (condition.is) {
    case "truthy":
      return Boolean(value) && !(Array.isArray(value) && value.length === 0);
    case "falsy":
      return !value || (Array.isArray(value) && value.length === 0);
    case "empty":
      return isEmpty(value);
    case "nonEmpty":
      return !isEmpty(value);
    case "below":
      return typeof value === "number" && typeof condition.value === "number" && value < condition.value;
    case "above":
      return typeof value === "number" && typeof condition.value === "number" && value > condition.value;
    case "equal":
      return value !== undefined && isDeepStrictEqual(value, condition.value);
  }
}
