/**
 * The embedded default ledger: one process, in memory; atomic because each call runs to completion
 * in one event-loop turn. Built for throughput: a lines array seen before resolves to its account
 * objects without lookups, holds expire from a heap, held reservations sit in a map of their own
 * (as small as the work in flight), and closed reservations are kept (for idempotent commit and
 * release, and for late commits after expiry) only for a bounded time and number.
 */
import {
  MAX_AMOUNT,
  SynchronousLedger,
  checkBalancesArgs,
  checkCommitArgs,
  checkReleaseArgs,
  checkReserveOp,
  crossedThreshold,
  decideAmounts,
  resolveActual,
  rootOfReservation,
  totalTooLarge,
  type Amounts,
  type BalancesOutcome,
  type ChargedLine,
  type CommitOutcome,
  type LedgerLine,
  type LineKind,
  type ReleaseOutcome,
  type ReserveOp,
  type ReserveOutcome,
} from "./ledger.js";

interface Account {
  spent: number;
  held: number;
}

interface Reservation {
  readonly id: string;
  readonly root: string;
  readonly resolved: Resolved;
  readonly amounts: Amounts;
  readonly expiresAt: number;
  /** Its root's expiry heap. */
  readonly heap: Reservation[];
  status: "held" | "committed" | "released" | "expired";
  /** Once committed: what was charged, and whether after expiry. */
  charged: Amounts | null;
  late: boolean;
  /** Position in its root's expiry heap while held; -1 otherwise. */
  heapIndex: number;
}

export interface MemoryLedgerOptions {
  /**
   * How long a closed reservation is remembered: at least this long unless `maxClosed` (committed
   * or released) or `maxExpired` (expired) more close meanwhile, at most about twice as long.
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

/** A lines array with, index for index, its accounts and kinds (as KIND_INDEX numbers). */
interface Resolved {
  readonly lines: readonly LedgerLine[];
  readonly accounts: readonly Account[];
  readonly kinds: readonly number[];
}

const KIND_INDEX: Readonly<Record<LineKind, number>> = {
  tokens: 0,
  usdMicros: 1,
  risk: 2,
  requests: 3,
};

/** `amounts[kind]` by index: four named loads, where a load by a varying key name is many times slower. */
function amountOf(amounts: Amounts, kind: number): number {
  return kind === 0
    ? amounts.tokens
    : kind === 1
      ? amounts.usdMicros
      : kind === 2
        ? amounts.risk
        : amounts.requests;
}

const NONE: readonly string[] = Object.freeze([]);
const NO_LINES: readonly ChargedLine[] = Object.freeze([]);

export class MemoryLedger extends SynchronousLedger {
  readonly name = "memory";
  readonly #accounts = new Map<string, Account>();
  readonly #resolved = new WeakMap<readonly LedgerLine[], Resolved>();
  /** Held reservations of each root, as a min-heap by (expiresAt, id). */
  readonly #heaps = new Map<string, Reservation[]>();
  /** Held reservations, by id. */
  readonly #held = new Map<string, Reservation>();
  /** Committed and released reservations, remembered for idempotent commit and release. */
  readonly #closed: Retained;
  /** Expired reservations, remembered so that a late commit is charged. */
  readonly #expired: Retained;

  constructor(options: MemoryLedgerOptions = {}) {
    super();
    const retentionMs = positive(options.retentionMs ?? 3_600_000, "retentionMs");
    this.#closed = new Retained(positive(options.maxClosed ?? 1_000, "maxClosed"), retentionMs);
    this.#expired = new Retained(
      positive(options.maxExpired ?? 100_000, "maxExpired"),
      retentionMs,
    );
  }

