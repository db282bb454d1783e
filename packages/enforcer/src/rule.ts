/**
 * The ledger's rule (spec/enforcement.md §3), written once: what a reserve decides, what a commit
 * charges, what an expiry releases, which thresholds a charge crosses. No I/O: each function is
 * given the balances of the accounts a reservation touches (and its record) and returns the
 * outcome; the functions that write (`hold`, `unhold`, `charge`) change only the balances they were
 * handed, which the storage adapter then keeps. Memory, SQLite and Redis are adapters over it; the
 * Redis adapter restates it in Lua (redis/ledger.lua), and the ledger vectors (spec/vectors/ledger)
 * hold the two together.
 */
import { AllowanceError } from "@allowance/core";

/** What a line counts. A reservation has one amount per kind; every line of a kind holds it. */
export const LINE_KINDS = ["tokens", "usdMicros", "risk", "requests"] as const;
export type LineKind = (typeof LINE_KINDS)[number];

export type Amounts = Readonly<Record<LineKind, number>>;

/**
 * One account a reservation holds against, and where its cap comes from. The account name is the
 * storage key and nothing else: a ledger never parses it; what a line is travels as data.
 */
export interface LedgerLine {
  /** Account name, unique per link, field, provider and rate-window bucket. */
  readonly account: string;
  readonly kind: LineKind;
  /** The cap on spent + held; null for an account that is only counted. */
  readonly cap: number | null;
  /** The link the account belongs to: its index in the chain (root = 0) and its id. */
  readonly linkIndex: number;
  readonly linkId: string;
  /** The grant field the cap comes from: `usdMicros`, `providers.openai.tokens`, `rate.60s.requests`, … */
  readonly field: string;
  /**
   * A rate window's line only: the window's length. Its account is then one per bucket of the
   * ledger's clock, `accountKey(line, at)` (spec/enforcement.md §4): the caller names the window,
   * the ledger picks the bucket.
   */
  readonly windowMs?: number;
}

/** Spent and held of one account, as an adapter hands them to the rule (which may change them). */
export interface Account {
  spent: number;
  held: number;
  /**
   * How much of the account's debt (its spent past its cap) an operator has settled (§3.9): the
   * outstanding debt is spent − cap − settled. Absent means 0.
   */
  settled?: number;
}

export type ReserveOutcome =
  | {
      readonly ok: true;
      readonly amounts: Amounts;
      readonly expired: readonly string[];
      /** The ledger's time of the reserve (epoch ms): the hold ends at `at + ttlMs`. */
      readonly at: number;
      /**
       * A shadow reserve only (spec/enforcement.md §3.7), when the rule would not have held the
       * amounts as asked: what it would have answered. The amounts held are the ones asked.
       */
      readonly wouldBe?: WouldBe;
      /**
       * A repeated reserve (spec/enforcement.md §3.10): a reservation of this id was made by a
       * reserve with the same fingerprint, and this is its decision, unchanged: the amounts it
       * held and (`expiresAt`) its hold's expiry, later if extended. Nothing more was held.
       */
      readonly already?: true;
      readonly expiresAt?: number;
    }
  | {
      readonly ok: false;
      readonly line: number;
      readonly available: number;
      readonly expired: readonly string[];
      /** The ledger's time of the reserve (epoch ms): a rate window's retry is counted from it. */
      readonly at: number;
      /**
       * A denial by the overage policy only (§3.9): the line's outstanding debt, which is past
       * the reserve's debt limit for its kind.
       */
      readonly debt?: number;
    };

/**
 * What the rule would have answered a shadow reserve (§3.7) that it did not hold as asked: the
 * denial (the first line that does not fit and what it has left), or the amounts lowered to fit.
 */
export type WouldBe =
  | {
      readonly ok: false;
      readonly line: number;
      readonly available: number;
      readonly debt?: number;
    }
  | { readonly ok: true; readonly amounts: Amounts };

