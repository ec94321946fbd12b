import { z } from "zod";
import { FleetError } from "../protocol/index.js";

/*
 * Deterministic quality gates on a model's answer. A failure escalates that one step one tier up; it never re-runs
 * the chain. The structured-output check rebuilds a zod validator from the JSON schema the caller sent (the same schema
 * went to the provider as the response format), so an answer that is not JSON or breaks the schema fails like any check.
 */

export type CheckResult = { ok: true; parsed?: unknown } | { ok: false; check: string; reason: string };

const REFUSAL = /^\s*(i'?m sorry|i cannot|i can'?t|as an ai\b)/i;

/** Named checks a request may list in `checks`. Each returns a reason when the answer fails it. */
export const NAMED_CHECKS: Record<string, (text: string) => string | undefined> = {
  "non-empty": (text) => (text.trim() === "" ? "the answer is empty" : undefined),
  json: (text) => (parseJson(text).ok ? undefined : "the answer is not JSON"),
  "no-refusal": (text) => (REFUSAL.test(text) ? "the model refused" : undefined),
  "no-placeholder": (text) => (/\b(TODO|TBD|lorem ipsum)\b/i.test(text) ? "the answer contains a placeholder" : undefined),
};

/** Refuses a request that names a check we do not have, before any money is spent. */
export function assertKnownChecks(checks: readonly string[] | undefined): void {
  const unknown = (checks ?? []).filter((name) => !(name in NAMED_CHECKS));
  if (unknown.length > 0) {
    throw new FleetError("MESSAGE_INVALID", `unknown check ${unknown.map((c) => `"${c}"`).join(", ")}`, {
      details: [{ path: "checks", message: `known checks: ${Object.keys(NAMED_CHECKS).join(", ")}` }],
    });
  }
}

/** Compiles a JSON schema once; a schema zod cannot read is the caller's error, reported before any call. */
export function compileResponseSchema(schema: Record<string, unknown>): z.ZodType {
  try {
    return z.fromJSONSchema(schema);
  } catch (err) {
    throw new FleetError("MESSAGE_INVALID", "responseSchema is not a JSON schema zod can validate", {
      cause: err,
      details: [{ path: "responseSchema.schema", message: err instanceof Error ? err.message : String(err) }],
    });
  }
}

export function runChecks(text: string, options: { validator?: z.ZodType; checks?: readonly string[] }): CheckResult {
  let parsed: unknown;
  if (options.validator) {
    const json = parseJson(text);
    if (!json.ok) return { ok: false, check: "schema", reason: "the answer is not JSON" };
    const result = options.validator.safeParse(json.value);
    if (!result.success) {
      const first = result.error.issues[0];
      const where = first && first.path.length > 0 ? first.path.join(".") : "(root)";
      return { ok: false, check: "schema", reason: `breaks the schema at ${where}: ${first?.message ?? "invalid"}` };
    }
    parsed = result.data;
  }
  for (const name of options.checks ?? []) {
    const reason = NAMED_CHECKS[name]?.(text);
    if (reason !== undefined) return { ok: false, check: name, reason };
  }
  return parsed === undefined ? { ok: true } : { ok: true, parsed };
}

function parseJson(text: string): { ok: true; value: unknown } | { ok: false } {
  // models often fence JSON in ```json blocks even when asked not to
  const body = text.trim().replace(/^```(?:json)?\s*([\s\S]*?)\s*```$/, "$1");
  try {
    return { ok: true, value: JSON.parse(body) };
  } catch {
    return { ok: false };
  }
}
