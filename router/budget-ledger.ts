import type { KV, KvEntry } from "@nats-io/kv";
import type { Logger } from "pino";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { decode, encode, FleetError, TierName, type BudgetState, type BudgetView, nowOf, type Clock } from "../protocol/index.js";
import { fleetDay, nextMidnight } from "../config/index.js";
import { budgetStateOf, roundUsd, stricter } from "./budget-state.js";
import { AllowanceBook, editable, type AllowanceEdit, type AllowanceOptions } from "./budget-allowance.js";

/**
 * The daily budgets in KV, shared by every router process: one key per agent and day (`<day>.<agentId>`) and one for
 * the whole fleet (`<day>.fleet`). The day is the fleet's local date, so the keys change at local midnight: that is the
 * reset, and the bucket's TTL clears old days.
 *
 * A call's worst-case cost is reserved before it and settled after it. Both are compare-and-set writes on the key's
 * revision, and admission is judged on spent + live reservations before this one, so however many routers race, a cap
 * is passed by at most the one reservation admitted just below it (and, at the cap, by the nano grace).
 *
 * Idempotency: reserving an id that is already live returns that reservation and counts it once. Every reservation
 * gets a random token; a settle removes the reservation whose token it carries and books the cost. This process
 * remembers the tokens it settled (a bounded set), so a settle retried here is not booked twice. Records keep no
 * tombstones: they would grow every write, and every CAS, with the fleet's call rate.
 *
 * Settles are deferred: a settle is queued on the key and written with the key's next write (usually the next call's
 * reservation, one CAS for both) or after `settleDelayMs` at the latest. Until then the reservation, the call's worst
 * case, still counts, so a deferred settle can only make admission stricter, never let a cap be passed. A reservation
 * that expires unsettled (its router died, perhaps after paying) is booked at that worst case, not dropped.
 *
 * Speed: a router's writes to one key are queued and applied together in one CAS write (a batch), so a thousand calls
 * in flight in one router make a handful of writes instead of racing each other; the revision and value from the last
 * read or write are kept, so an uncontended change is one round trip. Only other routers' writes cause retries.
 *
 * A busy router does better still: it holds an allowance, one reservation admitted only while it fits under both caps
 * whole, and reserves its calls from it in memory with no round trip at all (router/budget-allowance.ts).
 */

export { BudgetRecord, ReservationEntry } from "./budget-record.js";
import { BudgetRecord, empty, isWrongRevision, live, reservedOf, type ReservationEntry } from "./budget-record.js";

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
  /** drawn from this router's allowance (router/budget-allowance.ts): its token and reservation id */
  allowance?: string;
  allowanceId?: string;
}

export type ReserveResult =
  | { ok: true; reservation: Reservation }
  /** `exhausted`: even nano is refused (spend has passed the cap plus the nano grace); otherwise only nano may run */
  | { ok: false; state: BudgetState; exhausted: boolean; by: "agent" | "fleet" };

export interface BudgetLedgerOptions {
  kv: KV;
  timeZone: string;
  fleetCapUsd: number;
  agentCapsUsd: Record<string, number>;
  downgradeAt: number;
  nanoGrace: number;
  reservationTtlMs: number;
  clock?: Clock;
  /** how old this router's last read or write of a key may be for a view (the budget state a tier is picked by); 500 ms */
  viewFreshMs?: number;
  /** reservation tokens; default randomUUID */
  newToken?: () => string;
  /**
   * What the USAGE stream says was spent on `day` by `agentId` (undefined: by the whole fleet). With it, a record that
   * no longer decodes is rebuilt from USAGE and written over the broken revision; without it, such a record fails closed.
   */
  spentFromUsage?: (day: string, agentId: string | undefined) => Promise<number>;
  /** where the damage is reported */
  log?: Pick<Logger, "error">;
  /** the longest a settle waits to ride along with the key's next write (default 25 ms; 0 writes it at once) */
  settleDelayMs?: number;
  /** a busy router's calls are reserved from an allowance held in KV, with no round trip (router/budget-allowance.ts) */
  allowance?: AllowanceOptions | undefined;
}

const FLEET = "fleet";
const MAX_ATTEMPTS = 50;

const SETTLED_MEMORY = 10_000;

type Verdict = { kind: "admitted" } | { kind: "known"; entry: ReservationEntry } | { kind: "refused"; state: BudgetState; exhausted: boolean };
/** A change to one record: `next` undefined means nothing to write. */
/**
 * A batch's working copy of a record: each queued change edits it in place (a thousand changes in one batch stay
 * linear) and says whether it changed anything. `reservedUsd` is kept in step with `reservations`.
 */