/**
 * The overage policy as a reserve carries it to the ledger (spec/enforcement.md §3.9): for each
 * kind present, the most outstanding debt a capped line of that kind may carry; a line past it
 * denies every reserve that touches it, whatever its amount. A kind absent: debt never denies
 * beyond the cap itself, as always.
 */
export type DebtLimits = Readonly<Partial<Record<LineKind, number>>>;

/** A capped line whose outstanding debt a settle cleared (§3.9), and how much it cleared. */
export interface SettledLine extends LedgerLine {
  /** The debt settled: spent − cap − what was settled before. */
  readonly amount: number;
  /** The line's spent when it was settled (unchanged by the settle). */
  readonly spent: number;
}

/** A settle's outcome: the lines it cleared, in line order, and the ids its sweep expired. */
export interface SettleOutcome {
  readonly settled: readonly SettledLine[];
  readonly expired: readonly string[];
}

/**
 * A capped line whose spent crossed a threshold (`THRESHOLD_PERCENTS` of its cap) in a commit,
 * with its spent before and after. Lines that crossed none are not reported.
 */
export interface ChargedLine extends LedgerLine {
  readonly before: number;
  readonly after: number;
}

export type CommitOutcome =
  | {
      readonly status: "committed";
      readonly already: boolean;
      readonly late: boolean;
      readonly reserved: Amounts;
      readonly charged: Amounts;
      readonly lines: readonly ChargedLine[];
      readonly expired: readonly string[];
      /**
       * A commit asked for with a receipt (spec/receipts.md §2): the entry the ledger assigned it,
       * atomically with the charge, and the one before. A repeated commit answers the first's.
       */
      readonly receipt?: ReceiptFacts;
    }
  | { readonly status: "released" | "unknown"; readonly expired: readonly string[] };

export type ReleaseOutcome = {
  readonly status: "released" | "committed" | "expired" | "unknown";
  readonly already: boolean;
  readonly expired: readonly string[];
};

export const RESERVATION_STATUSES = ["held", "committed", "released", "expired"] as const;
export type ReservationStatus = (typeof RESERVATION_STATUSES)[number];

/** What a ledger keeps of a reservation, as far as the rule reads it. */
export interface ReservationState {
  readonly status: ReservationStatus;
  /** The amounts held (what the reserve decided). */
  readonly amounts: Amounts;
  /** Once committed: what was charged, and whether after the hold expired. */
  readonly charged: Amounts | null;
  readonly late: boolean;
  /** Once committed with a receipt (spec/receipts.md §2): what the commit answered of it. */
  readonly receipt?: ReceiptFacts | null;
  /**
   * Once committed: the lines its commit listed (those that crossed a threshold), which a repeated
   * commit answers again (§7.2). Absent: none.
   */
  readonly crossed?: readonly ChargedLine[] | undefined;
}

/**
 * What the ledger decided of one commit, as its receipt names it (spec/receipts.md §2): the root,
 * the sequence number the ledger assigned the commit among the root's receipted commits (from 1),
 * the reservation, the ids of the links it charged (each once, in line order: root first), what it
 * charged, whether late, and the ledger's time of the commit in whole milliseconds.
 */
export interface ReceiptEntry {
  readonly root: string;
  readonly seq: number;
  readonly reservationId: string;
  readonly linkIds: readonly string[];
  readonly charged: Amounts;
  readonly late: boolean;
  readonly atMs: number;
}

/**
 * A receipted commit's answer (spec/receipts.md §2): its entry, and the entry of the root's
 * sequence number before it (null for the first), which the signer hashes into the receipt.
 */
export interface ReceiptFacts {
  readonly entry: ReceiptEntry;
  readonly prev: ReceiptEntry | null;
}

/**
 * The largest amount, cap or total (spent + held + a request) a ledger keeps: 2^53 − 1, the largest
 * integer a double holds exactly (spec/enforcement.md §3.6). A call that would take a total past it
 * is refused with a RangeError, never rounded.
 */
export const MAX_AMOUNT = Number.MAX_SAFE_INTEGER;

