/**
 * The ledger interface (spec/enforcement.md §3). A ledger keeps, per account, what was spent and
 * what is held, and the reservations that hold it. The rule it applies is written once, in
 * rule.ts (decide, charge, sweep, thresholds); each ledger stores what the rule reads and writes,
 * and applies each operation as one atomic step, so memory, SQLite and Redis give the same
 * outcomes for the same sequence, which the ledger vectors (spec/vectors/ledger) state.
 *
 * This module holds the interface and the argument checks every ledger runs first.
 */
import {
  LINE_KINDS,
  MAX_CLOCK_SKEW_MS,
  type Account,
  type Amounts,
  type CommitOutcome,
  type DebtLimits,
  type ExtendOutcome,
  type LedgerLine,
  type ReleaseOutcome,
  type ReserveOutcome,
  type SettleOutcome,
} from "./rule.js";

export {
  LINE_KINDS,
  MAX_AMOUNT,
  MAX_CLOCK_SKEW_MS,
  THRESHOLD_PERCENTS,
  totalTooLarge,
  type Amounts,
  type ChargedLine,
  type CommitOutcome,
  type LedgerLine,
  type LineKind,
  type ReleaseOutcome,
  type ReserveOutcome,
  type ThresholdPercent,
  type WouldBe,
  type DebtLimits,
  type SettledLine,
  type SettleOutcome,
  type ExtendOutcome,
} from "./rule.js";

export interface ReserveOp {
  /** Reservation id; starts with the root link id and a dot (the Redis hash tag). */
  readonly id: string;
  /** The root link id: every account of a chain belongs to one root. */
  readonly root: string;
  /** Every ledger may cache what it derives from a lines array: do not change one after use. */
  readonly lines: readonly LedgerLine[];
  readonly amounts: Amounts;
  /** Kinds whose amount may be lowered to what fits, each with the least acceptable amount. */
  readonly minimums?: Readonly<Partial<Record<"tokens" | "usdMicros", number>>>;
  /** How long the hold lasts, from the ledger's time of the reserve (spec/enforcement.md §3.8). */
  readonly ttlMs: number;
  /**
   * The caller's clock when it asked (epoch ms): refused with ERR_CLOCK_SKEW when it is further
   * from the ledger's time than the ledger allows (§3.8). Absent: not compared.
   */
  readonly clientNowMs?: number;
  /**
   * The ledger's time for this operation (epoch ms), for tests and vectors; absent, the ledger
   * reads its own clock (§3.8), as every production caller leaves it.
   */
  readonly now?: number;
  /**
   * Hold the amounts asked even where the rule denies or lowers them, and say what it would have
   * answered (`wouldBe`): the enforcer's shadow mode (spec/enforcement.md §3.7). Default false.
   */
  readonly shadow?: boolean;
  /**
   * The enforcer's overage policy (spec/enforcement.md §3.9): a capped line whose outstanding debt
   * is past its kind's limit here denies the reserve, whatever its amount. Absent: none.
   */
  readonly debtLimits?: DebtLimits;
  /**
   * What the reserve asks, as a canonical digest (the enforcer's: a SHA-256 of the request), kept
   * with the reservation: a reserve of the same id with the same fingerprint answers the first
   * decision instead of holding again (spec/enforcement.md §3.10). Absent: the id cannot be
   * reserved again.
   */
  readonly fingerprint?: string;
  /**
   * The end of the chain the hold is for (epoch ms: its links' least `exp`): the hold never lasts
   * past it, and no extend moves it past it (spec/enforcement.md §3.11). Absent: no bound but the
   * TTL's.
   */
  readonly notAfter?: number;
}

export interface Balance {
  readonly spent: number;
  readonly held: number;
  /** The debt settled on the account (§3.9), when there is any. */
  readonly settled?: number;
}

export interface BalancesOutcome {
  /** By account name (a rate window's: its current bucket's balance). */
  readonly balances: ReadonlyMap<string, Balance>;
  readonly expired: readonly string[];
  /** The ledger's time of the read (epoch ms). */
  readonly at: number;
}

