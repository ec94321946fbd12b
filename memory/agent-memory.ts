import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { z } from "zod";
import { FleetError, decode, encode, type CodecName, nowOf, type Clock } from "../protocol/index.js";

/*
 * Agent memory: each agent's MEMORY.md, a short list of one-line facts read into every prompt. It lives in the KV bucket
 * `memory` under the agent's id, as a record rather than markdown text, so the cap and the line rules are checked on
 * structure instead of re-parsed from prose. Every write is a compare-and-set on the key's revision: the agent and the
 * nightly distiller both write it, and neither may silently undo the other. The cap is enforced here, on every write,
 * because this class is the only writer; a caller that wants room must drop lines itself (the distiller drops the oldest).
 */

/** a MEMORY.md line is read into every prompt: one short line, not a document */
export const MAX_MEMORY_LINE_CHARS = 500;
/** how many replacements the record remembers (the latest ones), so a person can see what a distillation overwrote */
export const MAX_REPLACED = 50;
const MAX_APPEND_ATTEMPTS = 5;
/** agent ids are subject tokens; other keys in the bucket (the distiller's `distilled.<agent>.<day>`) have dots */
const AGENT_KEY = /^[A-Za-z0-9_-]{1,64}$/;

export const MemoryReplacement = z.object({ old: z.string(), new: z.string(), at: z.number() });
export type MemoryReplacement = z.infer<typeof MemoryReplacement>;

/** What is stored under `<agentId>`. No length limits here: a record written under a larger cap must stay readable. */
export const MemoryRecord = z.object({
  agentId: z.string(),
  lines: z.array(z.string()),
  /** epoch ms of the last write */
  updatedAt: z.number(),
  replaced: z.array(MemoryReplacement).optional(),
});
export type MemoryRecord = z.infer<typeof MemoryRecord>;

export interface AgentMemoryState {
  lines: string[];
  /** the KV revision to pass to `write`; 0 when the agent has no MEMORY.md */
  revision: number;
  /** the latest replacements, oldest first */
  replaced: MemoryReplacement[];
}

export interface AgentMemoryOptions {
  /** the fleet's `memory` bucket */
  kv: KV;
  /** memory.maxAgentLines */
  maxLines: number;
  codec?: CodecName;
  clock?: Clock;
}

export class AgentMemory {
  private readonly codec: CodecName;
  private readonly clock: () => number;

  constructor(private readonly options: AgentMemoryOptions) {
    this.codec = options.codec ?? "msgpack";
    this.clock = nowOf(options.clock);
  }

  get maxLines(): number {
    return this.options.maxLines;
  }

  /** The agent's MEMORY.md; a record that does not decode is MESSAGE_INVALID rather than an empty memory. */
  async read(agentId: string): Promise<AgentMemoryState> {
    assertAgentId(agentId);
    const entry = await this.options.kv.get(agentId);
    if (!entry || entry.operation !== "PUT") return { lines: [], revision: 0, replaced: [] };
    const record = this.decodeRecord(entry.value);
    if (!record.ok) throw new FleetError("MESSAGE_INVALID", `MEMORY.md of ${agentId} does not decode: ${record.error.message}`, { cause: record.error });
    return { lines: record.value.lines, revision: entry.revision, replaced: record.value.replaced ?? [] };
  }

  /**
   * Replaces the agent's lines if the key is still at `expectedRevision` (0: only if it has none) and returns the new
   * revision. Refused before anything is written: more than maxLines lines or a line over 500 characters
   * (MEMORY_TOO_LARGE), a blank or multi-line line (MESSAGE_INVALID); a lost race is CONFLICT (read again, retry).
   * `replaced` are this write's replacements; they join the record's history, which keeps the latest 50.
   */
  async write(agentId: string, lines: readonly string[], expectedRevision: number, replaced: readonly MemoryReplacement[] = []): Promise<number> {
    assertAgentId(agentId);
    this.check(agentId, lines);
    if (!Number.isInteger(expectedRevision) || expectedRevision < 0) {
      throw new FleetError("MESSAGE_INVALID", `expected revision ${expectedRevision} is not a revision`);
    }
    const history = expectedRevision === 0 ? [] : await this.history(agentId, expectedRevision);
    const record: MemoryRecord = { agentId, lines: [...lines], updatedAt: this.clock(), replaced: [...history, ...replaced].slice(-MAX_REPLACED) };
    const bytes = encode(record, this.codec);
    try {
      return expectedRevision === 0 ? await this.options.kv.create(agentId, bytes) : await this.options.kv.update(agentId, bytes, expectedRevision);
    } catch (err) {
      if (isWrongRevision(err)) {
        throw new FleetError("CONFLICT", `MEMORY.md of ${agentId} changed since revision ${expectedRevision}`, { cause: err });
      }
      throw FleetError.from(err);
    }
  }

