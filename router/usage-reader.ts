import type { JetStreamClient } from "@nats-io/jetstream";
import { dedupUsage } from "./cost-report.js";
import { fleetDay } from "../config/index.js";
import { codecForContentType, decode, readStream, UsageRecord, type CodecName, type FleetNames } from "../protocol/index.js";

/*
 * Reads the USAGE records of a time range back from the stream with protocol's readStream: an ordered consumer that
 * leaves no state on the server, so `fleet costs` can run as often as an operator likes, ending at the last sequence the
 * stream had when we began (records published while we read belong to the next report).
 */

/**
 * A record's `at` is the router's clock and the consumer starts by the server's clock; starting this much earlier keeps a
 * record whose router clock ran ahead. Records are then kept by their own `at`.
 */
const CLOCK_SKEW_MS = 60_000;

export interface UsageRead {
  /** records with since <= at < until, in stream order */
  records: UsageRecord[];
  /** messages that did not decode as a UsageRecord: skipped, counted */
  malformed: number;
}

export interface ReadUsageOptions {
  signal?: AbortSignal;
  /** only these USAGE subjects (e.g. one agent's, `fleet.usage.<agentId>.*`) */
  subject?: string;
}

/**
 * The USAGE records with `since <= at < until` (until: open-ended when omitted). Publishers set no Content-Type on
 * USAGE, so a message without one is tried as msgpack and then as JSON; the reader does not need the fleet's config.
 */
export async function readUsage(js: JetStreamClient, names: FleetNames, since: number, until?: number, options: ReadUsageOptions = {}): Promise<UsageRead> {
  const out: UsageRead = { records: [], malformed: 0 };
  for await (const m of readStream(js, names.stream("USAGE"), { fromTime: since - CLOCK_SKEW_MS, signal: options.signal, subject: options.subject })) {
    const record = decodeUsage(m.data, m.contentType);
    if (!record) out.malformed++;
    else if (record.at >= since && (until === undefined || record.at < until)) out.records.push(record);
  }
  return out;
}

function decodeUsage(data: Uint8Array, header: string | undefined): UsageRecord | undefined {
  const named = codecForContentType(header, "msgpack");
  if (header && !named) return undefined;
  const codecs: CodecName[] = header && named ? [named] : ["msgpack", "json"];
  for (const codec of codecs) {
    const decoded = decode(UsageRecord, data, { codec });
    if (decoded.ok) return decoded.value;
  }
  return undefined;
}

const HOUR = 3_600_000;

/**
 * What was paid on the fleet's `day` (by `agentId`, or by the whole fleet), summed from USAGE: the truth a budget record
 * is rebuilt from. Each call counted once (a record published twice is deduplicated by callId and attempt).
 */
export async function spentOnDay(js: JetStreamClient, names: FleetNames, timeZone: string, day: string, agentId?: string): Promise<number> {
  // a local day lies within UTC midnight ±14 h; records are then kept by their own local day
  const utcMidnight = Date.parse(`${day}T00:00:00Z`);
  const read = await readUsage(js, names, utcMidnight - 14 * HOUR, utcMidnight + 38 * HOUR, agentId ? { subject: names.usage(agentId, "*") } : {});
  return dedupUsage(read.records)
    .filter((r) => fleetDay(r.at, timeZone) === day && (agentId === undefined || r.agentId === agentId))
    .reduce((sum, r) => sum + r.costUsd, 0);
}
