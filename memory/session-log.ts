import { createHash } from "node:crypto";
import { headers, type MsgHdrs } from "@nats-io/nats-core";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { Logger } from "pino";
import { addDays, fleetDay, localParts, type LocalDate } from "../config/index.js";
import { CONTENT_TYPES, FleetError, HEADERS, SessionLogEntry, codecForContentType, decode, encode, readSubject, type CodecName, type FleetNames, nowOf, type Clock } from "../protocol/index.js";

/*
 * Session memory: what an agent did, one entry at a time, in the MEMLOG stream on one subject per agent and local day
 * (`<prefix>.memory.log.<agentId>.<yyyymmdd>`). The day is the fleet's, not UTC's, so "today" flips at the same local
 * midnight as budgets and quiet hours. Prompts load yesterday and today; the nightly distiller reads one day. Nothing here
 * deletes: the stream's max age (30 days) is the retention.
 */

/** Longer entries belong in MEMORY.md's distillation or in a task's artifacts; the log is read back into prompts. */
export const MAX_ENTRY_CHARS = 4000;
const DAY_PATTERN = /^\d{4}-\d{2}-\d{2}$/;
const AGENT_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export interface SessionLogOptions {
  js: JetStreamClient;
  jsm: JetStreamManager;
  names: FleetNames;
  /** the fleet's IANA time zone: it decides which day an entry belongs to */
  timeZone: string;
  codec: CodecName;
  clock?: Clock;
  /** told once per read that skipped messages; silent without one */
  log?: Logger;
}

export interface SessionLogAppend {
  agentId: string;
  kind: SessionLogEntry["kind"];
  text: string;
  taskId?: string | undefined;
  /** epoch ms; the injected clock when left out */
  at?: number | undefined;
}

export interface SessionLogRead {
  /** in stream order (the order they were appended) */
  entries: SessionLogEntry[];
  /** messages on the day's subject that did not decode as this agent's entry of this day: skipped, counted */
  malformed: number;
}

export class SessionLog {
  private readonly clock: () => number;

  constructor(private readonly options: SessionLogOptions) {
    this.clock = nowOf(options.clock);
  }

  /**
   * Appends one entry to the day it happened on. The Nats-Msg-Id is a hash of the content, so an append retried after a
   * lost ack (same agent, instant, kind, task and text) is stored once, within the stream's duplicate window (2 min).
   */
  async append(input: SessionLogAppend): Promise<void> {
    if (input.text.length > MAX_ENTRY_CHARS) {
      throw new FleetError("MEMORY_TOO_LARGE", `session log entry of ${input.text.length} characters exceeds ${MAX_ENTRY_CHARS}`);
    }
    assertAgentId(input.agentId);
    const at = input.at ?? this.clock();
    const parsed = SessionLogEntry.safeParse({
      agentId: input.agentId,
      day: fleetDay(at, this.options.timeZone),
      at,
      kind: input.kind,
      ...(input.taskId !== undefined ? { taskId: input.taskId } : {}),
      text: input.text,
    });
    if (!parsed.success) {
      const first = parsed.error.issues[0];
      throw new FleetError("MESSAGE_INVALID", `session log entry refused: ${first?.path.join(".") || "(root)"}: ${first?.message ?? "invalid"}`);
    }
    const entry = parsed.data;
    const h: MsgHdrs = headers();
    h.set(HEADERS.contentType, CONTENT_TYPES[this.options.codec]);
    try {
      await this.options.js.publish(this.subject(entry.agentId, entry.day), encode(entry, this.options.codec), { msgID: entryId(entry), headers: h });
    } catch (err) {
      throw FleetError.from(err);
    }
  }

  /** The agent's entries of one local day ("yyyy-mm-dd"), oldest first. */
  async read(agentId: string, day: string): Promise<SessionLogEntry[]> {
    return (await this.readDay(agentId, day)).entries;
  }

  /**
   * Reads one day through an ephemeral consumer filtered on that day's subject, deleted when done, so reading leaves
   * nothing on the server. It needs no stream info (which would list other agents' days to an agent) and stops at what
   * was pending when it began (later appends belong to the next read), never after an idle wait.
   */
  async readDay(agentId: string, day: string): Promise<SessionLogRead> {
    assertAgentId(agentId);
    if (!DAY_PATTERN.test(day)) throw new FleetError("MESSAGE_INVALID", `day "${day}" is not yyyy-mm-dd`);
    const stream = this.options.names.stream("MEMLOG");
    const out: SessionLogRead = { entries: [], malformed: 0 };
    try {
      for await (const m of readSubject(this.options.js, this.options.jsm, stream, this.subject(agentId, day))) {
        const entry = this.decodeEntry(m.data, m.contentType);
        if (entry && entry.agentId === agentId && entry.day === day) out.entries.push(entry);
        else out.malformed++;
      }
    } catch (err) {
      throw FleetError.from(err);
    }
    if (out.malformed > 0) this.options.log?.warn({ agentId, day, malformed: out.malformed }, "session log messages skipped");
    return out;
  }

  /** Yesterday's and today's entries in the fleet's time zone, oldest first: what a prompt loads automatically. */
  async recent(agentId: string): Promise<SessionLogEntry[]> {
    const now = this.clock();
    const today = fleetDay(now, this.options.timeZone);
    // the calendar day before, not now - 24 h: after a 23-hour day that would land two days back
    const yesterday = formatDay(addDays(localParts(now, this.options.timeZone), -1));
    const [before, current] = await Promise.all([this.read(agentId, yesterday), this.read(agentId, today)]);
    // stable: entries with the same instant keep the order they were appended in
    return [...before, ...current].sort((a, b) => a.at - b.at);
  }

  private subject(agentId: string, day: string): string {
    return this.options.names.memoryLog(agentId, day.replaceAll("-", ""));
  }

  private decodeEntry(data: Uint8Array, contentType: string | undefined): SessionLogEntry | undefined {
    const codec = codecForContentType(contentType, this.options.codec);
    if (!codec) return undefined;
    const decoded = decode(SessionLogEntry, data, { codec });
    return decoded.ok ? decoded.value : undefined;
  }
}

/** The dedup id: the same content is the same entry, whichever process retried it. */
export function entryId(entry: SessionLogEntry): string {
  const content = [entry.agentId, String(entry.at), entry.kind, entry.taskId ?? "", entry.text].join("\n");
  return `memlog.${entry.agentId}.${createHash("sha256").update(content).digest("hex").slice(0, 32)}`;
}

function assertAgentId(agentId: string): void {
  // the id is a subject token: a dot or wildcard would file the entry under another agent's subject, or several
  if (!AGENT_PATTERN.test(agentId)) throw new FleetError("MESSAGE_INVALID", `agent id "${agentId}" is not a valid subject token`);
}

const pad = (n: number, width: number): string => String(n).padStart(width, "0");

function formatDay(date: LocalDate): string {
  return `${pad(date.year, 4)}-${pad(date.month, 2)}-${pad(date.day, 2)}`;
}