/** The percentages of a cap whose crossing raises a threshold event (spec/enforcement.md §7). */
export const THRESHOLD_PERCENTS = [50, 80, 100] as const;
export type ThresholdPercent = (typeof THRESHOLD_PERCENTS)[number];

/** A kind as its index in LINE_KINDS: what the rule's loops use. */
export const KIND_INDEX: Readonly<Record<LineKind, number>> = {
  tokens: 0,
  usdMicros: 1,
  risk: 2,
  requests: 3,
};

/** The kind index of each line, index for index: computed once per lines array by the adapters. */
export function kindsOf(lines: readonly LedgerLine[]): readonly number[] {
  return lines.map((line) => KIND_INDEX[line.kind]);
}

/** `amounts[kind]` by index: four named loads, where a load by a varying key name is many times slower. */
export function amountOf(amounts: Amounts, kind: number): number {
  return kind === 0
    ? amounts.tokens
    : kind === 1
      ? amounts.usdMicros
      : kind === 2
        ? amounts.risk
        : amounts.requests;
}

/** What a line can still take: cap − spent − held, or Infinity without a cap. */
export function availableOf(line: LedgerLine, account: Account): number {
  return line.cap === null ? Number.POSITIVE_INFINITY : line.cap - account.spent - account.held;
}

/**
 * The reserve decision (spec/enforcement.md §3.2 steps 2–4), holding nothing:
 *
 * (2) for each line, the available amount is cap − spent − held (no cap: unlimited); (3) for a kind
 * whose caps the caller accepts (a minimum is given), the amount is lowered to the least available
 * on that kind's capped lines, unless that is below the minimum, in which case it stays as asked;
 * (4) the first line whose amount is positive and exceeds its available amount denies.
 *
 * A reserve that fits but would take a line's spent + held past MAX_AMOUNT (only a line without a
 * cap can) is answered with the RangeError to refuse it with (§3.6). `accounts[i]` is line i's;
 * `at` is the ledger's time of the reserve, which the outcome reports.
 */
export function decide(
  lines: readonly LedgerLine[],
  kinds: readonly number[],
  accounts: readonly Account[],
  asked: Amounts,
  minimums: Readonly<Partial<Record<"tokens" | "usdMicros", number>>> | undefined,
  expired: readonly string[],
  at: number,
): ReserveOutcome | RangeError {
  const amounts = minimums === undefined ? asked : lowered(lines, kinds, accounts, asked, minimums);
  let tooLarge = -1;
  for (let i = 0; i < lines.length; i++) {
    const amount = amountOf(amounts, kinds[i] as number);
    if (amount <= 0) continue;
    const account = accounts[i] as Account;
    const cap = (lines[i] as LedgerLine).cap;
    if (cap === null) {
      if (tooLarge < 0 && account.spent + account.held + amount > MAX_AMOUNT) tooLarge = i;
      continue;
    }
    const available = cap - account.spent - account.held;
    if (amount > available) return { ok: false, line: i, available, expired, at };
  }
  if (tooLarge >= 0) {
    const account = accounts[tooLarge] as Account;
    const amount = amountOf(amounts, kinds[tooLarge] as number);
    return totalTooLarge(
      (lines[tooLarge] as LedgerLine).account,
      account.spent + account.held + amount,
    );
  }
  return { ok: true, amounts, expired, at };
}

/** Step 3: the amounts with tokens and micro-dollars lowered to what fits, where the minimum allows. */
function lowered(
  lines: readonly LedgerLine[],
  kinds: readonly number[],
  accounts: readonly Account[],
  asked: Amounts,
  minimums: Readonly<Partial<Record<"tokens" | "usdMicros", number>>>,
): Amounts {
  const fit = (kind: number, minimum: number | undefined, requested: number): number => {
    if (minimum === undefined) return requested;
    let least = Number.POSITIVE_INFINITY;
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i] as LedgerLine;
      if (kinds[i] === kind && line.cap !== null)
        least = Math.min(least, availableOf(line, accounts[i] as Account));
    }
    const amount = Math.min(requested, Math.max(0, least));
    return amount >= minimum ? amount : requested;
  };
  return {
    tokens: fit(0, minimums.tokens, asked.tokens),
    usdMicros: fit(1, minimums.usdMicros, asked.usdMicros),
    risk: asked.risk,
    requests: asked.requests,
  };
}