/**
 * An account to read: its name, or a line with its window (a LedgerLine is one), whose current
 * bucket at the ledger's time is read (spec/enforcement.md §4).
 */
export type AccountRef = string | { readonly account: string; readonly windowMs?: number };

/**
 * What every ledger takes about time (spec/enforcement.md §3.8): its clock, and how far a caller's
 * clock may be from it.
 */
export interface LedgerClockOptions {
  /**
   * The ledger's clock, epoch milliseconds like `Date.now` (the default for memory and SQLite: the
   * host's clock; Redis reads the server's `TIME`). For tests: every operation then runs at its
   * time, unless the operation gives its own.
   */
  readonly now?: () => number;
  /** The largest skew a reserve's `clientNowMs` may have from the ledger's time. Default 5,000. */
  readonly maxClockSkewMs?: number;
}

/**
 * Every method checks all of its arguments first (checkReserveOp, checkCommitArgs,
 * checkReleaseArgs, checkBalancesArgs; spec/enforcement.md §3.6) and refuses a bad call with a
 * TypeError or RangeError that changes nothing: a ledger may be called directly.
 */
export interface Ledger {
  readonly name: string;
  /**
   * True when the promise-returning methods group the operations asked for in one event-loop turn
   * into one step (one transaction, one script call), each still as if alone. The enforcer then
   * calls those, not a synchronous ledger's `…Sync` methods, from its own promise-returning ones.
   */
  readonly groupsCalls?: boolean;
  /**
   * True when `commit` takes `{ receipt: true }` (spec/receipts.md §2): the ledger then assigns the
   * commit the root's next receipt sequence number, atomically with the charge, and answers its
   * entry and the one before. An enforcer that signs receipts needs it.
   */
  readonly receipts?: boolean;
  /**
   * Refuses an id another reservation has (held, or closed and still remembered) with an
   * AllowanceError `ERR_RESERVATION_CONFLICT`, after the expiry sweep.
   */
  reserve(op: ReserveOp): Promise<ReserveOutcome>;
  /**
   * Charges `actual` (per kind) for a reservation; idempotent by id. An amount of -1 in `actual`
   * means "as reserved". A reservation whose hold expired is still charged (`late`): the work
   * happened. A released one is not. The outcome lists in `lines` exactly the capped lines whose
   * spent crossed a threshold (rule.ts `thresholdsCrossed`), in line order, each as it was given
   * to reserve (account, kind, cap, link and field) with its spent before and after; a repeated
   * commit lists none.
   */
  commit(
    id: string,
    actual: Amounts,
    now?: number,
    options?: CommitOptions,
  ): Promise<CommitOutcome>;
  /** Returns a reservation's hold; idempotent by id. */
  release(id: string, now?: number): Promise<ReleaseOutcome>;
  /**
   * Moves a held reservation's expiry to `ttlMs` after the ledger's time, never past the
   * `notAfter` its reserve gave and never earlier than it was (spec/enforcement.md §3.11), after
   * releasing this root's expired holds. A reservation that is not held is answered with its
   * status (`unknown`, `committed`, `released` or `expired`), unchanged.
   */
  extend(id: string, ttlMs: number, now?: number): Promise<ExtendOutcome>;
  /**
   * Spent and held per account, after releasing this root's expired holds (whose ids it returns).
   * `now`, here and in commit and release: the ledger's time for the operation, for tests and
   * vectors; absent, the ledger's own clock (ReserveOp.now).
   */
  balances(root: string, accounts: readonly AccountRef[], now?: number): Promise<BalancesOutcome>;
  /**
   * Settles the outstanding debt of the capped lines given (spec/enforcement.md §3.9), after
   * releasing this root's expired holds: the overage policy then no longer blocks on it. Needed
   * by an enforcer whose overage policy is not `record`. A window's line is its current bucket's
   * account at the ledger's time.
   */
  settle?(root: string, lines: readonly LedgerLine[], now?: number): Promise<SettleOutcome>;
  close(): Promise<void>;
}

