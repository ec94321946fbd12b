import { setTimeout as delay } from "node:timers/promises";
import type { Logger } from "pino";
import type { PeerConfig } from "../../config/index.js";
import { FleetError } from "../../protocol/index.js";
import type { PeerAnswer, PeerCallOptions, PeerClient, PeerRequest } from "./peer-client.js";

export interface PeerRetryOptions extends PeerCallOptions {
  retry: PeerConfig["retry"];
  log: Logger;
  /** injected so tests run the backoff on a simulated clock */
  sleep?: ((ms: number, signal?: AbortSignal) => Promise<void>) | undefined;
  /** told of each failed attempt before the wait: the delegating task records it, so a person sees it waiting */
  onRetry?: ((attempt: number, error: FleetError, waitMs: number) => Promise<void> | void) | undefined;
}

/** The wait before attempt `attempt + 1` (attempt counts from 1): the schedule's entry, its last once past the end. */
export function peerBackoffMs(retry: PeerConfig["retry"], attempt: number, error?: FleetError): number {
  const seconds = retry.backoffSeconds[Math.min(attempt - 1, retry.backoffSeconds.length - 1)] ?? 1;
  // a peer that says when to come back (Retry-After) is believed, within the schedule's longest wait
  const asked = error?.retryAfterMs;
  const longest = Math.max(...retry.backoffSeconds) * 1000;
  return asked !== undefined && asked > seconds * 1000 ? Math.min(asked, longest) : seconds * 1000;
}

/**
 * Asks a peer's skill until it answers, retrying what is retryable (PEER_UNAVAILABLE, PEER_TIMEOUT) with backoff up to
 * `retry.attempts` attempts. A task the peer already started is resumed (polled), not sent again; every attempt carries
 * the same messageId. After the last attempt the last typed error is thrown, its message saying how often it was tried.
 */
export async function askWithRetries(client: PeerClient, skill: string, request: PeerRequest, o: PeerRetryOptions): Promise<PeerAnswer & { attempts: number }> {
  const sleep = o.sleep ?? ((ms: number, signal?: AbortSignal) => delay(ms, undefined, signal ? { signal } : {}));
  let taskId = o.resumeTaskId;
  for (let attempt = 1; ; attempt++) {
    try {
      const answer = await client.ask(skill, request, {
        messageId: o.messageId,
        signal: o.signal,
        resumeTaskId: taskId,
        onTaskId: async (id) => {
          taskId = id;
          await o.onTaskId?.(id);
        },
      });
      return { ...answer, attempts: attempt };
    } catch (err) {
      const error = FleetError.from(err, "PEER_UNAVAILABLE");
      if (!error.retryable || o.signal?.aborted) throw error;
      if (attempt >= o.retry.attempts) {
        throw new FleetError(error.code, `${error.message} (gave up after ${attempt} attempt${attempt === 1 ? "" : "s"})`, { cause: error });
      }
      const waitMs = peerBackoffMs(o.retry, attempt, error);
      o.log.warn({ peer: client.name, skill, attempt, code: error.code, waitMs, taskId }, "peer call failed; retrying with backoff");
      await o.onRetry?.(attempt, error, waitMs);
      await sleep(waitMs, o.signal);
    }
  }
}
