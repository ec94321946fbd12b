import { createHash } from "node:crypto";
import { codecForContentType, decodeUnknown, type CodecName } from "../protocol/index.js";
import { canonicalJson } from "./canonical-json.js";

/*
 * The audit trail's hash format. It is a contract with every record already written: changing it (or the canonical JSON
 * it uses, governance/canonical-json.ts) makes every existing record fail verification; a test pins both.
 *
 * hash = sha256 hex of the canonical JSON of the record without its `hash` and `sig` members (with `prevHash` and
 * `signer`: the signature is over the hash, so it cannot be inside it; a record without `sig` hashes as before). Canonical JSON: keys
 * sorted by UTF-16 code unit at every level, otherwise JSON.stringify's rules (toJSON honoured, undefined members dropped,
 * undefined array items and non-finite numbers as null), a bigint as its digits.
 */

export function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Whether two values are the same JSON value, whatever order their keys are in. */
export function sameJson(a: unknown, b: unknown): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

/**
 * The value as it will read back from the stream: plain JSON data. Records are normalised before hashing and encoding so
 * that what the verifier decodes hashes to exactly what the writer hashed (a Date, a Buffer or a bigint in a tool's output
 * would otherwise come back as something else).
 */
export function jsonValue(value: unknown): unknown {
  return JSON.parse(canonicalJson(value));
}

/** The hash of a record (any object): every member except `hash` itself and the signature over it. */
export function recordHash(record: object): string {
  const rest: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(record)) if (key !== "hash" && key !== "sig") rest[key] = value;
  return sha256Hex(canonicalJson(rest));
}

export interface StoredAuditMessage {
  data: Uint8Array;
  contentType?: string | undefined;
}

/** A stored message's payload as plain data, with the codec its Content-Type names (the fleet's codec when it names none). */
export function decodeStored(msg: StoredAuditMessage, fallback: CodecName): { ok: true; value: unknown } | { ok: false; reason: string } {
  const codec = codecForContentType(msg.contentType || undefined, fallback);
  if (!codec) return { ok: false, reason: `Content-Type ${msg.contentType} is not supported` };
  const decoded = decodeUnknown(msg.data, codec);
  return decoded.ok ? decoded : { ok: false, reason: decoded.error.message };
}

/**
 * The hash the next record links to: the stored `hash` member, or for a message that is not a record at all, the sha256
 * of its bytes (so the chain can continue past it, and the verifier, which uses the same rule, reports only the bad one).
 */
export function chainHashOf(msg: StoredAuditMessage, fallback: CodecName): string {
  const decoded = decodeStored(msg, fallback);
  if (decoded.ok && decoded.value !== null && typeof decoded.value === "object") {
    const hash: unknown = Reflect.get(decoded.value, "hash");
    if (typeof hash === "string" && hash !== "") return hash;
  }
  return sha256Hex(msg.data);
}