  reserveSync(op: ReserveOp): ReserveOutcome {
    // Every argument first: a ledger may be called directly, and a NaN or a string let into an
    // account would poison every later decision on it (spec/enforcement.md §3.6).
    checkReserveOp(op);
    const heap = this.#heap(op.root);
    const expired = this.#sweepHeap(heap, op.now);
    if (this.#find(op.id) !== undefined)
      throw new Error(`reservation id ${op.id} is already in use`);
    const lines = op.lines;
    const resolved = this.#resolve(lines);
    const { accounts, kinds } = resolved;
    let amounts = op.amounts;
    if (op.minimums === undefined) {
      // decideAmounts without lowering, in one pass and without an array of available amounts.
      // A line without a cap cannot deny, but its total must stay exact: the first that would pass
      // MAX_AMOUNT refuses the call once no line denies (a capped line that fits cannot pass it).
      let tooLarge = -1;
      for (let i = 0; i < lines.length; i++) {
        const amount = amountOf(amounts, kinds[i] as number);
        if (amount <= 0) continue;
        const cap = (lines[i] as LedgerLine).cap;
        const account = accounts[i] as Account;
        if (cap === null) {
          if (tooLarge < 0 && account.spent + account.held + amount > MAX_AMOUNT) tooLarge = i;
          continue;
        }
        const available = cap - account.spent - account.held;
        if (amount > available) return { ok: false, line: i, available, expired };
      }
      if (tooLarge >= 0)
        throw overflowOf(lines, accounts, tooLarge, amountOf(amounts, kinds[tooLarge] as number));
    } else {
      const available: number[] = new Array(lines.length);
      for (let i = 0; i < lines.length; i++) {
        const cap = (lines[i] as LedgerLine).cap;
        const account = accounts[i] as Account;
        available[i] = cap === null ? Number.POSITIVE_INFINITY : cap - account.spent - account.held;
      }
      const decided = decideAmounts(op, available);
      if (decided.line >= 0)
        return {
          ok: false,
          line: decided.line,
          available: available[decided.line] as number,
          expired,
        };
      amounts = decided.amounts;
      for (let i = 0; i < lines.length; i++) {
        const amount = amountOf(amounts, kinds[i] as number);
        const account = accounts[i] as Account;
        if (account.spent + account.held + amount > MAX_AMOUNT)
          throw overflowOf(lines, accounts, i, amount);
      }
    }
    for (let i = 0; i < lines.length; i++)
      (accounts[i] as Account).held += amountOf(amounts, kinds[i] as number);
    const reservation: Reservation = {
      id: op.id,
      root: op.root,
      resolved,
      amounts,
      expiresAt: op.expiresAt,
      heap,
      status: "held",
      charged: null,
      late: false,
      heapIndex: -1,
    };
    this.#held.set(op.id, reservation);
    push(heap, reservation);
    return { ok: true, amounts, expired };
  }

  commitSync(id: string, actual: Amounts, now: number): CommitOutcome {
    checkCommitArgs(id, actual, now);
    // Found before the sweep (which only changes its status), so that its root need not be cut
    // from the id: the sweep is the same.
    const reservation = this.#find(id);
    const expired =
      reservation === undefined
        ? this.#sweep(rootOfReservation(id), now)
        : this.#sweepHeap(reservation.heap, now);
    if (reservation === undefined) return { status: "unknown", expired };
    if (reservation.status === "committed") {
      return {
        status: "committed",
        already: true,
        late: reservation.late,
        reserved: reservation.amounts,
        charged: reservation.charged as Amounts,
        lines: NO_LINES,
        expired,
      };
    }
    if (reservation.status === "released") return { status: "released", expired };
    const late = reservation.status === "expired";
    const charged = resolveActual(actual, reservation.amounts);
    let lines = NO_LINES as ChargedLine[];
    const amounts = reservation.amounts;
    const { lines: ledgerLines, accounts, kinds } = reservation.resolved;
    // Refused before any account changes: a spent past MAX_AMOUNT would be rounded.
    for (let i = 0; i < ledgerLines.length; i++) {
      const after = (accounts[i] as Account).spent + amountOf(charged, kinds[i] as number);
      if (after > MAX_AMOUNT) throw totalTooLarge((ledgerLines[i] as LedgerLine).account, after);
    }
    for (let i = 0; i < ledgerLines.length; i++) {
      const line = ledgerLines[i] as LedgerLine;
      const account = accounts[i] as Account;
      const kind = kinds[i] as number;
      if (!late) account.held -= amountOf(amounts, kind);
      const before = account.spent;
      const after = (account.spent = before + amountOf(charged, kind));
      if (line.cap !== null && crossedThreshold(line.cap, before, after)) {
        if (lines === NO_LINES) lines = [];
        lines.push({ account: line.account, kind: line.kind, cap: line.cap, before, after });
      }
    }
    if (!late) remove(reservation.heap, reservation);
    reservation.status = "committed";
    reservation.charged = charged;
    reservation.late = late;
    this.#close(reservation, !late, now);
    return {
      status: "committed",
      already: false,
      late,
      reserved: amounts,
      charged,
      lines,
      expired,
    };
  }

  releaseSync(id: string, now: number): ReleaseOutcome {
    checkReleaseArgs(id, now);
    const reservation = this.#find(id);
    const expired =
      reservation === undefined
        ? this.#sweep(rootOfReservation(id), now)
        : this.#sweepHeap(reservation.heap, now);
    if (reservation === undefined) return { status: "unknown", already: false, expired };
    if (reservation.status !== "held")
      return { status: reservation.status, already: true, expired };
    this.#unhold(reservation);
    remove(reservation.heap, reservation);
    reservation.status = "released";
    this.#close(reservation, true, now);
    return { status: "released", already: false, expired };
  }

  async balances(root: string, accounts: readonly string[], now: number): Promise<BalancesOutcome> {
    return this.balancesSync(root, accounts, now);
  }

  /** balances() without a promise (the enforcer's checkSync). */
  balancesSync(root: string, accounts: readonly string[], now: number): BalancesOutcome {
    checkBalancesArgs(root, accounts, now);
    const expired = this.#sweep(root, now);
    const balances = new Map(
      accounts.map((name) => {
        const account = this.#accounts.get(name);
        return [name, { spent: account?.spent ?? 0, held: account?.held ?? 0 }];
      }),
    );
    return { balances, expired };
  }

  async close(): Promise<void> {}

  #resolve(lines: readonly LedgerLine[]): Resolved {
    let resolved = this.#resolved.get(lines);
    if (resolved === undefined) {
      const accounts = lines.map((line) => {
        let account = this.#accounts.get(line.account);
        if (account === undefined)
          this.#accounts.set(line.account, (account = { spent: 0, held: 0 }));
        return account;
      });
      resolved = { lines, accounts, kinds: lines.map((line) => KIND_INDEX[line.kind]) };
      this.#resolved.set(lines, resolved);
    }
    return resolved;
  }