interface Working {
  record: BudgetRecord;
  reservedUsd: number;
}
type Change<R> = { changed: boolean; result: R };
type Decide<R> = (working: Working, now: number) => Change<R>;

/** One key as this process knows it: the last value and revision seen, and the changes waiting for the next write. */
interface KeyCell {
  day: string;
  cached: { record: BudgetRecord; revision: number; at: number } | undefined;
  /** `gate`: not written before it resolves (a settle waits for its USAGE record); views count it at once */
  queue: Array<{ decide: Decide<unknown>; resolve: (r: unknown) => void; reject: (e: unknown) => void; gate?: { open: boolean } }>;
  writing: boolean;
  /** the timer that writes deferred changes nobody else's write took along */
  deferred: ReturnType<typeof setTimeout> | undefined;
}

export class BudgetLedger {
  private readonly clock: () => number;
  private readonly cells = new Map<string, KeyCell>();
  /** tokens this process settled, oldest first: a retried settle here is not booked twice */
  private readonly settledTokens = new Set<string>();
  private readonly viewFreshMs: number;
  private readonly allowances: AllowanceBook | undefined;
  private today: { day: string; from: number; until: number } | undefined;

  constructor(private readonly options: BudgetLedgerOptions) {
    this.clock = nowOf(options.clock);
    this.viewFreshMs = options.viewFreshMs ?? 500;
    if (!(options.reservationTtlMs > 0)) throw new RangeError("reservationTtlMs must be positive");
    // `<day>.fleet` is the fleet's key: an agent of that name would share it
    if (Object.hasOwn(options.agentCapsUsd, FLEET)) throw new FleetError("CONFIG_INVALID", `"${FLEET}" cannot be an agent id: it names the fleet's budget`);
    this.allowances = options.allowance && options.allowance.share > 0
      ? new AllowanceBook({ now: this.clock, ttlMs: options.reservationTtlMs, capOf: (owner) => this.capOf(owner), edit: (...a) => this.edit(...a) }, options.allowance)
      : undefined;
  }

  async view(agentId: string): Promise<{ agent: BudgetView; fleet: BudgetView; state: BudgetState }> {
    const now = this.clock();
    const day = this.dayOf(now);
    const [agent, fleet] = await Promise.all([this.viewOf(day, agentId, now, true), this.viewOf(day, FLEET, now, true)]);
    return { agent, fleet, state: stricter(agent.state, fleet.state) };
  }

  async views(agentIds: readonly string[]): Promise<{ day: string; fleet: BudgetView; agents: Record<string, BudgetView> }> {
    const now = this.clock();
    const day = this.dayOf(now);
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
    const day = this.dayOf(now);
    const drawn = this.allowances?.draw(agentId, tier, roundUsd(usd), reservationId, day);
    if (drawn) return { ok: true, reservation: drawn };
    const candidate: Reservation = {
      id: reservationId, agentId, tier, usd: roundUsd(usd), day,
      expiresAt: now + this.options.reservationTtlMs, token: (this.options.newToken ?? randomUUID)(),
    };
    // both keys at once; a refusal (or a failure) on one undoes what the other admitted
    const [agentVerdict, fleetVerdict] = await Promise.allSettled([this.admit(candidate, agentId), this.admit(candidate, FLEET)]);
    const admittedOn = (v: PromiseSettledResult<Verdict>) => v.status === "fulfilled" && v.value.kind === "admitted";
    const failure = [agentVerdict, fleetVerdict].find((v) => v.status === "rejected");
    // the cap that refused, the one that is spent past its grace first: that is the one the work waits for
    const refusals = [agentVerdict, fleetVerdict].map((v, i) => ({ by: i === 0 ? ("agent" as const) : ("fleet" as const), verdict: v.status === "fulfilled" ? v.value : undefined }));
    const refusedBy = refusals.filter((r) => r.verdict?.kind === "refused").sort((a, b) => Number(exhaustedOf(b.verdict)) - Number(exhaustedOf(a.verdict)))[0];
    const refusal = refusedBy?.verdict;
    if (failure || refusal) {
      await Promise.all([
        admittedOn(agentVerdict) ? this.undo(candidate, agentId) : undefined,
        admittedOn(fleetVerdict) ? this.undo(candidate, FLEET) : undefined,
      ]);
      if (failure && failure.status === "rejected") throw failure.reason;
      if (refusal?.kind === "refused") return { ok: false, state: refusal.state, exhausted: refusal.exhausted, by: refusedBy?.by ?? "agent" };
    }
    // a retried reserve gets the live reservation back, token and all, so that settling either settles the one
    const known = agentVerdict.status === "fulfilled" && agentVerdict.value.kind === "known" ? agentVerdict.value.entry : undefined;
    const reservation = known ? { ...candidate, ...known } : candidate;
    return { ok: true, reservation };
  }