/**
 * A shadow reserve (spec/enforcement.md §3.7): the rule decides as always (`decided`), but the
 * amounts asked are held whatever it decided, so that the spend is recorded as it would be if the
 * caps were not there. The outcome is `decided` itself when it holds the amounts as asked, else
 * ok with the amounts asked and `wouldBe`, the decision that was not enforced. A hold that would
 * take any line's spent + held past MAX_AMOUNT is answered with the RangeError to refuse it with
 * (a capped line too: it is held past its cap); so is a `decided` RangeError.
 */
export function holdAnyway(
  decided: ReserveOutcome | RangeError,
  lines: readonly LedgerLine[],
  kinds: readonly number[],
  accounts: readonly Account[],
  asked: Amounts,
): ReserveOutcome | RangeError {
  if (decided instanceof RangeError) return decided;
  if (decided.ok && sameAmounts(decided.amounts, asked)) return decided;
  for (let i = 0; i < lines.length; i++) {
    const amount = amountOf(asked, kinds[i] as number);
    const account = accounts[i] as Account;
    if (amount > 0 && account.spent + account.held + amount > MAX_AMOUNT)
      return totalTooLarge((lines[i] as LedgerLine).account, account.spent + account.held + amount);
  }
  const wouldBe: WouldBe = decided.ok
    ? { ok: true, amounts: decided.amounts }
    : decided.debt === undefined
      ? { ok: false, line: decided.line, available: decided.available }
      : { ok: false, line: decided.line, available: decided.available, debt: decided.debt };
  return { ok: true, amounts: asked, expired: decided.expired, at: decided.at, wouldBe };
}

function sameAmounts(a: Amounts, b: Amounts): boolean {
  return (
    a.tokens === b.tokens &&
    a.usdMicros === b.usdMicros &&
    a.risk === b.risk &&
    a.requests === b.requests
  );
}

/** A line's outstanding debt (§3.9): spent past its cap, less what was settled; 0 without a cap. */
export function debtOf(line: LedgerLine, account: Account): number {
  if (line.cap === null) return 0;
  return Math.max(0, account.spent - line.cap - (account.settled ?? 0));
}

/**
 * The overage policy's step (spec/enforcement.md §3.9, §3.2 step 2a), before the reserve's amounts
 * are judged: the first capped line, in line order, whose kind has a debt limit and whose
 * outstanding debt is past it denies the reserve, whatever its amount, with its available amount
 * and its debt (and `at`, the ledger's time of the reserve, as `decide`'s outcome). Undefined when
 * no line is blocked: `decide` then decides.
 */
export function denyIfBlocked(
  lines: readonly LedgerLine[],
  kinds: readonly number[],
  accounts: readonly Account[],
  debtLimits: DebtLimits,
  expired: readonly string[],
  at: number,
): Extract<ReserveOutcome, { ok: false }> | undefined {
  const limits = [debtLimits.tokens, debtLimits.usdMicros, debtLimits.risk, debtLimits.requests];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as LedgerLine;
    const limit = limits[kinds[i] as number];
    if (limit === undefined || line.cap === null) continue;
    const account = accounts[i] as Account;
    const debt = debtOf(line, account);
    if (debt > limit)
      return { ok: false, line: i, available: availableOf(line, account), expired, at, debt };
  }
  return undefined;
}

/**
 * A settle (§3.9): every capped line's outstanding debt is marked settled, so that the overage
 * policy no longer blocks on it; spent stays as it is (spend that happened is never dropped), and
 * the cap does not grow. Lists the lines it cleared, with the amount and the line's spent.
 */