/**
 * A ledger whose operations are done when they return (memory, SQLite). Each `…Sync` method is
 * the whole operation, and its promise-returning twin gives the same outcome; the enforcer calls
 * the synchronous ones when a ledger has them, which saves a promise per call.
 */
export interface SyncLedger extends Ledger {
  reserveSync(op: ReserveOp): ReserveOutcome;
  commitSync(id: string, actual: Amounts, now?: number, options?: CommitOptions): CommitOutcome;
  releaseSync(id: string, now?: number): ReleaseOutcome;
  extendSync(id: string, ttlMs: number, now?: number): ExtendOutcome;
}

/** A SyncLedger whose promise-returning methods are its synchronous ones, wrapped. */
export abstract class SynchronousLedger implements SyncLedger {
  abstract readonly name: string;
  abstract reserveSync(op: ReserveOp): ReserveOutcome;
  abstract commitSync(
    id: string,
    actual: Amounts,
    now?: number,
    options?: CommitOptions,
  ): CommitOutcome;
  abstract releaseSync(id: string, now?: number): ReleaseOutcome;
  abstract extendSync(id: string, ttlMs: number, now?: number): ExtendOutcome;
  abstract balances(
    root: string,
    accounts: readonly AccountRef[],
    now?: number,
  ): Promise<BalancesOutcome>;
  abstract close(): Promise<void>;

  async reserve(op: ReserveOp): Promise<ReserveOutcome> {
    return this.reserveSync(op);
  }

  async commit(
    id: string,
    actual: Amounts,
    now?: number,
    options?: CommitOptions,
  ): Promise<CommitOutcome> {
    return this.commitSync(id, actual, now, options);
  }

  async release(id: string, now?: number): Promise<ReleaseOutcome> {
    return this.releaseSync(id, now);
  }

  async extend(id: string, ttlMs: number, now?: number): Promise<ExtendOutcome> {
    return this.extendSync(id, ttlMs, now);
  }
}

export function isSyncLedger(ledger: Ledger): ledger is SyncLedger {
  const l = ledger as Partial<SyncLedger>;
  return (
    typeof l.reserveSync === "function" &&
    typeof l.commitSync === "function" &&
    typeof l.releaseSync === "function" &&
    typeof l.extendSync === "function"
  );
}

/** The latest time a ledger takes, in epoch ms: the end of JavaScript's Date range (year 275760). */
export const MAX_TIME_MS = 8.64e15;

/** The longest a hold may last: 7 days (spec/enforcement.md §3.6). A longer TTL is refused. */
export const MAX_HOLD_MS = 7 * 86_400_000;

/** The longest reservation id, root link id or account name a ledger takes, in UTF-16 units. */
export const MAX_NAME_LENGTH = 512;

/**
 * Refuses a key of `options` that is not in `known`: a misspelt option (`ledgr`, `existingonly`)
 * would leave its default in force unseen, which for some of them is the loose choice. The caller
 * has checked that `options` is an object.
 */
export function checkKnownKeys(options: object, known: readonly string[], what: string): void {
  for (const key of Object.keys(options))
    if (!known.includes(key))
      throw new TypeError(`unknown option "${key}"${what}; the options are ${known.join(", ")}`);
}

/**
 * An integer option from `min` to `max`, `fallback` when left out (no fallback: required). Null is
 * not left out, and
 * anything but a safe integer in range is a RangeError naming the option (NaN compares false with
 * every bound, so it is never let through as "no limit").
 */
export function integerOption(
  value: unknown,
  name: string,
  fallback: number | undefined,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const n = value === undefined ? fallback : value;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < min || n > max)
    throw new RangeError(`"${name}" expected an integer from ${min} to ${max}, got ${shown(n)}`);
  return n;
}

/**
 * A boolean option, false when left out. Not read for truthiness: a string "false" is truthy, and
 * null is a mistake, not "no preference".
 */