  /**
   * Books what the call really cost on both keys of the reservation's day and drops the reservation. A reservation
   * that expired was booked at its worst case, which the settle corrects to the cost; a settled one is not booked again.
   */
  async settle(reservation: Reservation, actualUsd: number, after?: Promise<unknown>): Promise<void> {
    if (!(actualUsd >= 0 && Number.isFinite(actualUsd))) throw new RangeError(`a settled cost must be finite and non-negative, not ${actualUsd}`);
    if (this.settledTokens.has(reservation.token)) return;
    if (reservation.allowance !== undefined && reservation.allowanceId !== undefined && this.allowances) {
      await this.allowances.settle({ ...reservation, allowance: reservation.allowance, allowanceId: reservation.allowanceId }, actualUsd, after);
      return;
    }
    const book = (working: Working): Change<void> => {
      const lapsed = working.record.lapsed?.[reservation.token];
      if (lapsed !== undefined) {
        // it expired and was booked at its worst case: book the difference
        working.record.spentUsd = roundUsd(Math.max(0, working.record.spentUsd + actualUsd - lapsed));
        delete working.record.lapsed?.[reservation.token];
      } else if (removeReservation(working, reservation)) {
        working.record.spentUsd = roundUsd(working.record.spentUsd + actualUsd);
      }
      // Neither reserved nor lapsed: the record was rebuilt from USAGE after this call's record was published (the
      // router publishes before it settles), so the rebuilt spend has it already.
      return { changed: true, result: undefined };
    };
    await Promise.all([reservation.agentId, FLEET].map((owner) => this.change(`${reservation.day}.${owner}`, reservation.day, book, true, after)));
    this.settledTokens.add(reservation.token);
    if (this.settledTokens.size > SETTLED_MEMORY) this.settledTokens.delete(this.settledTokens.values().next().value as string);
  }

  /** The call did not happen (or cost nothing): settle with 0. */
  async release(reservation: Reservation): Promise<void> {
    await this.settle(reservation, 0);
  }

  /** Writes every deferred settle now and gives back what allowances hold free (a router stopping, a test reading KV). */
  async flush(): Promise<void> {
    await this.allowances?.releaseAll();
    const pending: Promise<void>[] = [];
    for (const [key, cell] of this.cells) {
      if (cell.deferred) clearTimeout(cell.deferred);
      cell.deferred = undefined;
      if (cell.queue.length > 0 && !cell.writing) pending.push(this.drain(key, cell));
    }
    await Promise.all(pending);
    // a write under way when flush began drains what was queued behind it; wait for those too
    while ([...this.cells.values()].some((c) => c.writing || c.queue.length > 0)) await sleep(1);
  }

  /** The fleet's day at `now`, remembered until its next midnight (computing it takes Intl work, twice a call). */
  private dayOf(now: number): string {
    const known = this.today;
    if (known && now >= known.from && now < known.until) return known.day;
    const day = fleetDay(now, this.options.timeZone);
    this.today = { day, from: now, until: nextMidnight(now, this.options.timeZone) };
    return day;
  }

  private capOf(owner: string): number {
    if (owner === FLEET) return this.options.fleetCapUsd;
    const cap = this.options.agentCapsUsd[owner];
    if (cap === undefined) throw new FleetError("MESSAGE_INVALID", `no daily cap for agent "${owner}" in this fleet`);
    return cap;
  }

  /** `recent`: a view to pick a tier by may come from this router's last read or write; an operator's view never does. */
  private async viewOf(day: string, owner: string, now: number, recent = false): Promise<BudgetView> {
    const capUsd = this.capOf(owner);
    const key = `${day}.${owner}`;
    // what this router read or wrote a moment ago is good enough to pick a tier: reserve, not the view, enforces the cap
    const cached = this.cells.get(key)?.cached;
    const { record: stored } = recent && cached && now - cached.at < this.viewFreshMs ? cached : await this.fresh(key, day);
    const record = live(stored, now);
    // this router's changes still queued (deferred settles) count: its own view is never behind its own calls
    const queued = this.cells.get(key)?.queue ?? [];
    if (queued.length > 0) {
      const working: Working = { record, reservedUsd: reservedOf(record) };
      for (const q of queued) q.decide(working, now);
    }
    // what this router's allowances hold free is no call's: its own view of the state does not count it
    const reservedUsd = roundUsd(Math.max(0, reservedOf(record) - (this.allowances?.freeOn(day, owner, owner === FLEET) ?? 0)));
    return { spentUsd: record.spentUsd, reservedUsd, capUsd, state: budgetStateOf(record.spentUsd + reservedUsd, capUsd, this.options.downgradeAt) };
  }

