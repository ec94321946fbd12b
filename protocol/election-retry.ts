import { setTimeout as sleep } from "node:timers/promises";
import { errors as coreErrors, RequestError, type MsgHdrs, type Payload } from "@nats-io/nats-core";
import { JetStreamApiError, type JetStreamClient, type JetStreamPublishOptions, type PubAck } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { FleetError } from "./errors.js";

/**
 * On a JetStream cluster a stream or bucket has no leader for a few seconds after its leader's server dies or restarts:
 * a publish or KV write then times out, finds no responders or gets a 503. That is an election, not a failure of the
 * work: these wrappers retry such writes, with backoff, for a bounded window, and only past it fail with the typed,
 * retryable JETSTREAM_NO_LEADER. A write whose outcome is unknown (a timeout) is retried only where the retry cannot
 * double it: a publish with a Nats-Msg-Id (the stream's duplicate window drops the second copy), a KV write by revision
 * (a second copy fails its compare-and-set, which the caller reads as the conflict it already handles), or a delete.
 */

export interface ElectionRetryOptions {
  /** how long to keep trying before JETSTREAM_NO_LEADER; an election takes a few seconds, a quorum lost much longer */
  windowMs?: number;
  /** the first pause; each next one doubles, up to 2 s */
  firstDelayMs?: number;
}

const DEFAULT_WINDOW_MS = 20_000;

/** Whether `err` says "no leader right now" rather than "refused": worth another try once a leader is elected. */
export function isElectionError(err: unknown, options: { outcomeUnknownIsSafe: boolean } = { outcomeUnknownIsSafe: true }): boolean {
  // a publish's "no responders" (nats.js names it JetStreamNotEnabled and does not export the class): nothing was stored
  if (err instanceof Error && err.constructor.name === "JetStreamNotEnabled") return true;
  if (err instanceof coreErrors.NoRespondersError) return true;
  if (err instanceof RequestError && err.isNoResponders()) return true;
  // 503: "JetStream system temporarily unavailable", "no suitable peers": the request was not carried out
  if (err instanceof JetStreamApiError) return err.status === 503 || err.code === 10008;
  if (err instanceof coreErrors.TimeoutError || (err instanceof RequestError && err.cause instanceof coreErrors.TimeoutError)) return options.outcomeUnknownIsSafe;
  return false;
}

/** Runs `attempt` until it succeeds, fails for another reason, or the window is over (then JETSTREAM_NO_LEADER). */
export async function retryThroughElection<T>(
  operation: string,
  attempt: () => Promise<T>,
  options: ElectionRetryOptions & { outcomeUnknownIsSafe?: boolean } = {},
): Promise<T> {
  const deadline = Date.now() + (options.windowMs ?? DEFAULT_WINDOW_MS);
  let delay = options.firstDelayMs ?? 100;
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      if (!isElectionError(err, { outcomeUnknownIsSafe: options.outcomeUnknownIsSafe ?? true })) throw err;
      if (Date.now() + delay > deadline) {
        throw new FleetError("JETSTREAM_NO_LEADER", `${operation}: no JetStream leader answered within ${options.windowMs ?? DEFAULT_WINDOW_MS} ms`, { cause: err });
      }
      await sleep(delay * (0.75 + Math.random() / 2));
      delay = Math.min(delay * 2, 2_000);
    }
  }
}

function hasMsgId(opts: Partial<JetStreamPublishOptions> | undefined): boolean {
  if (!opts) return false;
  if (opts.msgID) return true;
  const headers: MsgHdrs | undefined = opts.headers;
  return headers?.has("Nats-Msg-Id") ?? false;
}

/** `js` whose `publish` rides out elections; everything else is `js` itself. */
export function electionSafeJetStream(js: JetStreamClient, options: ElectionRetryOptions = {}): JetStreamClient {
  const publish = (subject: string, data?: Payload, opts?: Partial<JetStreamPublishOptions>): Promise<PubAck> =>
    retryThroughElection(`publish to ${subject}`, () => js.publish(subject, data, opts), { ...options, outcomeUnknownIsSafe: hasMsgId(opts) });
  return new Proxy(js, {
    get(target, prop, receiver) {
      if (prop === "publish") return publish;
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/**
 * `kv` whose reads and writes ride out elections. An unconditional `put` is retried after a timeout too: writing the same
 * value twice leaves the same value. A `create` or `update` retried after a timeout may find that its first attempt
 * landed: the retry then fails its compare-and-set against its own write, so the key is read back, and holding the
 * bytes this call wrote, the write succeeded at that revision (anything else is the caller's conflict, as before).
 */
export function electionSafeKv(kv: KV, bucket: string, options: ElectionRetryOptions = {}): KV {
  const wrapped = new Set(["get", "put", "delete", "purge", "status"]);
  const compareAndSet = async (op: "create" | "update", key: string, data: Payload, attempt: () => Promise<number>): Promise<number> => {
    let attempts = 0;
    try {
      return await retryThroughElection(`KV ${bucket} ${op}`, () => (attempts++, attempt()), options);
    } catch (err) {
      if (attempts < 2 || !(err instanceof JetStreamApiError) || err.code !== WRONG_LAST_SEQUENCE) throw err;
      const current = await retryThroughElection(`KV ${bucket} get`, () => kv.get(key), options);
      const wrote = typeof data === "string" ? new TextEncoder().encode(data) : data;
      if (current?.operation === "PUT" && sameBytes(current.value, wrote)) return current.revision;
      throw err;
    }
  };
  return new Proxy(kv, {
    get(target, prop, receiver) {
      if (prop === "create") return (key: string, data: Payload, ...rest: unknown[]) => compareAndSet("create", key, data, () => (target.create as (...a: unknown[]) => Promise<number>).call(target, key, data, ...rest));
      if (prop === "update") return (key: string, data: Payload, ...rest: unknown[]) => compareAndSet("update", key, data, () => (target.update as (...a: unknown[]) => Promise<number>).call(target, key, data, ...rest));
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== "function") return value;
      const fn = value as (...args: unknown[]) => Promise<unknown>;
      if (typeof prop !== "string" || !wrapped.has(prop)) return fn.bind(target);
      return (...args: unknown[]) => retryThroughElection(`KV ${bucket} ${prop}`, () => fn.apply(target, args), options);
    },
  });
}

/** JetStream's "wrong last sequence": a compare-and-set that found another revision */
const WRONG_LAST_SEQUENCE = 10071;

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
