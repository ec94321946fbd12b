import { randomUUID } from "node:crypto";
import type { TierName } from "../protocol/index.js";
import type { Reservation } from "./budget-ledger.js";
import { roundUsd } from "./budget-state.js";

/*
 * A busy router's allowance: one reservation per agent and day, admitted in KV like any other (by compare-and-set on the
 * agent's key and the fleet's, so every router counts it), from which this router then reserves its calls in memory, with
 * no round trip. A call's worst case is drawn from the allowance's free part before the provider is called; its settle
 * moves what the call cost from the allowance to the spend, in the key's next batched write (the cap's total, spent +
 * reserved, does not change, so that write is bookkeeping and may wait). The free part is topped up in the background
 * before it runs out, and given back when the router goes quiet or stops.
 *
 * Why no cap can be passed: the allowance is granted only while it fits under the cap whole (spent + every live
 * reservation, other routers' allowances included, + the allowance ≤ cap), and a call draws only what is free in it;
 * a call the allowance cannot cover takes the per-call reservation (budget-ledger.ts), which is what every call did
 * before. So however many routers hold allowances, the cap is passed by at most one per-call reservation, as before.
 * A router that dies holding an allowance leaves it to expire into its worst case (the whole allowance is booked as
 * spent: its calls in flight may have been paid), so the allowance is small: `share` of the smaller cap.
 *
 * An allowance is taken only for an agent this router is calling often (`busyPerSecond`); an occasional call reserves on
 * its own, so a quiet fleet holds nothing and its records read exactly as before.
 */

export interface AllowanceOptions {
  /** the share of a cap (the agent's or the fleet's, whichever is smaller) one router may hold for one agent */
  share: number;
  /** an allowance worth holding covers at least this many of the call's worst case */
  minCalls?: number;
  /** calls for one agent per second in this router before it takes an allowance for that agent */
  busyPerSecond?: number;
  /** an allowance not drawn from for this long is given back */
  idleMs?: number;
}

/** What the ledger does for the allowance: the writes on the agent's and the fleet's key, batched with its own. */
export interface AllowanceLedger {
  now(): number;
  ttlMs: number;
  capOf(owner: string): number;
  /**
   * Applies `edit` to the reservation `id` on the agent's key and on the fleet's key of `day`; `edit` gets the record's
   * spend and live reservations (the fleet's or the agent's), and returns whether it changed anything. A refusal on one
   * key is the caller's to undo. `defer`: may ride along with the key's next write; `after`: not written before it.
   */
  edit(day: string, agentId: string, edit: AllowanceEdit, defer: boolean, after?: Promise<unknown>): Promise<boolean[]>;
}

/** One edit of a record's allowance entry; `committedUsd` is spent + every live reservation. */
export type AllowanceEdit = (record: EditableRecord, capUsd: number, now: number, fleet: boolean) => boolean;

export interface EditableRecord {
  spentUsd: number;
  committedUsd: number;
  entry(id: string): { usd: number; token: string; expiresAt: number } | undefined;
  lapsed(token: string): number | undefined;
  set(id: string, entry: { usd: number; token: string; expiresAt: number; tier: TierName }): void;
  remove(id: string): void;
  book(usd: number): void;
}

/** The edit view of a batch's working record (budget-ledger.ts): `reservedUsd` kept in step with `reservations`. */
export function editable(working: { record: { spentUsd: number; reservations: Record<string, { usd: number; token: string; expiresAt: number; tier: TierName }>; lapsed?: Record<string, number> | undefined }; reservedUsd: number }): EditableRecord {
  const reservations = working.record.reservations;
  return {
    get spentUsd() {
      return working.record.spentUsd;
    },
    get committedUsd() {
      return roundUsd(working.record.spentUsd + working.reservedUsd);
    },
    entry: (id) => reservations[id],
    lapsed: (token) => working.record.lapsed?.[token],
    set: (id, entry) => {
      working.reservedUsd = roundUsd(working.reservedUsd - (reservations[id]?.usd ?? 0) + entry.usd);
      reservations[id] = entry;
    },
    remove: (id) => {
      working.reservedUsd = roundUsd(Math.max(0, working.reservedUsd - (reservations[id]?.usd ?? 0)));
      delete reservations[id];
    },
    book: (usd) => {
      working.record.spentUsd = roundUsd(working.record.spentUsd + usd);
    },
  };
}

/** A call reserved from an allowance: settled through it, not as a reservation of its own. */
export type Drawn = Reservation & { allowance: string; allowanceId: string };

interface Held {
  day: string;
  agentId: string;
  /** the reservation id in KV, one per router, agent and day */
  id: string;
  token: string;
  /** what the KV entry holds once this router's queued changes are written */
  grantedUsd: number;
  /** the part no call is using */
  freeUsd: number;
  inFlight: number;
  lastDrawAt: number;
  expiresAt: number;
  growing: boolean;
  /** no grant is asked for before this (after a refusal: the cap has no room for one) */
  notBefore: number;
}

