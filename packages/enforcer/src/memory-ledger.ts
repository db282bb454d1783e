/**
 * The embedded default ledger: one process, in memory; atomic because each call runs to completion
 * in one event-loop turn. The rule is rule.ts's; this is its storage, built for throughput: a
 * lines array seen before resolves to its account objects without lookups, holds expire from a
 * heap, held reservations sit in a map of their own (as small as the work in flight), closed
 * reservations are kept (for idempotent commit and release, and for late commits after expiry)
 * only for a bounded time and number, and a rate window's past bucket accounts are forgotten after
 * the retention (spec/enforcement.md §3.5).
 */
import {
  SynchronousLedger,
  checkBalancesArgs,
  checkCommitArgs,
  checkExtendArgs,
  checkReleaseArgs,
  checkReserveOp,
  checkKnownOptions,
  checkedClockOptions,
  integerOption,
  checkSettleArgs,
  balanceOf,
  nameOf,
  rootOfReservation,
  timeOf,
  type AccountRef,
  type BalancesOutcome,
  type CommitOptions,
  type LedgerClockOptions,
  type ReserveOp,
} from "./ledger.js";
import {
  accountKey,
  answerRepeatedReserve,
  answerWithoutCharge,
  answerWithoutExtend,
  answerWithoutRelease,
  bucketEndsAt,
  charge,
  clockSkewOf,
  decide,
  denyIfBlocked,
  expiresBefore,
  extended,
  extendedExpiry,
  forgetBefore,
  hold,
  holdAnyway,
  holdEnd,
  isDue,
  kindsOf,
  nextReceipt,
  released,
  settleDebt,
  unhold,
  type Account,
  type Amounts,
  type ChargedLine,
  type CommitOutcome,
  type ExtendOutcome,
  type LedgerLine,
  type ReceiptEntry,
  type ReceiptFacts,
  type ReleaseOutcome,
  type ReservationStatus,
  type ReserveOutcome,
  type SettleOutcome,
} from "./rule.js";
import { counterOf } from "./idempotency.js";

interface Reservation {
  readonly id: string;
  readonly root: string;
  readonly resolved: Resolved;
  readonly amounts: Amounts;
  /** Its hold's end; an extend moves it later (spec/enforcement.md §3.11). */
  expiresAt: number;
  /** What its reserve gave: the end of its chain, and the request's fingerprint (§3.10, §3.11). */
  readonly notAfter: number | undefined;
  readonly fingerprint: string | undefined;
  /** Its root's expiry heap. */
  readonly heap: Reservation[];
  status: ReservationStatus;
  /** Once committed: what was charged, and whether after expiry. */
  charged: Amounts | null;
  late: boolean;
  /** Once committed with a receipt: its entry and the one before (spec/receipts.md §2). */
  receipt: ReceiptFacts | null;
  /** Once committed: the lines its commit listed, which a repeated commit answers again (§7.2). */
  crossed: readonly ChargedLine[] | undefined;
  /** Position in its root's expiry heap while held; -1 otherwise. */
  heapIndex: number;
}

/**
 * `now` (LedgerClockOptions): the ledger's clock, `Date.now` unless given (spec/enforcement.md
 * §3.8); an Enforcer that makes its own MemoryLedger gives it its own clock.
 */
export interface MemoryLedgerOptions extends LedgerClockOptions {
  /**
   * How long a closed reservation is remembered: at least this long unless `maxClosed` (committed
   * or released) or `maxExpired` (expired) more close meanwhile, at most about twice as long.
   * A rate window's bucket account that holds nothing is forgotten, by a later operation, once its
   * bucket ended this long ago (spec/enforcement.md §3.5, §8; FORGET_INTERVAL_MS).
   * Default 1 hour.
   */
  readonly retentionMs?: number;
  /**
   * Committed and released reservations remembered, for idempotent commit and release: at least
   * this many of the latest, at most twice as many. Default 1,000. Forgetting one changes only the
   * answer to a repeated call (`unknown` instead of `already`); nothing is charged twice or left
   * uncharged. A larger table costs every operation: measured, 10,000 made reserve + commit about
   * 1.5× slower, in cache misses and in the garbage collector's copying.
   */
  readonly maxClosed?: number;
  /**
   * Expired reservations remembered: at least this many of the latest, at most twice as many.
   * Default 100,000. These matter to the budget: a late commit of a remembered expired
   * reservation is charged, of a forgotten one is answered `unknown` and charged nothing.
   */
  readonly maxExpired?: number;
}

