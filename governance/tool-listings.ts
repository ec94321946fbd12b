import type { KV } from "@nats-io/kv";
import type { Logger } from "pino";
import { encode, toolListingKey, type CodecName, type ToolDescription, type ToolListing } from "../protocol/index.js";

/**
 * A tool host's entries in KV `tools`: one per source it serves (`builtin.<host>`, `mcp.<server>.<host>`), rewritten
 * whenever that source's tools or availability change and deleted when the host stops. Writing is best effort: the
 * listing informs agents, governance and `fleet tools`, while the calls themselves are checked by the tool host whatever
 * the listing says, so a failed write costs a stale description, never a wrong decision by the host.
 */
export class ToolListings {
  private readonly written = new Set<string>();

  constructor(
    private readonly kv: KV,
    private readonly codec: CodecName,
    private readonly host: string,
    private readonly now: () => number,
    private readonly log: Logger,
  ) {}

  async publish(source: string, tools: readonly ToolDescription[], available: boolean): Promise<void> {
    const key = toolListingKey(source, this.host);
    const listing: ToolListing = { host: this.host, source, available, tools: [...tools], listedAt: this.now() };
    try {
      await this.kv.put(key, encode(listing, this.codec));
      this.written.add(key);
    } catch (err) {
      this.log.warn({ err, source }, "could not publish the tool listing; agents may not learn these tools");
    }
  }

  /** Deletes every entry this host wrote (it stops serving them). */
  async withdraw(): Promise<void> {
    for (const key of this.written) await this.kv.delete(key).catch((err: unknown) => this.log.warn({ err, key }, "could not withdraw a tool listing"));
    this.written.clear();
  }
}
