/**
 * The ledger interface (spec/enforcement.md §3). A ledger keeps, per account, what was spent and
 * what is held, and the reservations that hold it. Every implementation runs exactly the same
 * algorithm, so memory, SQLite and Redis give the same decisions for the same sequence:
 *
 * reserve: (1) release the holds of this root whose expiry has passed; (2) for each line, the
 * available amount is cap − spent − held (no cap: unlimited); (3) for a kind whose caps the caller
 * accepts, the amount is lowered to the least available on that kind's capped lines, unless that
 * is below the caller's minimum, in which case the request stays as asked; (4) the first line whose
 * amount is positive and exceeds its available amount denies; (5) otherwise every line's held
 * grows by its amount and the reservation is stored. All of it is one atomic step.
 */

/** What a line counts. A reservation has one amount per kind; every line of a kind holds it. */
export type LineKind = "tokens" | "usdMicros" | "risk" | "requests";
export const LINE_KINDS: readonly LineKind[] = ["tokens", "usdMicros", "risk", "requests"];

export type Amounts = Readonly<Record<LineKind, number>>;

export interface LedgerLine {
  /** Account name, unique per link, field, provider and rate-window bucket. */
  readonly account: string;
  readonly kind: LineKind;
  /** The cap on spent + held; null for an account that is only counted. */
  readonly cap: number | null;
}

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
  /** Epoch milliseconds. */
  readonly expiresAt: number;
  readonly now: number;
}

export type ReserveOutcome =
  | { readonly ok: true; readonly amounts: Amounts; readonly expired: readonly string[] }
  | {
      readonly ok: false;
      readonly line: number;
      readonly available: number;
      readonly expired: readonly string[];
    };

/**
 * A capped line whose spent crossed a threshold (50, 80 or 100% of its cap) in a commit: its
 * spent before and after. Lines that crossed none are not reported (see `crossedThreshold`).
 */
export interface ChargedLine {
  readonly account: string;
  readonly kind: LineKind;
  readonly cap: number | null;
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
    }
  | { readonly status: "released" | "unknown"; readonly expired: readonly string[] };

export type ReleaseOutcome = {
  readonly status: "released" | "committed" | "expired" | "unknown";
  readonly already: boolean;
  readonly expired: readonly string[];
};

export interface Balance {
  readonly spent: number;
  readonly held: number;
}

export interface BalancesOutcome {
  readonly balances: ReadonlyMap<string, Balance>;
  readonly expired: readonly string[];
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
   * Commit outcomes list in `lines` exactly the capped lines for which `crossedThreshold` holds, in
   * line order; a repeated commit lists none.
   */
  reserve(op: ReserveOp): Promise<ReserveOutcome>;
  /**
   * Charges `actual` (per kind) for a reservation; idempotent by id. An amount of -1 in `actual`
   * means "as reserved" (see resolveActual). A reservation whose hold expired is still charged
   * (`late`): the work happened. A released one is not.
   */
  commit(id: string, actual: Amounts, now: number): Promise<CommitOutcome>;
  /** Returns a reservation's hold; idempotent by id. */
  release(id: string, now: number): Promise<ReleaseOutcome>;
  /** Spent and held per account, after releasing this root's expired holds (whose ids it returns). */
  balances(root: string, accounts: readonly string[], now: number): Promise<BalancesOutcome>;
  close(): Promise<void>;
}

/**
 * A ledger whose operations are done when they return (memory, SQLite). Each `…Sync` method is
 * the whole operation, and its promise-returning twin gives the same outcome; the enforcer calls
 * the synchronous ones when a ledger has them, which saves a promise per call.
 */
export interface SyncLedger extends Ledger {
  reserveSync(op: ReserveOp): ReserveOutcome;
  commitSync(id: string, actual: Amounts, now: number): CommitOutcome;
  releaseSync(id: string, now: number): ReleaseOutcome;
}

/** A SyncLedger whose promise-returning methods are its synchronous ones, wrapped. */
export abstract class SynchronousLedger implements SyncLedger {
  abstract readonly name: string;
  abstract reserveSync(op: ReserveOp): ReserveOutcome;
  abstract commitSync(id: string, actual: Amounts, now: number): CommitOutcome;
  abstract releaseSync(id: string, now: number): ReleaseOutcome;
  abstract balances(
    root: string,
    accounts: readonly string[],
    now: number,
  ): Promise<BalancesOutcome>;
  abstract close(): Promise<void>;

  async reserve(op: ReserveOp): Promise<ReserveOutcome> {
    return this.reserveSync(op);
  }

  async commit(id: string, actual: Amounts, now: number): Promise<CommitOutcome> {
    return this.commitSync(id, actual, now);
  }

  async release(id: string, now: number): Promise<ReleaseOutcome> {
    return this.releaseSync(id, now);
  }
}

export function isSyncLedger(ledger: Ledger): ledger is SyncLedger {
  const l = ledger as Partial<SyncLedger>;
  return (
    typeof l.reserveSync === "function" &&
    typeof l.commitSync === "function" &&
    typeof l.releaseSync === "function"
  );
}

/** The percentages of a cap whose crossing raises a threshold event. */
export const THRESHOLD_PERCENTS = [50, 80, 100] as const;

