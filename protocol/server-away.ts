import { ClosedConnectionError, ConnectionError, NoRespondersError, RequestError, TimeoutError, type NatsConnection } from "@nats-io/nats-core";
import { JetStreamApiError } from "@nats-io/jetstream";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { FleetError } from "./errors.js";

/*
 * What a process does while its NATS server is away (killed and being restarted, a partition): long-lived connections
 * reconnect forever (connect.ts), so nothing here gives up on the server. It only answers three questions: is the
 * server away right now, did this error come from its absence, and how does a stop end when there is nothing to drain
 * into.
 */

interface Presence {
  away: boolean;
  listeners: Set<() => void>;
}

const presence = new WeakMap<NatsConnection, Presence>();
/** the long-lived connections of this process, for a stop that must not wait on an absent server */
const live = new Set<NatsConnection>();

/** Called by connectNats for each long-lived connection: follows its disconnects and reconnects. */
export function trackServer(nc: NatsConnection): void {
  const state: Presence = { away: false, listeners: new Set() };
  presence.set(nc, state);
  live.add(nc);
  void nc.closed().finally(() => live.delete(nc));
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect") state.away = true;
      else if (s.type === "reconnect") state.away = false;
      else continue;
      for (const l of state.listeners) l();
    }
  })();
}

/** Whether this connection has lost its server and not found one again yet. */
export function isServerAway(nc: NatsConnection): boolean {
  return presence.get(nc)?.away ?? false;
}

/** Whether an error says only that the server was not there (a timeout, no responders, a closed connection). */
export function isServerAwayError(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; e instanceof Error && depth < 8; depth++) {
    if (e instanceof FleetError && e.code === "NATS_UNAVAILABLE") return true;
    if (e instanceof TimeoutError || e instanceof NoRespondersError || e instanceof ClosedConnectionError || e instanceof ConnectionError) return true;
    // a request under way when the connection dropped (a short-lived connection closes instead of reconnecting)
    if (e instanceof RequestError && /connection closed/.test(e.message)) return true;
    if (e instanceof JetStreamApiError && e.status === 503) return true; // a restarted server answers before its JetStream is back
    e = e.cause;
  }
  return false;
}

/**
 * Runs `step` until it succeeds, again after each failure that only says the server was away (after `pauseMs`);
 * any other failure is thrown. For start-up steps that a server restart may interrupt: the process waits instead of
 * exiting and being restarted by its supervisor.
 */
export async function retryWhileServerAway<T>(what: string, step: () => Promise<T>, options: { log: Logger; pauseMs?: number; signal?: AbortSignal }): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await step();
    } catch (err) {
      if (!isServerAwayError(err) || options.signal?.aborted) throw err;
      options.log.warn({ what, attempt, err: err instanceof Error ? err.message : String(err) }, "the NATS server is away; trying again");
      await sleep(options.pauseMs ?? 1_000, undefined, options.signal ? { signal: options.signal } : {});
    }
  }
}

/** What closeConnectionsWhenServerAway watches until disposed. */
export interface AwayWatch {
  /** resolves if (once) the connections were closed for want of a server */
  closed: Promise<void>;
  dispose(): void;
}

/**
 * For a process that is stopping: a drain, a KV delete or a request would wait for a server that may never come back
 * (it is down, or it died with the supervisor). From now on, every long-lived connection of this process that is or
 * becomes without a server is closed at once, which fails what waits on it so that the stop runs to its end; JetStream
 * redelivers whatever was not acknowledged once the server is back.
 */
export function closeConnectionsWhenServerAway(log: Logger): AwayWatch {
  let closing = false;
  let markClosed!: () => void;
  const closed = new Promise<void>((r) => (markClosed = r));
  const check = () => {
    if (closing || ![...live].some(isServerAway)) return;
    closing = true;
    log.warn({ connections: live.size }, "stopping while the NATS server is away: connections closed, not drained");
    void Promise.allSettled([...live].map((nc) => nc.close())).then(markClosed);
  };
  const watched = [...live].map((nc) => presence.get(nc)).filter((p): p is Presence => p !== undefined);
  for (const p of watched) p.listeners.add(check);
  check();
  return {
    closed,
    dispose: () => {
      for (const p of watched) p.listeners.delete(check);
    },
  };
}
