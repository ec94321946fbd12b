import type { KV, KvEntry } from "@nats-io/kv";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { z } from "zod";
import { decode, encode, FleetError, TierName, type BudgetState, type BudgetView } from "../protocol/index.js";
import { budgetStateOf, roundUsd, stricter } from "./budget-machine.js";
import { fleetDay } from "./fleet-day.js";

/**
 * The daily budgets in KV, shared by every router process: one key per agent and day (`<day>.<agentId>`) and one for
 * the whole fleet (`<day>.fleet`). The day is the fleet's local date, so the keys change at local midnight: that is the
 * reset, and the bucket's TTL clears old days.
 *
 * A call's worst-case cost is reserved before it and settled after it. Both are compare-and-set writes on the key's
 * revision, and admission is judged on spent + live reservations before this one, so however many routers race, a cap
 * is passed by at most the one reservation admitted just below it (and, at the cap, by the nano grace).
 *
 * Idempotency without a second store: reserving an id that is already live returns that reservation and counts it
 * once. Every reservation also gets a random token, and settling leaves the token as a tombstone (`settled`), so a
 * retried settle does not book the spend twice. The tombstone is the token, not the id, because callers reuse ids: the
 * model router names attempts `<callId>.<n>` from 0 on every call, so a retried call reserves `<callId>.0` again, and
 * that is a new call whose cost must be booked. Tombstones are kept for the reservation TTL after the settle rather
 * than all day: a retried settle comes seconds after the first, and a whole day of them on the fleet key would grow
 * every write (and every CAS) with the fleet's call count.
 */

export const ReservationEntry = z.object({
  usd: z.number().nonnegative(),
  tier: TierName,
  /** epoch ms after which a router that never settled is presumed dead and the reservation no longer counts */
  expiresAt: z.number(),
  /** tells this reservation from an earlier, settled one under the same id */
  token: z.string(),
});
export type ReservationEntry = z.infer<typeof ReservationEntry>;

/** The value under `<day>.<agentId>` and `<day>.fleet` (JSON, so `nats kv get` shows it as is). */
export const BudgetRecord = z.object({
  day: z.string(),
  spentUsd: z.number().nonnegative(),
  reservations: z.record(z.string(), ReservationEntry),
  /** settled reservation token → epoch ms when the tombstone may be forgotten */
  settled: z.record(z.string(), z.number()).default({}),
});
export type BudgetRecord = z.infer<typeof BudgetRecord>;

/** What `reserve` hands back and `settle`/`release` take: enough to find both keys again, even after midnight. */
export interface Reservation {
  id: string;
  agentId: string;
  tier: TierName;
  usd: number;
  /** the day it was reserved on: it is settled there, so a call that runs over midnight does not leak into the next day */
  day: string;
  expiresAt: number;
  token: string;
}

export type ReserveResult =
  | { ok: true; reservation: Reservation }
  /** `exhausted`: even nano is refused (spend has passed the cap plus the nano grace); otherwise only nano may run */
  | { ok: false; state: BudgetState; exhausted: boolean };

export interface BudgetLedgerOptions {
  kv: KV;
  timeZone: string;
  fleetCapUsd: number;
  agentCapsUsd: Record<string, number>;
  downgradeAt: number;
  nanoGrace: number;
  reservationTtlMs: number;
  clock?: () => number;
  /** reservation tokens; default randomUUID */
  newToken?: () => string;
}

const FLEET = "fleet";
const MAX_ATTEMPTS = 50;

type Verdict = { kind: "admitted" } | { kind: "known"; entry: ReservationEntry } | { kind: "refused"; state: BudgetState; exhausted: boolean };
/** A change to one record: `next` undefined means nothing to write. */
type Change<R> = { next: BudgetRecord | undefined; result: R };

export class BudgetLedger {
  private readonly clock: () => number;

  constructor(private readonly o: BudgetLedgerOptions) {
    this.clock = o.clock ?? Date.now;
    if (!(o.reservationTtlMs > 0)) throw new RangeError("reservationTtlMs must be positive");
    // `<day>.fleet` is the fleet's key: an agent of that name would share it
    if (Object.hasOwn(o.agentCapsUsd, FLEET)) throw new FleetError("CONFIG_INVALID", `"${FLEET}" cannot be an agent id: it names the fleet's budget`);
  }

  async view(agentId: string): Promise<{ agent: BudgetView; fleet: BudgetView; state: BudgetState }> {
    const now = this.clock();
    const day = fleetDay(now, this.o.timeZone);
    const [agent, fleet] = await Promise.all([this.viewOf(day, agentId, now), this.viewOf(day, FLEET, now)]);
    return { agent, fleet, state: stricter(agent.state, fleet.state) };
  }