  private admit(reservation: Reservation, owner: string): Promise<Verdict> {
    const capUsd = this.capOf(owner);
    return this.change(`${reservation.day}.${owner}`, reservation.day, (working): Change<Verdict> => {
      const known = working.record.reservations[reservation.id];
      // a retried reserve: counted once (an id that was settled is free again)
      if (known) return { changed: false, result: { kind: "known", entry: known } };
      const committed = roundUsd(working.record.spentUsd + working.reservedUsd);
      const state = budgetStateOf(committed, capUsd, this.options.downgradeAt);
      if (state === "nanoOnly") {
        const withinGrace = committed < roundUsd(capUsd * (1 + this.options.nanoGrace));
        if (!withinGrace || reservation.tier !== "nano") return { changed: false, result: { kind: "refused", state, exhausted: !withinGrace } };
      }
      working.record.reservations[reservation.id] = { usd: reservation.usd, tier: reservation.tier, expiresAt: reservation.expiresAt, token: reservation.token };
      working.reservedUsd = roundUsd(working.reservedUsd + reservation.usd);
      return { changed: true, result: { kind: "admitted" } };
    });
  }

  /** The allowance's writes: one edit on the agent's key and on the fleet's, batched with every other change. */
  private edit(day: string, agentId: string, edit: AllowanceEdit, defer: boolean, after?: Promise<unknown>): Promise<boolean[]> {
    return Promise.all([agentId, FLEET].map((owner) => this.change(`${day}.${owner}`, day, (working, now): Change<boolean> => {
      const changed = edit(editable(working), this.capOf(owner), now, owner === FLEET);
      return { changed, result: changed };
    }, defer, after)));
  }

  /** Takes back a reservation this call just made on one key, so the id can be reserved again. */
  private async undo(reservation: Reservation, owner: string): Promise<void> {
    await this.change(`${reservation.day}.${owner}`, reservation.day, (working): Change<void> => ({ changed: removeReservation(working, reservation), result: undefined }));
  }

  /** Queues a change to a key; the key's writer applies every queued change in one CAS write. */
  private cellOf(key: string, day: string): KeyCell {
    let cell = this.cells.get(key);
    if (!cell) {
      cell = { day, cached: undefined, queue: [], writing: false, deferred: undefined };
      this.cells.set(key, cell);
      this.forgetOldDays(day);
    }
    return cell;
  }

  /** `defer`: the change may wait for the key's next write (or the settle delay) instead of writing now. */
  private change<R>(key: string, day: string, decide: Decide<R>, defer = false, after?: Promise<unknown>): Promise<R> {
    const queued = this.cellOf(key, day);
    const delay = this.options.settleDelayMs ?? 25;
    const gate = after ? { open: false } : undefined;
    if (after && gate) {
      const open = () => {
        gate.open = true;
        // it may ride along with the next write like any deferred change; the timer writes it otherwise
        if (!queued.writing) this.scheduleDeferred(key, queued, delay);
      };
      after.then(open, open);
    }
    return new Promise<R>((resolve, reject) => {
      queued.queue.push({ decide: decide as Decide<unknown>, resolve: resolve as (r: unknown) => void, reject, ...(gate ? { gate } : {}) });
      if (queued.writing) return;
      if (defer && delay > 0) {
        this.scheduleDeferred(key, queued, delay);
        return;
      }
      void this.drain(key, queued);
    });
  }

  private scheduleDeferred(key: string, cell: KeyCell, delay: number): void {
    cell.deferred ??= setTimeout(() => {
      cell.deferred = undefined;
      if (!cell.writing && cell.queue.length > 0) void this.drain(key, cell);
    }, Math.max(0, delay));
  }

  private async drain(key: string, cell: KeyCell): Promise<void> {
    // this write takes every deferred change along
    if (cell.deferred) clearTimeout(cell.deferred);
    cell.deferred = undefined;
    cell.writing = true;
    try {
      while (cell.queue.some((q) => !q.gate || q.gate.open)) {
        // changes whose gate is still shut wait for a later write
        const batch = cell.queue.filter((q) => !q.gate || q.gate.open);
        cell.queue = cell.queue.filter((q) => q.gate && !q.gate.open);
        try {
          const results = await this.write(key, cell, batch.map((b) => b.decide));
          batch.forEach((b, i) => b.resolve(results[i]));
        } catch (err) {
          for (const b of batch) b.reject(err);
        }
      }
    } finally {
      cell.writing = false;
    }
  }

