import { createHash } from "node:crypto";
import type { KV } from "@nats-io/kv";
import type { z } from "zod";
import { decode, encode, FleetError, type CodecName } from "../../protocol/index.js";

/*
 * What a stateful tool remembers between calls (a feed's seen items, a target's uptime history, a directory's manifest),
 * in KV `toolstate`, one key per tool and subject. Records are read through their zod schema (a record written by an
 * older version, or by hand, is data to check), and written by revision so two tool hosts updating the same key do not
 * lose each other's change. Only tool hosts hold this bucket; a process that only describes tools (an agent) has none.
 */

const MAX_ATTEMPTS = 5;

export class ToolState {
  constructor(
    private readonly kv: KV | undefined,
    private readonly codec: CodecName,
  ) {}

  /** The key of `subject` (a URL, a path) for `kind`: hashed, since a URL holds characters a KV key may not. */
  static key(kind: string, subject: string): string {
    return `${kind}.${createHash("sha256").update(subject).digest("hex").slice(0, 40)}`;
  }

  private bucket(tool: string): KV {
    if (!this.kv) throw new FleetError("TOOL_UNAVAILABLE", `${tool} remembers its results in KV toolstate, which this process has not opened (run it on a tool host)`);
    return this.kv;
  }

  async get<S extends z.ZodType>(tool: string, key: string, schema: S): Promise<z.infer<S> | undefined> {
    const entry = await this.bucket(tool).get(key);
    if (!entry || entry.operation !== "PUT") return undefined;
    const decoded = decode(schema, entry.value, { codec: this.codec });
    // a record that no longer decodes is started over rather than failing every call after it
    return decoded.ok ? decoded.value : undefined;
  }

  /**
   * Reads the record, lets `change` compute the next one and writes it only if nobody wrote in between; on a lost race it
   * reads again. `change` returns the record to store and what the call answers.
   */
  async update<S extends z.ZodType, R>(tool: string, key: string, schema: S, change: (current: z.infer<S> | undefined) => { next: z.infer<S>; result: R }): Promise<R> {
    const kv = this.bucket(tool);
    for (let attempt = 1; ; attempt++) {
      const entry = await kv.get(key);
      const live = entry !== null && entry.operation === "PUT";
      const decoded = live ? decode(schema, entry.value, { codec: this.codec }) : undefined;
      const { next, result } = change(decoded?.ok ? decoded.value : undefined);
      const bytes = encode(next, this.codec);
      try {
        if (entry) await kv.update(key, bytes, entry.revision);
        else await kv.create(key, bytes);
        return result;
      } catch (err) {
        if (attempt >= MAX_ATTEMPTS) throw new FleetError("CONFLICT", `${tool}: lost ${MAX_ATTEMPTS} races to update ${key}`, { cause: err });
      }
    }
  }
}