/**
 * Whether a commit that took a capped line's spent from `before` to `after` crossed one of
 * THRESHOLD_PERCENTS of `cap`. The mark is `cap * percent / 100` in double arithmetic, which the
 * Redis ledger's Lua computes identically.
 */
export function crossedThreshold(cap: number, before: number, after: number): boolean {
  if (cap <= 0 || after <= before) return false;
  for (const percent of THRESHOLD_PERCENTS) {
    const mark = (cap * percent) / 100;
    if (before < mark && after >= mark) return true;
  }
  return false;
}

/**
 * The largest amount, cap or total (spent + held + a request) a ledger keeps: 2^53 − 1, the largest
 * integer a double holds exactly (spec/enforcement.md §3.6). A call that would take a total past it
 * is refused with a RangeError, never rounded.
 */
export const MAX_AMOUNT = Number.MAX_SAFE_INTEGER;

/** The latest time a ledger takes, in epoch ms: the end of JavaScript's Date range (year 275760). */
export const MAX_TIME_MS = 8.64e15;

/** The longest a hold may last: 7 days (spec/enforcement.md §3.6). A longer TTL is refused. */
export const MAX_HOLD_MS = 7 * 86_400_000;

/** The longest reservation id, root link id or account name a ledger takes, in UTF-16 units. */
export const MAX_NAME_LENGTH = 512;

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

/** A root link id, checked: a name with no dot (ids are `root.` + more) and no `{` or `}` (the Redis hash tag). */
export function checkedRoot(value: string): string {
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

/** A lines array, checked: each line an account name (each once), a kind and a cap (null, or an amount). */
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
  const now = checkedTime(op.now, "now");
  const expiresAt = checkedTime(op.expiresAt, "expiresAt");
  if (!(expiresAt > now && expiresAt - now <= MAX_HOLD_MS))
    throw new RangeError(
      `"expiresAt" expected a time after "now" by at most ${MAX_HOLD_MS} ms (7 days), got ${shown(expiresAt)} with now ${shown(now)}`,
    );
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

/** A commit's arguments, checked as checkReserveOp does. */
export function checkCommitArgs(id: string, actual: Amounts, now: number): void {
  checkedName(id, "id");
  checkedAmounts(actual, "actual", true);
  checkedTime(now, "now");
}

/** A release's arguments, checked as checkReserveOp does. */
export function checkReleaseArgs(id: string, now: number): void {
  checkedName(id, "id");
  checkedTime(now, "now");
}

/** A balances call's arguments, checked as checkReserveOp does. */
export function checkBalancesArgs(root: string, accounts: readonly string[], now: number): void {
  checkedRoot(root);
  if (!Array.isArray(accounts))
    throw new TypeError(`"accounts" expected an array of account names, got ${shown(accounts)}`);
  accounts.forEach((account, i) => checkedName(account, `accounts[${i}]`));
  checkedTime(now, "now");
}

/** The RangeError for a total that would pass MAX_AMOUNT on an account. */
export function totalTooLarge(account: string, total: number): RangeError {
  return new RangeError(
    `the total on account ${shown(account)} would be ${total}, past the ledger's maximum of 2^53 - 1: refused, not rounded`,
  );
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

/**
 * The amounts a reservation will hold, by the rule in the header comment; shared by the memory and
 * SQLite ledgers (the Redis ledger runs the same rule in Lua).
 */
export function decideAmounts(
  op: ReserveOp,
  available: readonly number[],
): { amounts: Amounts; line: number } {
  const lines = op.lines;
  let amounts: Amounts = op.amounts;
  const minimums = op.minimums;
  if (minimums !== undefined) {
    const lowered: Record<LineKind, number> = {
      tokens: amounts.tokens,
      usdMicros: amounts.usdMicros,
      risk: amounts.risk,
      requests: amounts.requests,
    };
    for (const kind of ["tokens", "usdMicros"] as const) {
      const minimum = minimums[kind];
      if (minimum === undefined) continue;
      let least = Number.POSITIVE_INFINITY;
      for (let i = 0; i < lines.length; i++) {
        const line = lines[i] as LedgerLine;
        if (line.kind === kind && line.cap !== null)
          least = Math.min(least, available[i] as number);
      }
      const amount = Math.min(amounts[kind], Math.max(0, least));
      if (amount >= minimum) lowered[kind] = amount;
    }
    amounts = lowered;
  }
  for (let i = 0; i < lines.length; i++) {
    const amount = amounts[(lines[i] as LedgerLine).kind];
    if (amount > 0 && amount > (available[i] as number)) return { amounts, line: i };
  }
  return { amounts, line: -1 };
}

/** `actual` with every negative amount replaced by the reserved amount of that kind. */
export function resolveActual(actual: Amounts, reserved: Amounts): Amounts {
  return {
    tokens: actual.tokens < 0 ? reserved.tokens : actual.tokens,
    usdMicros: actual.usdMicros < 0 ? reserved.usdMicros : actual.usdMicros,
    risk: actual.risk < 0 ? reserved.risk : actual.risk,
    requests: actual.requests < 0 ? reserved.requests : actual.requests,
  };
}