  /**
   * Adds one line at the end, re-reading and retrying when another writer got in first. A line already present is not
   * added twice (an append retried after a lost reply stays one line). Full: MEMORY_TOO_LARGE, nothing written.
   */
  async append(agentId: string, line: string): Promise<number> {
    this.check(agentId, [line]);
    for (let attempt = 1; ; attempt++) {
      const current = await this.read(agentId);
      if (current.lines.includes(line)) return current.revision;
      if (current.lines.length >= this.options.maxLines) {
        throw new FleetError("MEMORY_TOO_LARGE", `MEMORY.md of ${agentId} is full (${current.lines.length} of ${this.options.maxLines} lines): replace or drop a line first`);
      }
      try {
        return await this.write(agentId, [...current.lines, line], current.revision);
      } catch (err) {
        if (!(err instanceof FleetError && err.code === "CONFLICT") || attempt >= MAX_APPEND_ATTEMPTS) throw err;
      }
    }
  }

  /** The ids of agents that have a MEMORY.md, sorted; the bucket's other keys are not agents' and are skipped. */
  async list(): Promise<string[]> {
    const ids: string[] = [];
    for await (const key of await this.options.kv.keys()) if (AGENT_KEY.test(key)) ids.push(key);
    return ids.sort();
  }

  private check(agentId: string, lines: readonly string[]): void {
    assertAgentId(agentId);
    if (lines.length > this.options.maxLines) {
      throw new FleetError("MEMORY_TOO_LARGE", `MEMORY.md of ${agentId} would have ${lines.length} lines; the cap is ${this.options.maxLines}`);
    }
    lines.forEach((line, i) => {
      if (line.length > MAX_MEMORY_LINE_CHARS) {
        throw new FleetError("MEMORY_TOO_LARGE", `MEMORY.md line ${i + 1} of ${agentId} has ${line.length} characters; at most ${MAX_MEMORY_LINE_CHARS}`);
      }
      if (line.trim() === "" || /[\r\n]/.test(line)) {
        throw new FleetError("MESSAGE_INVALID", `MEMORY.md line ${i + 1} of ${agentId} is ${line.trim() === "" ? "blank" : "more than one line"}`, {
          details: [{ path: `lines[${i}]`, message: "must be one non-blank line" }],
        });
      }
    });
  }

  /** The replacement history at the revision being replaced; unreadable history is dropped rather than blocking the write. */
  private async history(agentId: string, revision: number): Promise<MemoryReplacement[]> {
    const entry = await this.options.kv.get(agentId);
    if (!entry || entry.operation !== "PUT") return [];
    if (entry.revision !== revision) {
      throw new FleetError("CONFLICT", `MEMORY.md of ${agentId} is at revision ${entry.revision}, not ${revision}`);
    }
    const record = this.decodeRecord(entry.value);
    return record.ok ? (record.value.replaced ?? []) : [];
  }

  /** The fleet's codec first, then the other: a fleet that switched codecs must still read what it wrote before. */
  private decodeRecord(bytes: Uint8Array) {
    const first = decode(MemoryRecord, bytes, { codec: this.codec });
    return first.ok ? first : decode(MemoryRecord, bytes, { codec: this.codec === "msgpack" ? "json" : "msgpack" });
  }
}

function assertAgentId(agentId: string): void {
  if (!AGENT_KEY.test(agentId)) throw new FleetError("MESSAGE_INVALID", `agent id "${agentId}" is not a valid key (letters, digits, '-', '_')`);
}

function isWrongRevision(err: unknown): boolean {
  if (err instanceof JetStreamApiError) {
    return err.code === JetStreamApiCodes.StreamWrongLastSequence || err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown;
  }
  return err instanceof Error && /wrong last sequence/i.test(err.message);
}

const HEADING = /^# MEMORY — (.+)$/;
const BULLET = "- ";

/** MEMORY.md as a person reads it: a heading naming the agent and one bullet per line, in order. */
export function toMarkdown(agentId: string, lines: readonly string[]): string {
  const body = lines.length > 0 ? lines.map((line) => `${BULLET}${line}`).join("\n") : "_(no lines yet)_";
  return `# MEMORY — ${agentId}\n\n${body}\n`;
}

/**
 * Reads `toMarkdown`'s output back: the heading's agent id and the bullets, each with exactly one "- " taken off (so a
 * line that itself starts with "- " survives). Blank lines, HTML comments and the empty marker are ignored; any other
 * text is MESSAGE_INVALID naming its line, because guessing what prose meant would put words in the agent's memory.
 */
export function fromMarkdown(markdown: string): { agentId: string | undefined; lines: string[] } {
  let agentId: string | undefined;
  const lines: string[] = [];
  markdown.split(/\r?\n/).forEach((text, i) => {
    const heading = HEADING.exec(text);
    if (heading && agentId === undefined && lines.length === 0) agentId = heading[1];
    else if (text.startsWith(BULLET)) lines.push(text.slice(BULLET.length));
    else if (text.trim() !== "" && text.trim() !== "_(no lines yet)_" && !/^<!--.*-->$/.test(text.trim())) {
      throw new FleetError("MESSAGE_INVALID", `MEMORY.md line ${i + 1} is neither the heading nor a "- " bullet: ${text.slice(0, 80)}`);
    }
  });
  return { agentId, lines };
}