/** an entry left with less than a micro-dollar (rounding) is removed: it would otherwise stay until it expires */
const DUST_USD = 1e-6;
const DEFAULTS = { minCalls: 8, busyPerSecond: 20, idleMs: 2_000 };

export class AllowanceBook {
  private readonly held = new Map<string, Held>();
  private readonly recent = new Map<string, { since: number; calls: number }>();
  private readonly minCalls: number;
  private readonly busyPerSecond: number;
  private readonly idleMs: number;
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly grants = new Set<Promise<void>>();

  constructor(
    private readonly ledger: AllowanceLedger,
    private readonly options: AllowanceOptions,
  ) {
    this.minCalls = options.minCalls ?? DEFAULTS.minCalls;
    this.busyPerSecond = options.busyPerSecond ?? DEFAULTS.busyPerSecond;
    this.idleMs = options.idleMs ?? DEFAULTS.idleMs;
  }

  /** The call's worst case drawn from the agent's allowance, or undefined (none, or too little free): reserve it alone. */
  draw(agentId: string, tier: TierName, usd: number, id: string, day: string): Drawn | undefined {
    const now = this.ledger.now();
    const busy = this.count(agentId, now);
    const held = this.held.get(`${day}.${agentId}`);
    // a call must end (its tier's timeout) well before the allowance could expire under it
    if (held && held.freeUsd >= usd && held.expiresAt - now > this.ledger.ttlMs / 2) {
      held.freeUsd = roundUsd(held.freeUsd - usd);
      held.inFlight++;
      held.lastDrawAt = now;
      if (held.freeUsd < this.sizeOf(agentId) / 2) this.grow(held, usd);
      return { id, agentId, tier, usd, day, expiresAt: held.expiresAt, token: randomUUID(), allowance: held.token, allowanceId: held.id };
    }
    if (busy) {
      const cell = held ?? this.open(day, agentId, now);
      this.grow(cell, usd);
    }
    return undefined;
  }

  /** Books a drawn call's cost: the allowance shrinks by it and the spend grows by it, in the keys' next write. */
  async settle(drawn: Drawn, costUsd: number, after?: Promise<unknown>): Promise<void> {
    const held = this.held.get(`${drawn.day}.${drawn.agentId}`);
    if (held?.token === drawn.allowance) {
      held.inFlight--;
      held.freeUsd = roundUsd(held.freeUsd + Math.max(0, drawn.usd - costUsd));
      held.grantedUsd = roundUsd(Math.max(0, held.grantedUsd - costUsd));
    }
    if (costUsd === 0) return;
    const id = drawn.allowanceId;
    const renewedFrom = this.ledger.now();
    await this.ledger.edit(drawn.day, drawn.agentId, (record, _cap, now) => {
      const entry = record.entry(id);
      if (entry?.token === drawn.allowance) {
        const left = roundUsd(entry.usd - costUsd);
        if (left < DUST_USD && this.held.get(`${drawn.day}.${drawn.agentId}`)?.token !== drawn.allowance) record.remove(id);
        else record.set(id, { ...entry, usd: Math.max(0, left), expiresAt: now + this.ledger.ttlMs, tier: "premium" });
        record.book(costUsd);
      } else {
        // the entry is gone (expired, given back, or the record rebuilt from USAGE): nothing more is drawn from it
        this.lose(drawn.day, drawn.agentId, drawn.allowance);
      }
      if (entry?.token !== drawn.allowance && record.lapsed(drawn.allowance) === undefined) {
        // the allowance is gone (given back, or the record rebuilt from USAGE): the call is booked as spent
        record.book(costUsd);
      }
      // lapsed: it expired and was booked whole, this call included
      return true;
    }, true, after);
    // the entry was renewed by that write: the allowance may be drawn from for another ttl
    if (held?.token === drawn.allowance) held.expiresAt = Math.max(held.expiresAt, renewedFrom + this.ledger.ttlMs);
  }

  /** Stops drawing from an allowance KV no longer holds; its calls in flight still settle (as spend). */
  private lose(day: string, agentId: string, token: string): void {
    const held = this.held.get(`${day}.${agentId}`);
    if (held?.token !== token) return;
    held.freeUsd = 0;
    this.held.delete(`${day}.${agentId}`);
  }

  /** What this router holds free on a key: its own view of the budget does not count it as used. */
  freeOn(day: string, owner: string, fleet: boolean): number {
    let free = 0;
    for (const held of this.held.values()) if (held.day === day && (fleet || held.agentId === owner)) free += held.freeUsd;
    return roundUsd(free);
  }

  /** Gives back every free part now (the router is stopping). */
  async releaseAll(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    // a grant still under way would otherwise land after the release and be held by nobody until it expired
    await Promise.allSettled([...this.grants]);
    await Promise.all([...this.held.values()].map((held) => this.release(held)));
  }