export function checkedBoolean(value: unknown, name: string): boolean {
  if (value === undefined) return false;
  if (typeof value !== "boolean")
    throw new TypeError(`"${name}" expected a boolean, got ${shown(value)}`);
  return value;
}

/** A ledger's options: its own `known` ones and the clock's (LedgerClockOptions). */
export function checkKnownOptions(options: object, known: readonly string[], ledger: string): void {
  if (options === null || typeof options !== "object")
    throw new TypeError(`the ${ledger} ledger's options expected an object, got ${shown(options)}`);
  checkKnownKeys(options, [...known, "now", "maxClockSkewMs"], ` of the ${ledger} ledger`);
}

/**
 * A ledger's clock options, checked: the clock (default `Date.now`, the host's) and the skew bound
 * (default MAX_CLOCK_SKEW_MS).
 */
export function checkedClockOptions(options: LedgerClockOptions): {
  readonly now: () => number;
  readonly maxClockSkewMs: number;
} {
  // null is not "the default": only an option left out is.
  const now = options.now === undefined ? Date.now : options.now;
  if (typeof now !== "function")
    throw new TypeError(
      `"now" expected a function returning epoch milliseconds, got ${shown(now)}`,
    );
  const maxClockSkewMs =
    options.maxClockSkewMs === undefined ? MAX_CLOCK_SKEW_MS : options.maxClockSkewMs;
  if (typeof maxClockSkewMs !== "number")
    throw new TypeError(`"maxClockSkewMs" expected a number of ms, got ${shown(maxClockSkewMs)}`);
  if (!Number.isSafeInteger(maxClockSkewMs) || maxClockSkewMs < 0)
    throw new RangeError(
      `"maxClockSkewMs" expected an integer from 0 to 2^53 - 1, got ${shown(maxClockSkewMs)}`,
    );
  return { now, maxClockSkewMs };
}

/**
 * The ledger's time of an operation (spec/enforcement.md §3.8): the time it gives (tests and
 * vectors, checked with its arguments), else the ledger's clock, read now and checked: a clock
 * that answers NaN would make every expiry and bucket wrong.
 */
export function timeOf(given: number | undefined, clock: () => number): number {
  return given === undefined ? checkedTime(clock(), "now()") : given;
}

/** How a value is shown in an error message: strings quoted, objects by their type. */
export function shown(value: unknown): string {
  if (typeof value === "string")
    return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
  if (
    typeof value === "number" ||
    typeof value === "boolean" ||
    typeof value === "bigint" ||
    value === undefined ||
    value === null
  )
    return String(value);
  if (value instanceof Date) return `Date(${String(value.getTime())})`;
  return Array.isArray(value) ? "an array" : `a ${typeof value}`;
}

/** A time in epoch ms, checked: a finite number from 0 to MAX_TIME_MS (fractions allowed). */
export function checkedTime(value: number, name: string): number {
  if (typeof value !== "number")
    throw new TypeError(`"${name}" expected a time in epoch milliseconds, got ${shown(value)}`);
  if (!(value >= 0 && value <= MAX_TIME_MS))
    throw new RangeError(
      `"${name}" expected a time in epoch milliseconds from 0 to ${MAX_TIME_MS}, got ${shown(value)}`,
    );
  return value;
}

/**
 * An amount, checked: an integer from 0 to MAX_AMOUNT; where `allowAsReserved`, also -1, the
 * commit's marker for "as reserved" (resolveActual).
 */
export function checkedAmount(value: number, name: string, allowAsReserved: boolean): number {
  if (typeof value !== "number")
    throw new TypeError(`"${name}" expected an integer amount, got ${shown(value)}`);
  if (!Number.isSafeInteger(value) || (value < 0 && !(allowAsReserved && value === -1))) {
    throw new RangeError(
      `"${name}" expected an integer from ${allowAsReserved ? "-1 (as reserved)" : "0"} to 2^53 - 1, got ${shown(value)}`,
    );
  }
  return value;
}