export function settleDebt(
  lines: readonly LedgerLine[],
  accounts: readonly Account[],
  expired: readonly string[],
): SettleOutcome {
  const settled: SettledLine[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as LedgerLine;
    const account = accounts[i] as Account;
    const debt = debtOf(line, account);
    if (debt <= 0) continue;
    account.settled = (account.settled ?? 0) + debt;
    settled.push({ ...line, amount: debt, spent: account.spent });
  }
  return { settled, expired };
}

/** Step 5 of a reserve that fits: every line's held grows by its kind's amount. */
export function hold(
  kinds: readonly number[],
  accounts: readonly Account[],
  amounts: Amounts,
): void {
  for (let i = 0; i < kinds.length; i++)
    (accounts[i] as Account).held += amountOf(amounts, kinds[i] as number);
}

/** A hold given back (a release, or an expiry): every line's held shrinks by its kind's amount. */
export function unhold(
  kinds: readonly number[],
  accounts: readonly Account[],
  amounts: Amounts,
): void {
  for (let i = 0; i < kinds.length; i++)
    (accounts[i] as Account).held -= amountOf(amounts, kinds[i] as number);
}

/** Whether a hold that ends at `expiresAt` has ended at `now` (§3.2 step 1): its end is included. */
export function isDue(expiresAt: number, now: number): boolean {
  return expiresAt <= now;
}

/**
 * The order in which a sweep expires the due holds of a root: by expiry, then by id (JavaScript
 * string order, UTF-16 units), so that every ledger reports the same `expired` list.
 */
export function expiresBefore(
  a: { readonly expiresAt: number; readonly id: string },
  b: { readonly expiresAt: number; readonly id: string },
): boolean {
  return a.expiresAt < b.expiresAt || (a.expiresAt === b.expiresAt && a.id < b.id);
}

/**
 * A sweep (§3.2 step 1): of `held` (the held reservations of one root), the ones due at `now`, in
 * expiry order. The adapter then gives back each one's hold (`unhold`) and marks it expired.
 */
export function due<T extends { readonly expiresAt: number; readonly id: string }>(
  held: Iterable<T>,
  now: number,
): T[] {
  const found: T[] = [];
  for (const reservation of held) if (isDue(reservation.expiresAt, now)) found.push(reservation);
  return found.sort((a, b) => (expiresBefore(a, b) ? -1 : expiresBefore(b, a) ? 1 : 0));
}

const NO_LINES: readonly ChargedLine[] = Object.freeze([]);

/**
 * A commit's answer when nothing is to be charged (§3.4 step 2): unknown, released, or a repeated
 * commit: the first commit's outcome, with `already` and the lines it listed, so that a caller
 * whose first answer was lost can still raise its events (§7.2). Undefined for a held or expired
 * reservation, which `charge` charges.
 */
export function answerWithoutCharge(
  state: ReservationState | undefined,
  expired: readonly string[],
): CommitOutcome | undefined {
  if (state === undefined) return { status: "unknown", expired };
  if (state.status === "committed") {
    const answer = {
      status: "committed" as const,
      already: true,
      late: state.late,
      reserved: state.amounts,
      charged: state.charged as Amounts,
      lines: state.crossed ?? NO_LINES,
      expired,
    };
    return state.receipt == null ? answer : { ...answer, receipt: state.receipt };
  }
  if (state.status === "released") return { status: "released", expired };
  return undefined;
}

/**
 * Charges a held or expired reservation (§3.4 steps 3–4): on every line, held shrinks by the
 * amount reserved (unless the hold had expired: a late commit) and spent grows by the amount
 * charged, where an actual amount of -1 means "as reserved". Line by line, so that a line's
 * `before` sees the lines charged before it. The outcome lists the capped lines that crossed a
 * threshold. A charge that would take a line's spent past MAX_AMOUNT is answered with the
 * RangeError to refuse it with, before any account changes.
 */
