import { z } from "zod";
import { FleetEvent } from "./autonomy.js";
import { decodeUnknown, type CodecName } from "./codec.js";
import { FleetError, issuesOf } from "./errors.js";

/*
 * What a sender may give for an event, and how it becomes a FleetEvent. Monitoring systems post their own shapes, so
 * only the fields the fleet reads are checked (by type and size); everything else is kept as the event's `body`. The
 * source is never the sender's to say: it comes from the subject or URL path. Missing `id` and `at` are filled in by
 * whoever stores or reads the event (the webhook, or the reader of a raw `nats pub`).
 */

export const EventInput = z
  .object({
    id: z.string().min(1).max(200).optional(),
    type: z.string().min(1).max(200).optional(),
    subject: z.string().min(1).max(500).optional(),
    summary: z.string().min(1).max(1000).optional(),
    body: z.unknown().optional(),
    /** epoch ms, or an ISO time */
    at: z.union([z.number().int().nonnegative(), z.iso.datetime({ offset: true })]).optional(),
  })
  .loose();
export type EventInput = z.infer<typeof EventInput>;

const KNOWN = new Set(["id", "source", "type", "subject", "summary", "body", "at"]);

/**
 * The FleetEvent a payload stands for, or the typed error that refuses it: MESSAGE_MALFORMED when it is not a JSON
 * object, MESSAGE_INVALID (with the field's path) when a known field has the wrong type or size or names another source.
 * `fallback` fills what the sender left out: an id and a time the caller can reproduce (a stream sequence, its timestamp).
 */
export function eventOf(source: string, payload: unknown, fallback: { id: string; at: number }): { ok: true; event: FleetEvent } | { ok: false; error: FleetError } {
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) {
    return { ok: false, error: new FleetError("MESSAGE_MALFORMED", "an event is a JSON object") };
  }
  const given = EventInput.safeParse(payload);
  if (!given.success) {
    const details = issuesOf(given.error);
    return { ok: false, error: new FleetError("MESSAGE_INVALID", `event refused: ${details.map((d) => `${d.path}: ${d.message}`).join("; ")}`, { details }) };
  }
  const claimed = given.data["source"];
  if (claimed !== undefined && claimed !== source) {
    return { ok: false, error: new FleetError("MESSAGE_INVALID", `event refused: source "${String(claimed)}" is not the source it was sent as ("${source}")`, { details: [{ path: "source", message: `must be "${source}" or omitted` }] }) };
  }
  const { id, type, subject, summary, body, at } = given.data;
  const rest = Object.fromEntries(Object.entries(given.data).filter(([key]) => !KNOWN.has(key)));
  const event = FleetEvent.safeParse({
    id: id ?? fallback.id,
    source,
    ...(type !== undefined ? { type } : {}),
    ...(subject !== undefined ? { subject } : {}),
    ...(summary !== undefined ? { summary } : {}),
    // the sender's own shape, when it gave no `body`: nothing it sent is lost
    ...(body !== undefined ? { body } : Object.keys(rest).length > 0 ? { body: rest } : {}),
    at: typeof at === "string" ? Date.parse(at) : (at ?? fallback.at),
  });
  if (!event.success) {
    const details = issuesOf(event.error);
    return { ok: false, error: new FleetError("MESSAGE_INVALID", `event refused: ${details.map((d) => `${d.path}: ${d.message}`).join("; ")}`, { details }) };
  }
  return { ok: true, event: event.data };
}

/**
 * An event as stored on `fleet.event.<source>`: msgpack or JSON by its Content-Type, and without one, JSON when it looks
 * like JSON (what `nats pub` sends) and the fleet's codec otherwise.
 */
export function eventFromStored(
  source: string,
  data: Uint8Array,
  contentType: string | undefined,
  codec: CodecName,
  fallback: { id: string; at: number },
): { ok: true; event: FleetEvent } | { ok: false; error: FleetError } {
  const decoded = decodeUnknown(data, storedCodec(data, contentType, codec));
  if (!decoded.ok) return decoded;
  return eventOf(source, decoded.value, fallback);
}

/**
 * The codec of a record another system may have published by hand (an event, a finding): its Content-Type when it says,
 * else JSON when the bytes look like JSON (what `nats pub` sends without headers), else the fleet's codec.
 */
export function storedCodec(data: Uint8Array, contentType: string | undefined, codec: CodecName): CodecName {
  if (contentType?.includes("json")) return "json";
  if (contentType?.includes("msgpack")) return "msgpack";
  const looksJson = data.length > 0 && [0x7b, 0x5b, 0x20, 0x09, 0x0a, 0x0d].includes(data[0]!);
  return looksJson ? "json" : codec;
}
