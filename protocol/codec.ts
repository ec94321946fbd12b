import { C1, Packr, type Options as PackrOptions } from "msgpackr";
import type { z } from "zod";
import { FleetError, issuesOf } from "./errors.js";

/**
 * The only place that turns values into bytes and back. Payloads are plain msgpack maps (no record extension) so any
 * language's msgpack decodes them; JSON is there for inspection with the NATS CLI. Decoding always runs the zod schema and
 * never throws: the caller gets a typed FleetError to reply with or to dead-letter.
 */

export type CodecName = "msgpack" | "json";
export const CONTENT_TYPES: Record<CodecName, string> = { msgpack: "application/msgpack", json: "application/json" };

export type Decoded<T> = { ok: true; value: T } | { ok: false; error: FleetError };

// undefined fields are left out (as JSON does) and undefined array items become nil, so any msgpack reader understands us
// (skipValues exists in msgpackr 2 but is missing from its type declarations)
const packrOptions: PackrOptions & { skipValues: unknown[] } = {
  useRecords: false,
  mapsAsObjects: true,
  skipValues: [undefined],
  encodeUndefinedAsNil: true,
};
const packr = new Packr(packrOptions);
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

// JSON has no bytes: A2A raw parts travel as {"$bytes": base64}, as ProtoJSON would encode them.
function jsonReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Uint8Array) return { $bytes: Buffer.from(value).toString("base64") };
  return value;
}
function jsonReviver(_key: string, value: unknown): unknown {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    const bytes = (value as { $bytes?: unknown }).$bytes;
    if (typeof bytes === "string" && Object.keys(value).length === 1) return new Uint8Array(Buffer.from(bytes, "base64"));
  }
  return value;
}

export function codecForContentType(contentType: string | undefined, fallback: CodecName): CodecName | undefined {
  if (!contentType) return fallback;
  if (contentType === CONTENT_TYPES.msgpack) return "msgpack";
  if (contentType === CONTENT_TYPES.json) return "json";
  return undefined;
}

/** Encodes a value the caller already holds as a typed, valid object: no validation on send, only on receipt. */
export function encode(value: unknown, codec: CodecName = "msgpack"): Uint8Array {
  if (codec === "json") return encoder.encode(JSON.stringify(value, jsonReplacer));
  return packr.pack(value);
}

/** Bytes to an untyped value; malformed bytes become MESSAGE_MALFORMED. */
export function decodeUnknown(bytes: Uint8Array, codec: CodecName = "msgpack"): Decoded<unknown> {
  try {
    if (codec === "json") return { ok: true, value: JSON.parse(decoder.decode(bytes), jsonReviver) };
    const value: unknown = packr.unpack(bytes);
    // msgpackr turns the never-used byte 0xc1 into a sentinel object instead of failing. 0xc1 never occurs in UTF-8, so
    // the (rare) walk for the sentinel runs only when the byte is there at all, e.g. inside binary data or numbers.
    if (bytes.indexOf(0xc1) !== -1 && containsNeverUsed(value)) {
      return { ok: false, error: new FleetError("MESSAGE_MALFORMED", "payload is not valid msgpack: it uses the never-used byte 0xc1", { cause: new TypeError("0xc1") }) };
    }
    return { ok: true, value };
  } catch (cause) {
    return { ok: false, error: new FleetError("MESSAGE_MALFORMED", `payload is not valid ${codec}`, { cause }) };
  }
}

function containsNeverUsed(value: unknown): boolean {
  if (value === C1) return true;
  if (Array.isArray(value)) return value.some(containsNeverUsed);
  if (value !== null && typeof value === "object" && !(value instanceof Uint8Array)) return Object.values(value).some(containsNeverUsed);
  return false;
}

export interface DecodeOptions {
  codec?: CodecName;
  maxBytes?: number;
}

/** Bytes to a value of the schema's type, or a typed error saying why not. */
export function decode<S extends z.ZodType>(schema: S, bytes: Uint8Array, options: DecodeOptions = {}): Decoded<z.infer<S>> {
  if (options.maxBytes !== undefined && bytes.length > options.maxBytes) {
    return {
      ok: false,
      error: new FleetError("MESSAGE_TOO_LARGE", `payload of ${bytes.length} bytes exceeds the maximum of ${options.maxBytes}`),
    };
  }
  const raw = decodeUnknown(bytes, options.codec);
  if (!raw.ok) return raw;
  const parsed = schema.safeParse(raw.value);
  if (parsed.success) return { ok: true, value: parsed.data };
  const details = issuesOf(parsed.error);
  const summary = details.map((d) => `${d.path}: ${d.message}`).join("; ");
  return { ok: false, error: new FleetError("MESSAGE_INVALID", `payload does not match the schema: ${summary}`, { details }) };
}
