import { createHash } from "node:crypto";
import { canonicalJson } from "../canonical-json.js";

/**
 * sha256 hex of the tool name and the canonical JSON of the input: two proposals with the same key would do exactly the
 * same thing. The NUL between them cannot occur in a tool name, so no tool/input pair can pose as another.
 */
export function actionKey(tool: string, input: unknown): string {
  return createHash("sha256").update(`${tool}\u0000${canonicalJson(input)}`).digest("hex");
}

/** Bytes of the input's JSON text as it travels (UTF-8). */
export function jsonBytes(input: unknown): number {
  return Buffer.byteLength(canonicalJson(input), "utf8");
}