  /**
   * Applies the batch's changes in order to the key's record and writes the result by CAS on the revision it was
   * computed from. On a lost race (another router wrote) it reads again and recomputes the whole batch: each change is a
   * pure function of the record. Losers back off for a short random time growing with the attempt.
   */
  private async write(key: string, cell: KeyCell, decides: Decide<unknown>[]): Promise<unknown[]> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (attempt > 0) await sleep(Math.random() * Math.min(64, 2 ** attempt));
      const base = cell.cached && attempt === 0 ? cell.cached : await this.fresh(key, cell.day);
      const now = this.clock();
      // expired reservations go on every write, so a key never grows with dead routers' calls
      const record = live(base.record, now);
      const working: Working = { record, reservedUsd: reservedOf(record) };
      let changed = false;
      const results = decides.map((decide) => {
        const change = decide(working, now);
        changed ||= change.changed;
        return change.result;
      });
      if (!changed) return results;
      // `lapsed` is written only when it holds something: a record stays as small as the reservations under way
      const { lapsed, ...rest } = record;
      const bytes = encode(lapsed && Object.keys(lapsed).length > 0 ? record : rest, "json");
      try {
        // revision 0: nothing was ever written under the key, so a create, which fails if another router got there first
        const revision = base.revision === 0 ? await this.options.kv.create(key, bytes) : await this.options.kv.update(key, bytes, base.revision);
        cell.cached = { record, revision, at: this.clock() };
        return results;
      } catch (err) {
        cell.cached = undefined;
        if (!isWrongRevision(err)) throw FleetError.from(err);
      }
    }
    throw new FleetError("CONFLICT", `budget ${key}: too many concurrent updates`);
  }

  /** Reads the key from KV and keeps what it read, so the next write can go straight to CAS. */
  private async fresh(key: string, day: string): Promise<{ record: BudgetRecord; revision: number }> {
    const read = await this.read(key, day);
    this.cellOf(key, day).cached = { ...read, at: this.clock() };
    return read;
  }

  /** Cells of past days are dropped when a new day's key is first touched. */
  private forgetOldDays(today: string): void {
    for (const [key, cell] of this.cells) if (cell.day < today && !cell.writing && cell.queue.length === 0 && !cell.deferred) this.cells.delete(key);
  }

  private async read(key: string, day: string, rebuilds = 0): Promise<{ record: BudgetRecord; revision: number }> {
    const entry: KvEntry | null = await this.options.kv.get(key);
    if (!entry) return { record: empty(day), revision: 0 };
    if (entry.operation !== "PUT") return { record: empty(day), revision: entry.revision };
    const decoded = decode(BudgetRecord, entry.value, { codec: "json" });
    if (decoded.ok) return { record: decoded.value, revision: entry.revision };
    const reason = decoded.error.message;
    // Never read as empty: that would hand out the whole cap again. The spend is rebuilt from the USAGE stream (what
    // was paid); live reservations are lost with the record, and their settles book their calls when they come.
    if (!this.options.spentFromUsage || rebuilds >= 3) {
      throw new FleetError(decoded.error.code, `budget ${key} is unreadable: ${reason}`, { cause: decoded.error });
    }
    const owner = key.slice(day.length + 1);
    const record: BudgetRecord = { day, spentUsd: roundUsd(await this.options.spentFromUsage(day, owner === FLEET ? undefined : owner)), reservations: {} };
    try {
      const revision = await this.options.kv.update(key, encode(record, "json"), entry.revision);
      this.options.log?.error({ key, brokenRevision: entry.revision, reason, rebuiltSpentUsd: record.spentUsd }, "budget record did not decode; rebuilt from USAGE");
      return { record, revision };
    } catch (err) {
      if (!isWrongRevision(err)) throw FleetError.from(err);
      // another router rebuilt it (or wrote again) first: read what is there now
      return this.read(key, day, rebuilds + 1);
    }
  }
}

function exhaustedOf(verdict: Verdict | undefined): boolean {
  return verdict?.kind === "refused" && verdict.exhausted;
}



/** Drops this reservation; one with its id but another token is a later attempt and stays. */
function removeReservation(working: Working, reservation: Reservation): boolean {
  const entry = working.record.reservations[reservation.id];
  if (entry?.token !== reservation.token) return false;
  delete working.record.reservations[reservation.id];
  working.reservedUsd = roundUsd(Math.max(0, working.reservedUsd - entry.usd));
  return true;
}