export function charge(
  state: ReservationState,
  actual: Amounts,
  lines: readonly LedgerLine[],
  kinds: readonly number[],
  accounts: readonly Account[],
  expired: readonly string[],
): CommitOutcome | RangeError {
  const late = state.status === "expired";
  const reserved = state.amounts;
  const charged = resolveActual(actual, reserved);
  for (let i = 0; i < lines.length; i++) {
    const after = (accounts[i] as Account).spent + amountOf(charged, kinds[i] as number);
    if (after > MAX_AMOUNT) return totalTooLarge((lines[i] as LedgerLine).account, after);
  }
  let crossed = NO_LINES as ChargedLine[];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as LedgerLine;
    const account = accounts[i] as Account;
    const kind = kinds[i] as number;
    if (!late) account.held -= amountOf(reserved, kind);
    const before = account.spent;
    const after = (account.spent = before + amountOf(charged, kind));
    if (line.cap !== null && thresholdsCrossed(line.cap, before, after).length > 0) {
      if (crossed === NO_LINES) crossed = [];
      crossed.push({ ...line, before, after });
    }
  }
  return { status: "committed", already: false, late, reserved, charged, lines: crossed, expired };
}

/** `actual` with every negative amount (-1: "as reserved") replaced by the reserved amount. */
function resolveActual(actual: Amounts, reserved: Amounts): Amounts {
  return {
    tokens: actual.tokens < 0 ? reserved.tokens : actual.tokens,
    usdMicros: actual.usdMicros < 0 ? reserved.usdMicros : actual.usdMicros,
    risk: actual.risk < 0 ? reserved.risk : actual.risk,
    requests: actual.requests < 0 ? reserved.requests : actual.requests,
  };
}

/**
 * A release's answer (§3.5): unknown, or the status of a reservation no longer held (`already`).
 * Undefined for a held one: the adapter gives back its hold (`unhold`) and answers RELEASED.
 */
export function answerWithoutRelease(
  state: ReservationState | undefined,
  expired: readonly string[],
): ReleaseOutcome | undefined {
  if (state === undefined) return { status: "unknown", already: false, expired };
  if (state.status !== "held") return { status: state.status, already: true, expired };
  return undefined;
}

/** The answer to a release that gave back a hold. */
export function released(expired: readonly string[]): ReleaseOutcome {
  return { status: "released", already: false, expired };
}

// Every subset of THRESHOLD_PERCENTS a charge can cross, made once: the check runs on every line.
const CROSSED: readonly (readonly ThresholdPercent[])[] = Array.from({ length: 8 }, (_, bits) =>
  Object.freeze(THRESHOLD_PERCENTS.filter((_, i) => (bits >> i) & 1)),
);

/**
 * The thresholds a charge that took a capped line's spent from `before` to `after` crossed: percent
 * p of cap c is crossed when before < c·p/100 ≤ after, in double arithmetic (which the Lua script
 * computes identically), for c > 0.
 */
export function thresholdsCrossed(
  cap: number,
  before: number,
  after: number,
): readonly ThresholdPercent[] {
  if (cap <= 0 || after <= before) return CROSSED[0] as readonly ThresholdPercent[];
  let bits = 0;
  for (let i = 0; i < THRESHOLD_PERCENTS.length; i++) {
    const mark = (cap * (THRESHOLD_PERCENTS[i] as number)) / 100;
    if (before < mark && after >= mark) bits |= 1 << i;
  }
  return CROSSED[bits] as readonly ThresholdPercent[];
}

/**
 * The receipt of a commit just charged (spec/receipts.md §2): the root's next sequence number
 * after `head` (the entry of the root's latest receipted commit, null for none), this commit's
 * entry, and `head` as the entry before it. The ledger stores the new entry as the root's head in
 * the same atomic step as the charge, and keeps the facts with the committed reservation.
 */