  private count(agentId: string, now: number): boolean {
    const recent = this.recent.get(agentId);
    if (!recent || now - recent.since >= 1_000) {
      this.recent.set(agentId, { since: now, calls: 1 });
      return (recent?.calls ?? 0) >= this.busyPerSecond;
    }
    recent.calls++;
    return recent.calls >= this.busyPerSecond;
  }

  private sizeOf(agentId: string): number {
    return roundUsd(this.options.share * Math.min(this.ledger.capOf(agentId), this.ledger.capOf("fleet")));
  }

  private open(day: string, agentId: string, now: number): Held {
    const token = randomUUID();
    const held: Held = {
      // one entry per grant holder: a later allowance of this router never takes over an older one's entry
      day, agentId, id: `allowance.${agentId}.${token.slice(0, 13)}`, token, grantedUsd: 0, freeUsd: 0, inFlight: 0, lastDrawAt: now, expiresAt: 0, growing: false, notBefore: 0,
    };
    this.held.set(`${day}.${agentId}`, held);
    this.timer ??= setInterval(() => this.sweep(), this.idleMs).unref();
    return held;
  }

  /** Asks for one more allowance's worth on both keys, admitted only if it fits under both caps whole. */
  private grow(held: Held, callUsd: number): void {
    const size = this.sizeOf(held.agentId);
    const now = this.ledger.now();
    if (held.growing || now < held.notBefore || size < callUsd * this.minCalls || size <= 0) return;
    held.growing = true;
    const grant: AllowanceEdit = (record, capUsd, at) => {
      const entry = record.entry(held.id);
      if (held.grantedUsd > 0 && entry?.token !== held.token) {
        // this router holds it, KV no longer does (the record was rebuilt): it is lost, a new one is asked for later
        this.lose(held.day, held.agentId, held.token);
        return false;
      }
      if (roundUsd(record.committedUsd + size) > roundUsd(capUsd)) return false;
      const base = entry?.token === held.token ? entry.usd : 0;
      record.set(held.id, { usd: roundUsd(base + size), token: held.token, expiresAt: at + this.ledger.ttlMs, tier: "premium" });
      return true;
    };
    const granting: Promise<void> = this.ledger
      .edit(held.day, held.agentId, grant, false)
      .then(async (admitted) => {
        if (admitted.every(Boolean) && this.held.get(`${held.day}.${held.agentId}`) !== held) {
          // dropped while the grant was under way (lost, or given back): nobody would draw from it
          await this.shrink(held, size);
          return;
        }
        if (admitted.every(Boolean)) {
          held.grantedUsd = roundUsd(held.grantedUsd + size);
          held.freeUsd = roundUsd(held.freeUsd + size);
          held.expiresAt = this.ledger.now() + this.ledger.ttlMs;
          return;
        }
        held.notBefore = this.ledger.now() + 1_000;
        // one cap had room and the other did not: take back what the first admitted
        if (admitted.some(Boolean)) await this.shrink(held, size, admitted);
      })
      .catch(() => {
        held.notBefore = this.ledger.now() + 1_000;
      })
      .finally(() => {
        held.growing = false;
        this.grants.delete(granting);
      });
    this.grants.add(granting);
  }

  /** Takes `usd` off the allowance's entry on the keys marked in `on` (both by default); drops an entry left empty. */
  private async shrink(held: Held, usd: number, on: readonly boolean[] = [true, true]): Promise<void> {
    await this.ledger.edit(held.day, held.agentId, (record, _cap, _now, fleet) => {
      if (!on[fleet ? 1 : 0]) return false;
      const entry = record.entry(held.id);
      if (entry?.token !== held.token) return false;
      const left = roundUsd(entry.usd - usd);
      if (left < DUST_USD) record.remove(held.id);
      else record.set(held.id, { ...entry, usd: left, tier: "premium" });
      return true;
    }, false);
  }

  /**
   * Gives the free part back. The entry keeps the calls in flight and the costs whose settles are not written yet; those
   * settles take it down to nothing, and the one that empties it removes it.
   */
  private async release(held: Held): Promise<void> {
    const free = held.freeUsd;
    held.freeUsd = 0;
    held.grantedUsd = roundUsd(Math.max(0, held.grantedUsd - free));
    if (held.inFlight === 0) this.held.delete(`${held.day}.${held.agentId}`);
    if (free > 0) await this.shrink(held, free).catch(() => undefined);
  }

  /** Gives back what quiet agents hold (and a past day's allowances). */
  private sweep(): void {
    const now = this.ledger.now();
    for (const held of [...this.held.values()]) {
      if (held.growing || now - held.lastDrawAt < this.idleMs) continue;
      void this.release(held);
    }
    if (this.held.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}