/**
 * Closed reservations by id, in two generations: the current map and the previous one. A new
 * generation starts once `maxCount` were added to the current one or it is `maxAge` old, and the
 * previous one is then dropped whole. So every entry is kept at least `maxCount` additions or
 * `maxAge` ms, whichever comes first, with one lookup per map, instead of forgetting entries one
 * by one.
 */
class Retained {
  #current = new Map<string, Reservation>();
  #previous = new Map<string, Reservation>();
  #start = Number.NEGATIVE_INFINITY;
  #count = 0;

  constructor(
    readonly maxCount: number,
    readonly maxAge: number,
  ) {}

  get(id: string): Reservation | undefined {
    return this.#current.get(id) ?? this.#previous.get(id);
  }

  add(reservation: Reservation, now: number): void {
    if (this.#count >= this.maxCount || now - this.#start >= this.maxAge) {
      this.#previous = this.#current;
      this.#current = new Map();
      this.#start = now;
      this.#count = 0;
    }
    this.#current.set(reservation.id, reservation);
    this.#count++;
  }

  delete(id: string): void {
    if (!this.#current.delete(id)) this.#previous.delete(id);
  }
}

/**
 * A lines array with, index for index, its accounts and kinds (rule.ts `kindsOf`), for ledger
 * times from `from` until `until`: a rate window's line has one account per bucket.
 */
interface Resolved {
  readonly lines: readonly LedgerLine[];
  readonly accounts: readonly Account[];
  readonly kinds: readonly number[];
  readonly from: number;
  readonly until: number;
  /**
   * The ledger's count of forgetting passes when these accounts were looked up: once a later pass
   * forgot bucket accounts, one of these may be among them, no longer the one its key names.
   * Infinity without a window's line: nothing of it is ever forgotten.
   */
  readonly forgets: number;
}

/** A rate window's bucket account, with its key and when its bucket ends: what may be forgotten. */
interface Bucket {
  readonly key: string;
  readonly account: Account;
  readonly endsAt: number;
}

/**
 * Ledger time between passes that forget bucket accounts: a pass runs only when a lines array is
 * looked up afresh (the only time accounts are added), at most once per this much ledger time, so
 * that an account still holding is checked again a second later, not at every operation.
 */
const FORGET_INTERVAL_MS = 1000;

const NONE: readonly string[] = Object.freeze([]);

/** Set by MemoryLedger's static block: its number of accounts (storedAccountsOf). */
let accountsOf: (ledger: MemoryLedger) => number;

export class MemoryLedger extends SynchronousLedger {
  readonly name = "memory";
  readonly receipts = true;
  /** The entry of each root's latest receipted commit (spec/receipts.md §2). */
  readonly #heads = new Map<string, ReceiptEntry>();
  readonly #accounts = new Map<string, Account>();
  readonly #resolved = new WeakMap<readonly LedgerLine[], Resolved>();
  /** The bucket accounts in #accounts, as a min-heap by the end of their bucket. */
  readonly #buckets: Bucket[] = [];
  /** Passes that forgot at least one bucket account (Resolved.forgets). */
  #forgets = 0;
  /** The ledger time from which a lookup runs the next forgetting pass. */
  #forgetFrom = Number.NEGATIVE_INFINITY;
  readonly #retentionMs: number;
  /** Held reservations of each root, as a min-heap by (expiresAt, id). */
  readonly #heaps = new Map<string, Reservation[]>();
  /** Held reservations, by id. */
  readonly #held = new Map<string, Reservation>();
  /** Committed and released reservations, remembered for idempotent commit and release. */
  readonly #closed: Retained;
  /** Expired reservations, remembered so that a late commit is charged. */
  readonly #expired: Retained;
  readonly #now: () => number;
  readonly #maxClockSkewMs: number;
  /**
   * The greatest counter of an enforcer's id (idempotency.ts counterOf) that a reserve has named:
   * a reserve whose id counts past it is looked up nowhere, which saves the lookups of a new id in
   * the maps of held, closed and expired reservations.
   */
  #newestCounter = -1;

