import { headers as natsHeaders, type MsgHdrs } from "@nats-io/nats-core";
import { A2A_VERSION, CONTENT_TYPES, HEADERS } from "../../protocol/index.js";

/** The wire headers with some replaced: wireHeaders() returns a shared instance that must not be modified. */
export function headersWith(overrides: Record<string, string>): MsgHdrs {
  const h = natsHeaders();
  h.set(HEADERS.a2aVersion, A2A_VERSION);
  h.set(HEADERS.contentType, CONTENT_TYPES.msgpack);
  for (const [key, value] of Object.entries(overrides)) h.set(key, value);
  return h;
}
