import type { z } from "zod";
import { decode, type CodecName } from "../../protocol/index.js";

/** A record decodes with the fleet's codec; a record written by a process on the other codec still shows. */
export function decodeRecord<S extends z.ZodType>(schema: S, bytes: Uint8Array, codec: CodecName): z.infer<S> | undefined {
  for (const c of codec === "json" ? (["json", "msgpack"] as const) : (["msgpack", "json"] as const)) {
    const d = decode(schema, bytes, { codec: c });
    if (d.ok) return d.value;
  }
  return undefined;
}