export function nextReceipt(
  head: ReceiptEntry | null,
  root: string,
  reservationId: string,
  lines: readonly LedgerLine[],
  outcome: Extract<CommitOutcome, { status: "committed" }>,
  at: number,
): ReceiptFacts {
  const linkIds: string[] = [];
  for (const line of lines) if (!linkIds.includes(line.linkId)) linkIds.push(line.linkId);
  const entry: ReceiptEntry = {
    root,
    seq: (head?.seq ?? 0) + 1,
    reservationId,
    linkIds,
    charged: outcome.charged,
    late: outcome.late,
    atMs: Math.floor(at),
  };
  return { entry, prev: head };
}

/** The RangeError for a total that would pass MAX_AMOUNT on an account. */
export function totalTooLarge(account: string, total: number): RangeError {
  return new RangeError(
    `the total on account ${JSON.stringify(account.length > 80 ? `${account.slice(0, 80)}…` : account)} would be ${total}, past the ledger's maximum of 2^53 - 1: refused, not rounded`,
  );
}

/**
 * The bucket of a rate window of `windowMs` at the ledger's time `at` (spec/enforcement.md §4):
 * fixed windows aligned to the Unix epoch.
 */
export function bucketOf(windowMs: number, at: number): number {
  return Math.floor(at / windowMs);
}

/** When the bucket of a window of `windowMs` current at `at` ends (epoch ms). */
export function bucketEndsAt(windowMs: number, at: number): number {
  return (bucketOf(windowMs, at) + 1) * windowMs;
}

/**
 * The storage key of a line's account at the ledger's time `at`: its account name, and for a rate
 * window's line, `@` and the bucket (spec/enforcement.md §4). A reservation's lines are keyed at
 * the time of its reserve, so that its commit charges the bucket it held.
 */
export function accountKey(
  line: { readonly account: string; readonly windowMs?: number },
  at: number,
): string {
  return line.windowMs === undefined
    ? line.account
    : `${line.account}@${bucketOf(line.windowMs, at)}`;
}

/**
 * The largest difference between a caller's clock and the ledger's that a reserve accepts, by
 * default (spec/enforcement.md §3.8). The caller checks the links' `exp` and `nbf` on its own
 * clock before reserving; the ledger decides everything else on its own.
 */
export const MAX_CLOCK_SKEW_MS = 5_000;

/**
 * A reserve's refusal when the caller's clock (`clientNowMs`, what it read when it asked) is more
 * than `maxSkewMs` from the ledger's time `at`, either way; undefined when it is within, or when
 * the caller gave no time. Checked first, before the sweep: a refused reserve changes nothing.
 */
export function clockSkewOf(
  clientNowMs: number | undefined,
  at: number,
  maxSkewMs: number,
): AllowanceError | undefined {
  if (clientNowMs === undefined || Math.abs(clientNowMs - at) <= maxSkewMs) return undefined;
  const off = clientNowMs - at;
  return new AllowanceError(
    "ERR_CLOCK_SKEW",
    `the caller's clock is ${Math.abs(off)} ms ${off > 0 ? "ahead of" : "behind"} the ledger's, more than the ${maxSkewMs} ms allowed: refused, nothing held`,
    { field: "clientNowMs", limit: maxSkewMs, actual: off },
  );
}

/**
 * How long a shared ledger (SQLite, Redis) remembers a closed reservation by default: 24 hours of
 * its clock (spec/enforcement.md §3.5).
 */
export const DEFAULT_RETENTION_MS = 86_400_000;

/**
 * The retention rule (spec/enforcement.md §3.5), for a ledger that forgets closed reservations
 * (committed, released, expired) one by one: one that closed at or before this time may be
 * forgotten at ledger time `now`, so each is kept at least `retentionMs` after it closed (a late
 * commit closes an expired one again). Forgetting only turns a repeated commit or release into
 * `unknown`, and leaves a late commit of a forgotten expired one uncharged. A rate window's bucket
 * account whose bucket ended by then, and that holds nothing, may be forgotten as well: no reserve
 * reads a past bucket again.
 */
