import { z } from "zod";

/**
 * Boundary primitives the wire schemas share. msgpack decodes `bin` to a Uint8Array and a timestamp extension to a Date,
 * and a zod object accepts both (it only asks for `typeof "object"`): an object whose fields are all optional would take
 * bytes for itself and parse as `{}`. These say what a field is, exactly.
 */

/** A map decoded from msgpack or JSON: neither bytes, a Date nor an array. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== "object") return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** The object `schema` describes, refusing anything that is not a plain map before its fields are looked at. */
export function plainObject<O extends z.ZodObject>(schema: O) {
  // the guard passes only plain maps, which is all the object's input type allows: zod cannot see that generically
  const target = schema as unknown as z.ZodType<z.output<O>, z.input<O>>;
  return z.custom<z.input<O>>(isPlainObject, { message: "expected an object" }).pipe(target);
}

const json = z.json();

/**
 * Free-form JSON (metadata, a data part, a tool's input): no bytes, no Dates, no undefined. Typed `unknown`, as the
 * values producers put there are (a tool's output), while the check on receipt is JSON's.
 */
export const JsonValue = z.unknown().refine((value) => json.safeParse(value).success, "must be JSON: no bytes, dates or undefined");

/** A tool's input: JSON, or nothing (a rollback names only its idempotency key). */
export const JsonInput = z.unknown().refine((value) => value === undefined || json.safeParse(value).success, "must be JSON: no bytes or dates");

/** Free-form metadata: a JSON object. */
export const JsonObject = z.record(z.string(), JsonValue);

/**
 * A task or context id. It becomes one token of a KV key (`<agentId>.<taskId>`) and of subjects, so it is refused where it
 * enters (a request, an inbox message, an assignment) rather than failing later inside the broker.
 */
export const TaskId = z.string().regex(/^[A-Za-z0-9_=-]{1,128}$/, "must be 1-128 letters, digits, '-', '_' or '='");