/** A string argument, checked: well-formed Unicode (else a TypeError), 1 to MAX_NAME_LENGTH units (else a RangeError). */
export function checkedName(value: string, name: string): string {
  // Ill-formed Unicode is a wrong kind of string (UTF-8 cannot carry it apart): a TypeError.
  if (typeof value !== "string" || !value.isWellFormed())
    throw new TypeError(`"${name}" expected a well-formed string, got ${shown(value)}`);
  if (value.length === 0 || value.length > MAX_NAME_LENGTH)
    throw new RangeError(
      `"${name}" expected a string of 1 to ${MAX_NAME_LENGTH} characters, got ${shown(value)}`,
    );
  return value;
}

/**
 * The last root checkedRoot passed (a chain's operations name the same root again and again); a
 * symbol until then, which no argument can equal.
 */
let lastRoot: unknown = Symbol("no root checked yet");

/** A root link id, checked: a name with no dot (ids are `root.` + more) and no `{` or `}` (the Redis hash tag). */
export function checkedRoot(value: string): string {
  // The same string passes the same checks: only a new root is scanned.
  if (value === lastRoot) return value;
  if (
    typeof value !== "string" ||
    value.length === 0 ||
    value.length > MAX_NAME_LENGTH ||
    !value.isWellFormed() ||
    /[.{}]/.test(value)
  ) {
    throw new TypeError(
      `"root" expected a root link id (1 to ${MAX_NAME_LENGTH} well-formed characters, no ".", "{" or "}"), got ${shown(value)}`,
    );
  }
  lastRoot = value;
  return value;
}

/** A plain object (an object literal's prototype or none): not null, an array, a Date or a class instance. */
export function checkedObject(value: unknown, name: string): void {
  const proto =
    typeof value === "object" && value !== null
      ? (Object.getPrototypeOf(value) as unknown)
      : undefined;
  if (proto !== Object.prototype && proto !== null)
    throw new TypeError(`"${name}" expected a plain object, got ${shown(value)}`);
}

/** Amounts, checked: an object with the four kinds (see checkedAmount). */
export function checkedAmounts(value: Amounts, name: string, allowAsReserved: boolean): Amounts {
  checkedObject(value, name);
  checkedAmount(value.tokens, `${name}.tokens`, allowAsReserved);
  checkedAmount(value.usdMicros, `${name}.usdMicros`, allowAsReserved);
  checkedAmount(value.risk, `${name}.risk`, allowAsReserved);
  checkedAmount(value.requests, `${name}.requests`, allowAsReserved);
  return value;
}

/**
 * Lines arrays found well-formed, and frozen with every line, so that they cannot change after the
 * check: only those are taken on trust the next time (the enforcer freezes its own).
 */
const checkedLineSets = new WeakSet<readonly LedgerLine[]>();

/**
 * A lines array, checked: each line an account name (each once), a kind, a cap (null, or an
 * amount), a link index and id, and a field.
 */
export function checkedLines(lines: readonly LedgerLine[]): readonly LedgerLine[] {
  if (checkedLineSets.has(lines)) return lines;
  if (!Array.isArray(lines)) throw new TypeError(`"lines" expected an array, got ${shown(lines)}`);
  let frozen = Object.isFrozen(lines);
  // Each account once: a total is then checked per line, before anything changes (MAX_AMOUNT).
  const seen = new Set<string>();
  lines.forEach((line, i) => {
    checkedObject(line, `lines[${i}]`);
    checkedName(line.account, `lines[${i}].account`);
    if (seen.has(line.account))
      throw new TypeError(`"lines[${i}].account" repeats account ${shown(line.account)}`);
    seen.add(line.account);
    if (typeof line.kind !== "string" || !LINE_KINDS.includes(line.kind))
      throw new TypeError(
        `"lines[${i}].kind" expected tokens, usdMicros, risk or requests, got ${shown(line.kind)}`,
      );
    if (line.cap !== null) checkedAmount(line.cap, `lines[${i}].cap`, false);
    if (typeof line.linkIndex !== "number")
      throw new TypeError(
        `"lines[${i}].linkIndex" expected a link index, got ${shown(line.linkIndex)}`,
      );
    if (!Number.isSafeInteger(line.linkIndex) || line.linkIndex < 0)
      throw new RangeError(
        `"lines[${i}].linkIndex" expected an integer from 0 to 2^53 - 1, got ${shown(line.linkIndex)}`,
      );
    checkedName(line.linkId, `lines[${i}].linkId`);
    checkedName(line.field, `lines[${i}].field`);
    if (line.windowMs !== undefined) checkedWindow(line.windowMs, `lines[${i}].windowMs`);
    frozen &&= Object.isFrozen(line);
  });
  if (frozen) checkedLineSets.add(lines);
  return lines;
}

