import { KvWatchInclude, type KV } from "@nats-io/kv";
import type { QueuedIterator } from "@nats-io/nats-core";
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/ajv";
import type { Logger } from "pino";
import { z } from "zod";
import { decode, FleetError, ToolListing, type CodecName, type RiskLevel, type ToolDescription } from "../protocol/index.js";
import type { ToolDefinition } from "./tool.js";

const validators = new AjvJsonSchemaValidator();

/**
 * The tools the tool hosts list in KV `tools` (those that appear at runtime: MCP servers' tools), kept current by a watch:
 * what an agent's model is told (description, input schema), the risk its AgentTools and the broker act on, and what
 * Sentinel judges a proposal of such a tool against. Several hosts may list one server: the latest listing of a tool
 * wins. A tool whose every listing is gone is gone here too.
 *
 * The definitions it gives describe tools that run elsewhere: their input is the listed JSON schema (checked with ajv,
 * exactly as the tool host checks it before the call), their handler refuses to run here.
 */
export class ToolDirectory {
  private readonly listings = new Map<string, ToolListing>();
  private tools = new Map<string, { description: ToolDescription; definition: ToolDefinition; listedAt: number }>();
  private readonly watches: QueuedIterator<unknown>[] = [];
  private readonly loops: Promise<void>[] = [];

  /** `filters`: KV key filters to follow (`mcp.<server>.*` per server an agent may use, `mcp.>` for all). */
  constructor(
    private readonly kv: KV,
    private readonly codec: CodecName,
    private readonly filters: readonly string[],
    private readonly log: Logger,
  ) {}

  /** Loads what is listed now, then follows changes. */
  async start(): Promise<void> {
    for (const filter of this.filters) {
      // the watch first, so nothing written between the load and the watch is missed
      const watch = await this.kv.watch({ key: filter, include: KvWatchInclude.UpdatesOnly });
      this.watches.push(watch);
      this.loops.push(
        (async () => {
          for await (const entry of watch) this.apply(entry.key, entry.operation === "PUT" ? entry.value : undefined);
        })().catch((err: unknown) => this.log.warn({ err, filter }, "tool listings no longer followed")),
      );
      for await (const key of await this.kv.keys(filter)) {
        const entry = await this.kv.get(key);
        if (entry?.operation === "PUT" && !this.listings.has(key)) this.apply(key, entry.value);
      }
    }
    this.rebuild();
  }

  async stop(): Promise<void> {
    for (const watch of this.watches.splice(0)) watch.stop();
    await Promise.allSettled(this.loops.splice(0));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  risk(name: string): RiskLevel | undefined {
    return this.tools.get(name)?.description.risk;
  }

  get(name: string): ToolDefinition | undefined {
    return this.tools.get(name)?.definition;
  }

  list(): ToolDefinition[] {
    return [...this.tools.values()].map((t) => t.definition);
  }

  private apply(key: string, value: Uint8Array | undefined): void {
    if (value === undefined) this.listings.delete(key);
    else {
      const decoded = decode(ToolListing, value, { codec: this.codec });
      if (!decoded.ok) {
        this.log.warn({ key, reason: decoded.error.message }, "a tool listing does not decode; ignored");
        return;
      }
      this.listings.set(key, decoded.value);
    }
    this.rebuild();
  }

  private rebuild(): void {
    const next = new Map<string, { description: ToolDescription; definition: ToolDefinition; listedAt: number }>();
    for (const listing of this.listings.values()) {
      for (const description of listing.tools) {
        const known = next.get(description.name);
        if (known && known.listedAt >= listing.listedAt) continue;
        const previous = this.tools.get(description.name);
        const same = previous && JSON.stringify(previous.description) === JSON.stringify(description);
        const definition = same ? previous.definition : definitionOf(description);
        if (definition) next.set(description.name, { description, definition, listedAt: listing.listedAt });
      }
    }
    this.tools = next;
  }
}

/** A listed tool as a definition to describe and judge, never to run (that is the tool host's). */
function definitionOf(d: ToolDescription): ToolDefinition | undefined {
  let validate: ReturnType<typeof validators.getValidator>;
  try {
    validate = validators.getValidator(isObject(d.inputSchema) ? d.inputSchema : {});
  } catch {
    return undefined;
  }
  const remote = async (): Promise<never> => {
    throw new FleetError("INTERNAL", `${d.name} runs on a tool host, not here`);
  };
  return {
    name: d.name,
    description: d.description,
    risk: d.risk,
    source: d.source,
    inputSchema: d.inputSchema,
    input: z.unknown().superRefine((value, ctx) => {
      const checked = validate(value);
      if (!checked.valid) ctx.addIssue({ code: "custom", message: `does not match the server's input schema: ${checked.errorMessage}` });
    }),
    handler: remote,
    ...(d.reversible ? { rollback: remote } : {}),
    ...(d.targetFields ? { targetFields: d.targetFields } : {}),
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