  static {
    accountsOf = (ledger) => ledger.#accounts.size;
  }

  constructor(options: MemoryLedgerOptions = {}) {
    super();
    checkKnownOptions(options, ["retentionMs", "maxClosed", "maxExpired"], "memory");
    ({ now: this.#now, maxClockSkewMs: this.#maxClockSkewMs } = checkedClockOptions(options));
    const retentionMs = integerOption(options.retentionMs, "retentionMs", 3_600_000, 1);
    this.#retentionMs = retentionMs;
    this.#closed = new Retained(
      integerOption(options.maxClosed, "maxClosed", 1_000, 1),
      retentionMs,
    );
    this.#expired = new Retained(
      integerOption(options.maxExpired, "maxExpired", 100_000, 1),
      retentionMs,
    );
  }

  reserveSync(op: ReserveOp): ReserveOutcome {
    // Every argument first: a ledger may be called directly, and a NaN or a string let into an
    // account would poison every later decision on it (spec/enforcement.md §3.6).
    checkReserveOp(op);
    const at = timeOf(op.now, this.#now);
    const skewed = clockSkewOf(op.clientNowMs, at, this.#maxClockSkewMs);
    if (skewed !== undefined) throw skewed;
    const heap = this.#heap(op.root);
    const expired = this.#sweepHeap(heap, at);
    // An id whose counter is past every counter seen is new: no lookup can find it (counterOf).
    const counter = counterOf(op.id, op.root);
    if (counter > this.#newestCounter) this.#newestCounter = counter;
    else {
      const repeated = answerRepeatedReserve(op.id, op.fingerprint, this.#find(op.id), expired, at);
      if (repeated !== undefined) {
        if (repeated instanceof Error) throw repeated;
        return repeated;
      }
    }
    const resolved = this.#resolve(op.lines, at);
    const { lines, accounts, kinds } = resolved;
    const blocked =
      op.debtLimits === undefined
        ? undefined
        : denyIfBlocked(lines, kinds, accounts, op.debtLimits, expired, at);
    const decided = blocked ?? decide(lines, kinds, accounts, op.amounts, op.minimums, expired, at);
    const outcome =
      op.shadow === true ? holdAnyway(decided, lines, kinds, accounts, op.amounts) : decided;
    if (outcome instanceof RangeError) throw outcome;
    if (!outcome.ok) return outcome;
    hold(kinds, accounts, outcome.amounts);
    const reservation: Reservation = {
      id: op.id,
      root: op.root,
      resolved,
      amounts: outcome.amounts,
      expiresAt: holdEnd(at, op.ttlMs, op.notAfter),
      notAfter: op.notAfter,
      fingerprint: op.fingerprint,
      heap,
      status: "held",
      charged: null,
      late: false,
      receipt: null,
      crossed: undefined,
      heapIndex: -1,
    };
    this.#held.set(op.id, reservation);
    push(heap, reservation);
    return outcome;
  }

  commitSync(id: string, actual: Amounts, given?: number, options?: CommitOptions): CommitOutcome {
    checkCommitArgs(id, actual, given, options);
    const now = timeOf(given, this.#now);
    const { reservation, expired } = this.#findAndSweep(id, now);
    const answer = answerWithoutCharge(reservation, expired);
    if (answer !== undefined) return answer;
    const r = reservation as Reservation;
    const { lines, kinds, accounts } = this.#current(r.resolved);
    const outcome = charge(r, actual, lines, kinds, accounts, expired);
    if (outcome instanceof RangeError) throw outcome;
    if (outcome.status !== "committed") return outcome;
    const wasHeld = r.status === "held";
    if (wasHeld) remove(r.heap, r);
    r.status = "committed";
    r.charged = outcome.charged;
    r.late = outcome.late;
    r.crossed = outcome.lines;
    this.#close(r, wasHeld, now);
    if (options?.receipt !== true) return outcome;
    const receipt = nextReceipt(this.#heads.get(r.root) ?? null, r.root, id, lines, outcome, now);
    this.#heads.set(r.root, receipt.entry);
    r.receipt = receipt;
    return { ...outcome, receipt };
  }

  releaseSync(id: string, given?: number): ReleaseOutcome {
    checkReleaseArgs(id, given);
    const now = timeOf(given, this.#now);
    const { reservation, expired } = this.#findAndSweep(id, now);
    const answer = answerWithoutRelease(reservation, expired);
    if (answer !== undefined) return answer;
    const r = reservation as Reservation;
    unhold(r.resolved.kinds, r.resolved.accounts, r.amounts);
    remove(r.heap, r);
    r.status = "released";
    this.#close(r, true, now);
    return released(expired);
  }

  extendSync(id: string, ttlMs: number, given?: number): ExtendOutcome {
    checkExtendArgs(id, ttlMs, given);
    const now = timeOf(given, this.#now);
    const { reservation, expired } = this.#findAndSweep(id, now);
    const answer = answerWithoutExtend(reservation, expired);
    if (answer !== undefined) return answer;
    const r = reservation as Reservation;
    const expiresAt = extendedExpiry(r.expiresAt, now, ttlMs, r.notAfter);
    if (expiresAt !== r.expiresAt) {
      remove(r.heap, r);
      r.expiresAt = expiresAt;
      push(r.heap, r);
    }
    return extended(expiresAt, expired);
  }

  async balances(
    root: string,
    accounts: readonly AccountRef[],
    now?: number,
  ): Promise<BalancesOutcome> {
    return this.balancesSync(root, accounts, now);
  }

  /** balances() without a promise (the enforcer's checkSync). */
  balancesSync(root: string, accounts: readonly AccountRef[], given?: number): BalancesOutcome {
    checkBalancesArgs(root, accounts, given);
    const now = timeOf(given, this.#now);
    const expired = this.#sweep(root, now);
    const balances = new Map(
      accounts.map((ref) => [
        nameOf(ref),
        balanceOf(this.#accounts.get(typeof ref === "string" ? ref : accountKey(ref, now))),
      ]),
    );
    return { balances, expired, at: now };
  }

  async settle(root: string, lines: readonly LedgerLine[], now?: number): Promise<SettleOutcome> {
    return this.settleSync(root, lines, now);
  }

  /** settle() without a promise (spec/enforcement.md §3.9). */
  settleSync(root: string, lines: readonly LedgerLine[], given?: number): SettleOutcome {
    checkSettleArgs(root, lines, given);
    const now = timeOf(given, this.#now);
    const expired = this.#sweep(root, now);
    return settleDebt(lines, this.#resolve(lines, now).accounts, expired);
  }

  async close(): Promise<void> {}

  /** A lines array's accounts at ledger time `at`: a window's line, its bucket's (accountKey). */
  #resolve(lines: readonly LedgerLine[], at: number): Resolved {
    let resolved = this.#resolved.get(lines);
    if (
      resolved === undefined ||
      at < resolved.from ||
      at >= resolved.until ||
      resolved.forgets < this.#forgets
    ) {
      // Accounts are added only here: forgetting here too keeps their number bounded.
      if (at >= this.#forgetFrom) this.#forget(at);
      resolved = this.#lookUp(lines, at);
      this.#resolved.set(lines, resolved);
    }
    return resolved;
  }

  #lookUp(lines: readonly LedgerLine[], at: number): Resolved {
    let from = Number.NEGATIVE_INFINITY;
    let until = Number.POSITIVE_INFINITY;
    const accounts = lines.map((line) => {
      const key = accountKey(line, at);
      let endsAt: number | undefined;
      if (line.windowMs !== undefined) {
        endsAt = bucketEndsAt(line.windowMs, at);
        from = Math.max(from, endsAt - line.windowMs);
        until = Math.min(until, endsAt);
      }
      let account = this.#accounts.get(key);
      if (account === undefined) {
        this.#accounts.set(key, (account = { spent: 0, held: 0, settled: 0 }));
        if (endsAt !== undefined) pushBucket(this.#buckets, { key, account, endsAt });
      }
      return account;
    });
    const forgets = until === Number.POSITIVE_INFINITY ? Number.POSITIVE_INFINITY : this.#forgets;
    return { lines, accounts, kinds: kindsOf(lines), from, until, forgets };
  }

  /**
   * A reservation's accounts as they are now. A bucket account is forgotten only while it holds
   * nothing, so no hold of this reservation was on it, and only a commit can still reach it: a late
   * one, or one of a hold of nothing on that line. That commit charges the bucket's account as the
   * ledger has it, made anew if forgotten, never one that balances() no longer reads (§3.5, §8).
   */
  #current(resolved: Resolved): Resolved {
    if (resolved.forgets >= this.#forgets) return resolved;
    const cached = this.#resolved.get(resolved.lines);
    return cached !== undefined &&
      cached.forgets >= this.#forgets &&
      cached.from <= resolved.from &&
      resolved.from < cached.until
      ? cached
      : this.#lookUp(resolved.lines, resolved.from);
  }

  /**
   * Forgets the bucket accounts whose bucket ended at or before `forgetBefore(now, retentionMs)`
   * and that hold nothing (spec/enforcement.md §3.5): no reserve reads a past bucket again. One that
   * still holds is kept, and looked at again by the next pass.
   */
  #forget(now: number): void {
    this.#forgetFrom = now + FORGET_INTERVAL_MS;
    const before = forgetBefore(now, this.#retentionMs);
    const heap = this.#buckets;
    let holding: Bucket[] | undefined;
    let forgot = false;
    while (heap.length > 0 && (heap[0] as Bucket).endsAt <= before) {
      const bucket = popBucket(heap) as Bucket;
      if (bucket.account.held !== 0) (holding ??= []).push(bucket);
      else {
        this.#accounts.delete(bucket.key);
        forgot = true;
      }
    }
    if (holding !== undefined) for (const bucket of holding) pushBucket(heap, bucket);
    if (forgot) this.#forgets++;
  }

  #heap(root: string): Reservation[] {
    let heap = this.#heaps.get(root);
    if (heap === undefined) {
      this.#heaps.set(root, (heap = []));
    }
    return heap;
  }

  #find(id: string): Reservation | undefined {
    return this.#held.get(id) ?? this.#closed.get(id) ?? this.#expired.get(id);
  }

  /**
   * The reservation `id` names, and the ids of its root's holds that expired by `now`. Found before
   * the sweep (which only changes its status), so that its root need not be cut from the id.
   */
  #findAndSweep(
    id: string,
    now: number,
  ): { reservation: Reservation | undefined; expired: readonly string[] } {
    const reservation = this.#find(id);
    const expired =
      reservation === undefined
        ? this.#sweep(rootOfReservation(id), now)
        : this.#sweepHeap(reservation.heap, now);
    return { reservation, expired };
  }

  /** Moves a reservation that was just committed or released to the closed ones. */
  #close(reservation: Reservation, wasHeld: boolean, now: number): void {
    if (wasHeld) this.#held.delete(reservation.id);
    else this.#expired.delete(reservation.id);
    this.#closed.add(reservation, now);
  }

  /** Releases this root's holds whose expiry has passed; returns their ids in (expiry, id) order. */
  #sweep(root: string, now: number): readonly string[] {
    const heap = this.#heaps.get(root);
    return heap === undefined ? NONE : this.#sweepHeap(heap, now);
  }

  #sweepHeap(heap: Reservation[], now: number): readonly string[] {
    if (heap.length === 0 || !isDue((heap[0] as Reservation).expiresAt, now)) return NONE;
    const ids: string[] = [];
    while (heap.length > 0 && isDue((heap[0] as Reservation).expiresAt, now)) {
      const reservation = pop(heap) as Reservation;
      unhold(reservation.resolved.kinds, reservation.resolved.accounts, reservation.amounts);
      reservation.status = "expired";
      // Remembered apart from the others: a late commit is still charged within retention.
      this.#held.delete(reservation.id);
      this.#expired.add(reservation, now);
      ids.push(reservation.id);
    }
    return ids;
  }
}

/**
 * How many accounts the ledger stores, for tests of its retention: not exported from the package.
 * @internal
 */
export function storedAccountsOf(ledger: MemoryLedger): number {
  return accountsOf(ledger);
}

// A binary min-heap of reservations in the rule's expiry order (rule.ts `expiresBefore`); each
// knows its index, for removal.

const before = expiresBefore;

function place(heap: Reservation[], i: number, r: Reservation): void {
  heap[i] = r;
  r.heapIndex = i;
}

function up(heap: Reservation[], i: number): void {
  const item = heap[i] as Reservation;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (!before(item, heap[parent] as Reservation)) break;
    place(heap, i, heap[parent] as Reservation);
    i = parent;
  }
  place(heap, i, item);
}

function down(heap: Reservation[], i: number): void {
  const item = heap[i] as Reservation;
  for (;;) {
    const left = 2 * i + 1;
    if (left >= heap.length) break;
    const right = left + 1;
    const child =
      right < heap.length && before(heap[right] as Reservation, heap[left] as Reservation)
        ? right
        : left;
    if (!before(heap[child] as Reservation, item)) break;
    place(heap, i, heap[child] as Reservation);
    i = child;
  }
  place(heap, i, item);
}

function push(heap: Reservation[], r: Reservation): void {
  heap.push(r);
  up(heap, heap.length - 1);
}

function pop(heap: Reservation[]): Reservation | undefined {
  const top = heap[0];
  const last = heap.pop();
  if (top !== undefined && last !== undefined && heap.length > 0) {
    place(heap, 0, last);
    down(heap, 0);
  }
  if (top !== undefined) top.heapIndex = -1;
  return top;
}

// A binary min-heap of bucket accounts by the end of their bucket.

function pushBucket(heap: Bucket[], bucket: Bucket): void {
  let i = heap.push(bucket) - 1;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if ((heap[parent] as Bucket).endsAt <= bucket.endsAt) break;
    heap[i] = heap[parent] as Bucket;
    i = parent;
  }
  heap[i] = bucket;
}

function popBucket(heap: Bucket[]): Bucket | undefined {
  const top = heap[0];
  const last = heap.pop();
  if (top === undefined || last === undefined || heap.length === 0) return top;
  let i = 0;
  for (;;) {
    const left = 2 * i + 1;
    if (left >= heap.length) break;
    const right = left + 1;
    const child =
      right < heap.length && (heap[right] as Bucket).endsAt < (heap[left] as Bucket).endsAt
        ? right
        : left;
    if ((heap[child] as Bucket).endsAt >= last.endsAt) break;
    heap[i] = heap[child] as Bucket;
    i = child;
  }
  heap[i] = last;
  return top;
}

function remove(heap: Reservation[], r: Reservation): void {
  const i = r.heapIndex;
  if (i < 0 || heap[i] !== r) return;
  const last = heap.pop() as Reservation;
  r.heapIndex = -1;
  if (i < heap.length) {
    place(heap, i, last);
    up(heap, i);
    down(heap, last.heapIndex);
  }
}