/**
 * Every argument of a reserve, checked (spec/enforcement.md §3.6): a TypeError for a wrong type, a
 * RangeError for a value out of range, naming the argument and the value. Every ledger calls it
 * first: a ledger may be called directly, not only by the enforcer.
 */
export function checkReserveOp(op: ReserveOp): void {
  checkedObject(op, "op");
  const root = checkedRoot(op.root);
  checkedName(op.id, "id");
  if (!idOfRoot(op.id, root))
    throw new TypeError(`"id" must start with the root link id and a dot, got ${shown(op.id)}`);
  checkedLines(op.lines);
  checkedAmounts(op.amounts, "amounts", false);
  if (op.now !== undefined) checkedTime(op.now, "now");
  if (op.clientNowMs !== undefined) checkedTime(op.clientNowMs, "clientNowMs");
  if (typeof op.ttlMs !== "number")
    throw new TypeError(`"ttlMs" expected a number of milliseconds, got ${shown(op.ttlMs)}`);
  if (!(op.ttlMs > 0 && op.ttlMs <= MAX_HOLD_MS))
    throw new RangeError(
      `"ttlMs" expected more than 0 and at most ${MAX_HOLD_MS} ms (7 days), got ${shown(op.ttlMs)}`,
    );
  if (op.shadow !== undefined && typeof op.shadow !== "boolean")
    throw new TypeError(`"shadow" expected a boolean, got ${shown(op.shadow)}`);
  if (op.debtLimits !== undefined) checkedDebtLimits(op.debtLimits, "debtLimits");
  if (op.fingerprint !== undefined) checkedName(op.fingerprint, "fingerprint");
  if (op.notAfter !== undefined) checkedTime(op.notAfter, "notAfter");
  if (op.minimums !== undefined) {
    checkedObject(op.minimums, "minimums");
    for (const key of Object.keys(op.minimums))
      if (key !== "tokens" && key !== "usdMicros")
        throw new TypeError(`"minimums" takes tokens and usdMicros, got ${shown(key)}`);
    if (op.minimums.tokens !== undefined)
      checkedAmount(op.minimums.tokens, "minimums.tokens", false);
    if (op.minimums.usdMicros !== undefined)
      checkedAmount(op.minimums.usdMicros, "minimums.usdMicros", false);
  }
}

/** An account's balance as `balances` answers it: spent and held, and settled when there is any. */
export function balanceOf(account: Account | undefined): Balance {
  if (account === undefined) return { spent: 0, held: 0 };
  const settled = account.settled ?? 0;
  return settled > 0
    ? { spent: account.spent, held: account.held, settled }
    : { spent: account.spent, held: account.held };
}

/** Debt limits, checked: a plain object of amounts by kind (rule.ts DebtLimits). */
export function checkedDebtLimits(value: DebtLimits, name: string): DebtLimits {
  checkedObject(value, name);
  for (const key of Object.keys(value)) {
    if (!(LINE_KINDS as readonly string[]).includes(key))
      throw new TypeError(
        `"${name}" takes tokens, usdMicros, risk and requests, got ${shown(key)}`,
      );
    checkedAmount(value[key as keyof DebtLimits] as number, `${name}.${key}`, false);
  }
  return value;
}

/** A settle's arguments, checked as checkReserveOp does. */
export function checkSettleArgs(
  root: string,
  lines: readonly LedgerLine[],
  now: number | undefined,
): void {
  checkedRoot(root);
  checkedLines(lines);
  if (now !== undefined) checkedTime(now, "now");
}