export function forgetBefore(now: number, retentionMs: number): number {
  return now - retentionMs;
}

/**
 * The error for a reserve whose id another reservation already has (spec/enforcement.md §3.6),
 * or (`otherRequest`) had with another request's fingerprint (§3.10).
 */
export function reservationConflict(id: string, otherRequest = false): AllowanceError {
  return new AllowanceError(
    "ERR_RESERVATION_CONFLICT",
    otherRequest
      ? `reservation id ${id} was reserved for another request: an idempotency key names one request`
      : `reservation id ${id} is already in use`,
    { field: "id" },
  );
}

// Idempotent reserve and extend (spec/enforcement.md §3.10, §3.11).

/** What a repeated reserve reads of the reservation its id already names. */
export interface ReserveRecord {
  /** The amounts its reserve held. */
  readonly amounts: Amounts;
  /** Its hold's expiry, as it is now (later than its reserve's if extended). */
  readonly expiresAt: number;
  /** The fingerprint its reserve gave; undefined for none, which no reserve can repeat. */
  readonly fingerprint: string | undefined;
}

/**
 * A reserve whose id a remembered reservation already has (§3.10), after the sweep: with the same
 * fingerprint, that reservation's decision, unchanged (`already`, its amounts and expiry), holding
 * nothing more, whatever it became since (held, committed, released or expired); otherwise, or
 * when either has no fingerprint, the ERR_RESERVATION_CONFLICT to refuse it with. Undefined when
 * no reservation has the id: the reserve is decided.
 */
export function answerRepeatedReserve(
  id: string,
  fingerprint: string | undefined,
  record: ReserveRecord | undefined,
  expired: readonly string[],
  at: number,
): ReserveOutcome | AllowanceError | undefined {
  if (record === undefined) return undefined;
  if (fingerprint === undefined || record.fingerprint !== fingerprint)
    return reservationConflict(id, fingerprint !== undefined && record.fingerprint !== undefined);
  return {
    ok: true,
    amounts: record.amounts,
    expired,
    at,
    already: true,
    expiresAt: record.expiresAt,
  };
}

/**
 * When a hold made at the ledger's time `at` for `ttlMs` ends: `at + ttlMs`, but never after
 * `notAfter`, the end of the chain it was made for (§3.11). A hold never outlives its chain.
 */
export function holdEnd(at: number, ttlMs: number, notAfter: number | undefined): number {
  const end = at + ttlMs;
  return notAfter !== undefined && notAfter < end ? notAfter : end;
}

export type ExtendOutcome =
  | { readonly status: "held"; readonly expiresAt: number; readonly expired: readonly string[] }
  | {
      readonly status: "committed" | "released" | "expired" | "unknown";
      readonly expired: readonly string[];
    };

/**
 * An extend's answer when there is no hold to extend (§3.11), after the sweep: unknown, or the
 * status of a reservation no longer held (a hold whose expiry has come was expired by the sweep,
 * not extended). Undefined for a held one: `extendedExpiry` gives its new expiry.
 */
export function answerWithoutExtend(
  state: { readonly status: ReservationStatus } | undefined,
  expired: readonly string[],
): ExtendOutcome | undefined {
  if (state === undefined) return { status: "unknown", expired };
  if (state.status !== "held") return { status: state.status, expired };
  return undefined;
}

/**
 * A held reservation's expiry after an extend at the ledger's time `at` by `ttlMs` (§3.11): the
 * hold's end from now (holdEnd: never past `notAfter`), but never earlier than it was: an extend
 * never shortens a hold, so that retrying one is harmless.
 */
export function extendedExpiry(
  expiresAt: number,
  at: number,
  ttlMs: number,
  notAfter: number | undefined,
): number {
  return Math.max(expiresAt, holdEnd(at, ttlMs, notAfter));
}

/** The answer to an extend of a held reservation: its expiry now. */
export function extended(expiresAt: number, expired: readonly string[]): ExtendOutcome {
  return { status: "held", expiresAt, expired };
}