  async views(agentIds: readonly string[]): Promise<{ day: string; fleet: BudgetView; agents: Record<string, BudgetView> }> {
    const now = this.clock();
    const day = fleetDay(now, this.o.timeZone);
    const [fleet, ...agents] = await Promise.all([this.viewOf(day, FLEET, now), ...agentIds.map((id) => this.viewOf(day, id, now))]);
    return { day, fleet: fleet!, agents: Object.fromEntries(agentIds.map((id, i) => [id, agents[i]!])) };
  }

  /**
   * Reserves `usd` for a call at `tier` on the agent's key, then on the fleet's; a refusal by the fleet undoes the
   * agent's reservation. The caller has already downgraded the tier for the state it saw; the ledger only enforces
   * the cap (nano-only at it, nothing past the grace).
   */
  async reserve(agentId: string, tier: TierName, usd: number, reservationId: string): Promise<ReserveResult> {
    if (!(usd >= 0 && Number.isFinite(usd))) throw new RangeError(`a reservation must be a finite, non-negative amount, not ${usd}`);
    const now = this.clock();
    const candidate: Reservation = {
      id: reservationId, agentId, tier, usd: roundUsd(usd), day: fleetDay(now, this.o.timeZone),
      expiresAt: now + this.o.reservationTtlMs, token: (this.o.newToken ?? randomUUID)(),
    };
    const agentVerdict = await this.admit(candidate, agentId);
    if (agentVerdict.kind === "refused") return { ok: false, state: agentVerdict.state, exhausted: agentVerdict.exhausted };
    // a retried reserve gets the live reservation back, token and all, so that settling either settles the one
    const reservation = agentVerdict.kind === "known" ? { ...candidate, ...agentVerdict.entry } : candidate;
    const fleetVerdict = await this.admit(reservation, FLEET);
    if (fleetVerdict.kind === "refused") {
      // only undo what this call wrote: a reservation that was already there belongs to an earlier, live attempt
      if (agentVerdict.kind === "admitted") await this.undo(reservation);
      return { ok: false, state: fleetVerdict.state, exhausted: fleetVerdict.exhausted };
    }
    return { ok: true, reservation };
  }

  /**
   * Books what the call really cost on both keys of the reservation's day and drops the reservation. A reservation
   * that expired (or that this key never saw) is still booked, because the money was spent; a settled one is not.
   */
  async settle(reservation: Reservation, actualUsd: number): Promise<void> {
    if (!(actualUsd >= 0 && Number.isFinite(actualUsd))) throw new RangeError(`a settled cost must be finite and non-negative, not ${actualUsd}`);
    // agent first, as in reserve; each key is idempotent on its own, so a settle retried after a crash between the two
    // writes books the fleet's half without booking the agent's twice
    for (const owner of [reservation.agentId, FLEET]) {
      await this.change(`${reservation.day}.${owner}`, reservation.day, (record, now): Change<void> => {
        if (record.settled[reservation.token] !== undefined) return { next: undefined, result: undefined };
        const reservations = withoutReservation(record, reservation);
        const settled = { ...record.settled, [reservation.token]: now + this.o.reservationTtlMs };
        return { next: { ...record, spentUsd: roundUsd(record.spentUsd + actualUsd), reservations, settled }, result: undefined };
      });
    }
  }

  /** The call did not happen (or cost nothing): settle with 0. */
  async release(reservation: Reservation): Promise<void> {
    await this.settle(reservation, 0);
  }

  private capOf(owner: string): number {
    if (owner === FLEET) return this.o.fleetCapUsd;
    const cap = this.o.agentCapsUsd[owner];
    if (cap === undefined) throw new FleetError("MESSAGE_INVALID", `no daily cap for agent "${owner}" in this fleet`);
    return cap;
  }

  private async viewOf(day: string, owner: string, now: number): Promise<BudgetView> {
    const capUsd = this.capOf(owner);
    const { record } = await this.read(`${day}.${owner}`, day);
    const reservedUsd = reservedOf(live(record, now));
    return { spentUsd: record.spentUsd, reservedUsd, capUsd, state: budgetStateOf(record.spentUsd + reservedUsd, capUsd, this.o.downgradeAt) };
  }