/** A commit's arguments, checked as checkReserveOp does. */
export function checkCommitArgs(
  id: string,
  actual: Amounts,
  now: number | undefined,
  options?: CommitOptions,
): void {
  checkedName(id, "id");
  checkedAmounts(actual, "actual", true);
  if (now !== undefined) checkedTime(now, "now");
  if (options !== undefined) {
    checkedObject(options, "options");
    for (const key of Object.keys(options))
      if (key !== "receipt") throw new TypeError(`"options" takes receipt, got ${shown(key)}`);
    if (options.receipt !== undefined && typeof options.receipt !== "boolean")
      throw new TypeError(`"options.receipt" expected a boolean, got ${shown(options.receipt)}`);
  }
}

/** What a commit may ask of the ledger besides the charge. */
export interface CommitOptions {
  /**
   * Assign the commit a receipt sequence number and answer its entry (spec/receipts.md §2), on a
   * ledger with `receipts`. Default false: no number is used.
   */
  readonly receipt?: boolean;
}

/** A release's arguments, checked as checkReserveOp does. */
export function checkReleaseArgs(id: string, now: number | undefined): void {
  checkedName(id, "id");
  if (now !== undefined) checkedTime(now, "now");
}

/** An extend's arguments, checked as checkReserveOp does: the TTL as a reserve's. */
export function checkExtendArgs(id: string, ttlMs: number, now: number | undefined): void {
  checkedName(id, "id");
  if (typeof ttlMs !== "number")
    throw new TypeError(`"ttlMs" expected a number of milliseconds, got ${shown(ttlMs)}`);
  if (!(ttlMs > 0 && ttlMs <= MAX_HOLD_MS))
    throw new RangeError(
      `"ttlMs" expected more than 0 and at most ${MAX_HOLD_MS} ms (7 days), got ${shown(ttlMs)}`,
    );
  if (now !== undefined) checkedTime(now, "now");
}

/** A balances call's arguments, checked as checkReserveOp does. */
export function checkBalancesArgs(
  root: string,
  accounts: readonly AccountRef[],
  now: number | undefined,
): void {
  checkedRoot(root);
  if (!Array.isArray(accounts))
    throw new TypeError(`"accounts" expected an array of account names, got ${shown(accounts)}`);
  accounts.forEach((account, i) => {
    if (typeof account === "string") return void checkedName(account, `accounts[${i}]`);
    checkedObject(account, `accounts[${i}]`);
    checkedName(account.account, `accounts[${i}].account`);
    if (account.windowMs !== undefined) checkedWindow(account.windowMs, `accounts[${i}].windowMs`);
  });
  if (now !== undefined) checkedTime(now, "now");
}

/** An account's name, whether given as a name or as a line. */
export function nameOf(account: AccountRef): string {
  return typeof account === "string" ? account : account.account;
}

/** A rate window's length, checked: an integer number of milliseconds from 1 to 2^53 - 1. */
export function checkedWindow(value: number, name: string): number {
  if (typeof value !== "number")
    throw new TypeError(`"${name}" expected a window length in ms, got ${shown(value)}`);
  if (!Number.isSafeInteger(value) || value < 1)
    throw new RangeError(`"${name}" expected an integer from 1 to 2^53 - 1, got ${shown(value)}`);
  return value;
}

/** The root link id a reservation id starts with. */
export function rootOfReservation(id: string): string {
  const dot = id.indexOf(".");
  return dot > 0 ? id.slice(0, dot) : "";
}

/** Whether `id` starts with `root` and a dot, as every reservation id must (rootOfReservation). */
export function idOfRoot(id: string, root: string): boolean {
  // lastIndexOf(root, 0) is startsWith, and much faster on a string built by concatenation.
  return (
    root.length > 0 &&
    id.charCodeAt(root.length) === 46 &&
    id.lastIndexOf(root, 0) === 0 &&
    root.indexOf(".") < 0
  );
}