  #heap(root: string): Reservation[] {
    let heap = this.#heaps.get(root);
    if (heap === undefined) {
      this.#heaps.set(root, (heap = []));
    }
    return heap;
  }

  #unhold(reservation: Reservation): void {
    const { accounts, kinds } = reservation.resolved;
    const amounts = reservation.amounts;
    for (let i = 0; i < accounts.length; i++)
      (accounts[i] as Account).held -= amountOf(amounts, kinds[i] as number);
  }

  #find(id: string): Reservation | undefined {
    return this.#held.get(id) ?? this.#closed.get(id) ?? this.#expired.get(id);
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
    if (heap.length === 0 || (heap[0] as Reservation).expiresAt > now) return NONE;
    const ids: string[] = [];
    while (heap.length > 0 && (heap[0] as Reservation).expiresAt <= now) {
      const reservation = pop(heap) as Reservation;
      this.#unhold(reservation);
      reservation.status = "expired";
      // Remembered apart from the others: a late commit is still charged within retention.
      this.#held.delete(reservation.id);
      this.#expired.add(reservation, now);
      ids.push(reservation.id);
    }
    return ids;
  }
}

function overflowOf(
  lines: readonly LedgerLine[],
  accounts: readonly Account[],
  i: number,
  amount: number,
): RangeError {
  const account = accounts[i] as Account;
  return totalTooLarge((lines[i] as LedgerLine).account, account.spent + account.held + amount);
}

function positive(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 1)
    throw new RangeError(`"${name}" expected a positive integer, got ${value}`);
  return value;
}

// A binary min-heap of reservations by (expiresAt, id); each knows its index, for removal.

function before(a: Reservation, b: Reservation): boolean {
  return a.expiresAt < b.expiresAt || (a.expiresAt === b.expiresAt && a.id < b.id);
}

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