  private admit(reservation: Reservation, owner: string): Promise<Verdict> {
    const capUsd = this.capOf(owner);
    return this.change(`${reservation.day}.${owner}`, reservation.day, (record, now): Change<Verdict> => {
      const current = live(record, now);
      const known = current.reservations[reservation.id];
      // a retried reserve: counted once (an id that was settled is free again; see the tombstones above)
      if (known) return { next: undefined, result: { kind: "known", entry: known } };
      const committed = roundUsd(current.spentUsd + reservedOf(current));
      const state = budgetStateOf(committed, capUsd, this.o.downgradeAt);
      if (state === "nanoOnly") {
        const withinGrace = committed < roundUsd(capUsd * (1 + this.o.nanoGrace));
        if (!withinGrace || reservation.tier !== "nano") return { next: undefined, result: { kind: "refused", state, exhausted: !withinGrace } };
      }
      const entry: ReservationEntry = { usd: reservation.usd, tier: reservation.tier, expiresAt: reservation.expiresAt, token: reservation.token };
      return { next: { ...current, reservations: { ...current.reservations, [reservation.id]: entry } }, result: { kind: "admitted" } };
    });
  }

  /** Takes back a reservation this call just made, leaving no tombstone, so the id can be reserved again. */
  private async undo(reservation: Reservation): Promise<void> {
    await this.change(`${reservation.day}.${reservation.agentId}`, reservation.day, (record): Change<void> => {
      if (record.reservations[reservation.id]?.token !== reservation.token) return { next: undefined, result: undefined };
      return { next: { ...record, reservations: withoutReservation(record, reservation) }, result: undefined };
    });
  }

  /**
   * Reads, decides and writes by CAS until the write lands on the revision it read. Losers back off for a short random
   * time (growing with the attempt) so that a crowd of routers on one fleet key spreads out instead of colliding again.
   */
  private async change<R>(key: string, day: string, decide: (record: BudgetRecord, now: number) => Change<R>): Promise<R> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (attempt > 0) await sleep(Math.random() * Math.min(64, 2 ** attempt));
      const { record, revision } = await this.read(key, day);
      const now = this.clock();
      const { next, result } = decide(record, now);
      if (!next) return result;
      // expired reservations and forgotten tombstones go on every write, so a key never grows with dead routers' calls
      const bytes = encode(live(next, now), "json");
      try {
        // revision 0: nothing was ever written under the key, so a create, which fails if another router got there first
        if (revision === 0) await this.o.kv.create(key, bytes);
        else await this.o.kv.update(key, bytes, revision);
        return result;
      } catch (err) {
        if (!isWrongRevision(err)) throw FleetError.from(err);
      }
    }
    throw new FleetError("CONFLICT", `budget ${key}: too many concurrent updates`);
  }

  private async read(key: string, day: string): Promise<{ record: BudgetRecord; revision: number }> {
    const entry: KvEntry | null = await this.o.kv.get(key);
    if (!entry) return { record: empty(day), revision: 0 };
    if (entry.operation !== "PUT") return { record: empty(day), revision: entry.revision };
    const decoded = decode(BudgetRecord, entry.value, { codec: "json" });
    // Fail closed: reading an unreadable record as empty would hand out the whole cap again. An operator who wants the
    // day's calls back deletes the key (`nats kv del budgets <key>`).
    if (!decoded.ok) throw new FleetError(decoded.error.code, `budget ${key} is unreadable: ${decoded.error.message}`, { cause: decoded.error });
    return { record: decoded.value, revision: entry.revision };
  }
}

function empty(day: string): BudgetRecord {
  return { day, spentUsd: 0, reservations: {}, settled: {} };
}

/** The record without reservations that expired and tombstones past their keeping; `<=`: expiresAt is the end. */
function live(record: BudgetRecord, now: number): BudgetRecord {
  const reservations = Object.fromEntries(Object.entries(record.reservations).filter(([, r]) => r.expiresAt > now));
  const settled = Object.fromEntries(Object.entries(record.settled).filter(([, forgetAt]) => forgetAt > now));
  return { ...record, reservations, settled };
}

/** The reservations without this one; one with its id but another token is a later attempt and stays. */
function withoutReservation(record: BudgetRecord, reservation: Reservation): Record<string, ReservationEntry> {
  const reservations = { ...record.reservations };
  if (reservations[reservation.id]?.token === reservation.token) delete reservations[reservation.id];
  return reservations;
}

function reservedOf(record: BudgetRecord): number {
  return roundUsd(Object.values(record.reservations).reduce((sum, r) => sum + r.usd, 0));
}

function isWrongRevision(err: unknown): boolean {
  return err instanceof Error && /wrong last sequence/i.test(err.message);
}
