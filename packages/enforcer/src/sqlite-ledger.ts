/**
 * The SQLite ledger (spec/enforcement.md §3): one file, shared by every process on one host.
 *
 * Transaction rule: every operation (reserve, commit, release, balances) runs inside ONE `BEGIN
 * IMMEDIATE` transaction. IMMEDIATE takes the database's write lock before the first read, so the
 * sweep, the check and the hold of a reserve see no other writer between them: check-and-hold is
 * atomic across processes, not only across calls in one process. Readers never block in WAL mode;
 * writers queue on the lock for up to `busyTimeoutMs`, then the operation throws (SQLITE_BUSY) and
 * changes nothing.
 *
 * Group commit. The promise-returning methods queue their operation; the operations asked for in
 * one event-loop turn (up to MAX_GROUP) run in one transaction, one after another in the order
 * asked, each exactly as if alone: the transaction's COMMIT, most of an operation's cost, is paid
 * once for the group. If the transaction fails, every operation of the group is refused and none
 * took effect. The `…Sync` methods run at once, in a transaction of their own, after any queued
 * operations, so that calls still run in the order they were made.
 *
 * Inside the transaction the rule is rule.ts's (decide, charge, the sweep's order, the statuses,
 * idempotency and late commits), as in every ledger: accounts are read into JS, handed to the rule,
 * which changes them, and written back.
 *
 * Schema (version 8, in `PRAGMA user_version`; an older file is upgraded when opened):
 *
 *   accounts(account TEXT PK, root TEXT, spent INTEGER, held INTEGER,
 *            ends_at REAL,  -- a rate window's bucket account: when its bucket ends (version 4)
 *            settled INTEGER)  -- the debt settled on it (version 5; spec/enforcement.md §3.9)
 *   reservations(id TEXT PK, root TEXT, status TEXT, expires_at REAL,
 *                lines TEXT  -- JSON LedgerLine[] (version-1 rows), or '' when line_set is set
 *                amounts TEXT  -- JSON Amounts actually held
 *                outcome TEXT  -- once committed: JSON {status, late, reserved, charged}, else NULL
 *                line_set TEXT  -- the digest of its lines in line_sets (version 2)
 *                at REAL  -- the ledger's time of the reserve: its windows' buckets (version 4)
 *                closed_at REAL  -- the ledger's time it closed; NULL while held (version 4)
 *                fingerprint TEXT  -- the reserve's request fingerprint, or NULL (version 7)
 *                not_after REAL)  -- the end of its chain, past which no extend goes (version 7)
 *   line_sets(digest TEXT PK, lines TEXT)  -- JSON LedgerLine[] by its SHA-256, base64url
 *   receipt_heads(root TEXT PK, entry TEXT)  -- JSON ReceiptEntry of the root's latest receipted
 *                                              commit (version 6; spec/receipts.md §2)
 *   index reservations_held ON reservations(root, expires_at), held rows only  -- the sweep's lookup
 *   index reservations_closed ON reservations(closed_at), closed rows only  -- retention
 *   index accounts_ended ON accounts(ends_at), bucket accounts only  -- retention
 *
 * Retention (spec/enforcement.md §3.5, rule.ts forgetBefore): closed reservations are kept
 * `retentionMs` (default 24 hours) of the ledger's clock after they closed, then deleted by a later
 * transaction (PRUNE_BATCH rows a pass), with the bucket accounts of windows that ended as long ago
 * and hold nothing: a file under a long run stays as big as what closes within the retention.
 *
 * Time (spec/enforcement.md §3.8): the ledger's clock is the host's (`now`, `Date.now` unless
 * given), read by each operation inside its transaction, so that expiry and rate-window buckets
 * follow one clock whichever process asks; a reserve whose caller's clock is more than
 * `maxClockSkewMs` away is refused (ERR_CLOCK_SKEW).
 *
 * Version 2 added line_sets; version 3 stores each line's link and field (LedgerLine's linkIndex,
 * linkId, field), which versions 1 and 2 kept only inside the account name: the upgrade reads
 * them from there once (`legacyLines`), so that commits of older holds still report them.
 * Version 5 adds accounts.settled, 0 on every account it finds; version 6 adds receipt_heads;
 * version 7 adds a reservation's fingerprint and bound (spec/enforcement.md §3.10, §3.11), NULL
 * on older rows, which are then never repeated and extended without a bound but the TTL's.
 * Version 8 replaces the sweep's index over every row, reservations_due (root, status,
 * expires_at), by one over held rows only.
 * A committed row's outcome also keeps the lines its commit listed, which a repeated commit answers
 * again (§7.2); an older row's answer lists none.
 * A chain's lines are stored once in line_sets, not in every reservation: an operation's cost is
 * mostly the pages its transaction writes. To upgrade, stop every process that has the file open,
 * then open it with this version: a process of an older version that still has it open would
 * misread newer rows (it checks the version only when it opens the file).
 *
 * The tables are STRICT: spent and held are 64-bit integers, never REAL, so amounts stay exact up to
 * 2^53 − 1 (the largest a JS number holds exactly). expires_at is REAL because a TTL in seconds may
 * be fractional in milliseconds. Rows are written only by this class; the file is trusted storage.
 */
import { createHash } from "node:crypto";
import Database from "better-sqlite3";
import { AllowanceError } from "@allowance/core";
import { legacyLines, type LegacyLine } from "./legacy-lines.js";
import {
  SynchronousLedger,
  checkBalancesArgs,
  checkCommitArgs,
  checkExtendArgs,
  checkReleaseArgs,
  checkReserveOp,
  checkKnownOptions,
  checkedBoolean,
  integerOption,
  checkedClockOptions,
  checkSettleArgs,
  balanceOf,
  nameOf,
  rootOfReservation,
  shown,
  timeOf,
  type AccountRef,
  type Balance,
  type BalancesOutcome,
  type CommitOptions,
  type LedgerClockOptions,
  type ReserveOp,
} from "./ledger.js";
import {
  DEFAULT_RETENTION_MS,
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
  due,
  extended,
  extendedExpiry,
  forgetBefore,
  hold,
  holdAnyway,
  holdEnd,
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
  type ReservationState,
  type ReservationStatus,
  type ReserveOutcome,
  type ReserveRecord,
  type SettleOutcome,
} from "./rule.js";

export interface SqliteLedgerOptions extends LedgerClockOptions {
  /** Milliseconds an operation waits for another process's transaction before failing. Default 5000. */
  readonly busyTimeoutMs?: number;
  /**
   * How long a closed reservation is remembered, for idempotent commit and release and for late
   * commits, by the ledger's clock: at least this long after it closed (rule.ts `forgetBefore`);
   * then a transaction deletes it, within about a second of ledger time (PRUNE_INTERVAL_MS), so
   * that the file stays bounded by what closes in this much time. Default 24 hours
   * (DEFAULT_RETENTION_MS).
   */
  readonly retentionMs?: number;
  /**
   * `FULL` (default) syncs the WAL on every commit, so a spend survives a power loss; `NORMAL` is
   * faster and survives a process crash, but a power loss may forget the last transactions.
   */
  readonly synchronous?: "FULL" | "NORMAL";
  /**
   * Open only a file that is already a ledger: a missing file, an empty one or another program's
   * database is refused (`ERR_LEDGER_STATE`) and nothing is written to it. For readers (a budget
   * report, a dry run), where a fresh ledger would report every budget untouched. Default false:
   * the file is created and its schema written.
   */
  readonly existingOnly?: boolean;
}

interface ReservationRow {
  readonly id: string;
  readonly root: string;
  readonly status: ReservationStatus;
  readonly expires_at: number;
  readonly lines: string;
  readonly amounts: string;
  readonly outcome: string | null;
  readonly line_set: string | null;
  readonly at: number | null;
  readonly fingerprint: string | null;
  readonly not_after: number | null;
}

interface AccountRow {
  readonly spent: number;
  readonly held: number;
  readonly settled: number;
}

const SCHEMA_VERSION = 8;

/** MIGRATIONS[v] takes a file from version v to v + 1: SQL, or a function for what SQL cannot say. */
const MIGRATIONS: readonly (string | ((db: Database.Database) => void))[] = [
  `
CREATE TABLE IF NOT EXISTS accounts (
  account TEXT PRIMARY KEY,
  root TEXT NOT NULL,
  spent INTEGER NOT NULL DEFAULT 0,
  held INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE TABLE IF NOT EXISTS reservations (
  id TEXT PRIMARY KEY,
  root TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('held', 'committed', 'released', 'expired')),
  expires_at REAL NOT NULL,
  lines TEXT NOT NULL,
  amounts TEXT NOT NULL,
  outcome TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS reservations_due ON reservations (root, status, expires_at);
`,
  `
CREATE TABLE line_sets (
  digest TEXT PRIMARY KEY,
  lines TEXT NOT NULL
) STRICT, WITHOUT ROWID;
ALTER TABLE reservations ADD COLUMN line_set TEXT;
`,
  (db) => {
    // Each stored lines array gains its lines' link and field. A line set keeps its digest (a key,
    // not a checksum): reservations name it, and new line sets, written with the data, never have
    // the digest of an old one.
    const rewrite = (json: string) =>
      JSON.stringify(legacyLines(JSON.parse(json) as readonly LegacyLine[]));
    const sets = db.prepare<[], { digest: string; lines: string }>(
      "SELECT digest, lines FROM line_sets",
    );
    const setLines = db.prepare<[string, string]>(
      "UPDATE line_sets SET lines = ? WHERE digest = ?",
    );
    for (const row of sets.all()) setLines.run(rewrite(row.lines), row.digest);
    const own = db.prepare<[], { id: string; lines: string }>(
      "SELECT id, lines FROM reservations WHERE lines != ''",
    );
    const ownLines = db.prepare<[string, string]>("UPDATE reservations SET lines = ? WHERE id = ?");
    for (const row of own.all()) ownLines.run(rewrite(row.lines), row.id);
  },
  // Older rows have no window lines (their buckets are in their account names), so no `at`; a
  // closed row closed at the latest when its hold ended, which keeps it at least as long.
  `
ALTER TABLE reservations ADD COLUMN at REAL;
ALTER TABLE reservations ADD COLUMN closed_at REAL;
UPDATE reservations SET closed_at = expires_at WHERE status != 'held';
CREATE INDEX reservations_closed ON reservations (closed_at) WHERE closed_at IS NOT NULL;
ALTER TABLE accounts ADD COLUMN ends_at REAL;
CREATE INDEX accounts_ended ON accounts (ends_at) WHERE ends_at IS NOT NULL;
`,
  "ALTER TABLE accounts ADD COLUMN settled INTEGER NOT NULL DEFAULT 0;",
  `
CREATE TABLE receipt_heads (
  root TEXT PRIMARY KEY,
  entry TEXT NOT NULL
) STRICT, WITHOUT ROWID;
`,
  `
ALTER TABLE reservations ADD COLUMN fingerprint TEXT;
ALTER TABLE reservations ADD COLUMN not_after REAL;
`,
  // The sweep reads held rows only: an index of them alone loses an entry when a row closes,
  // rather than moving it, and stays as small as what is held.
  `
DROP INDEX reservations_due;
CREATE INDEX reservations_held ON reservations (root, expires_at) WHERE status = 'held';
`,
];

/** Line sets parsed from line_sets, by digest; cleared when it holds this many. */
const MAX_CACHED_LINE_SETS = 1024;

/**
 * A body may return an Error instead of its outcome: the call is refused with it after the
 * transaction commits, so that the rest of its group runs and its sweep stays, as in memory (an
 * id in use, a total past MAX_AMOUNT). A body that throws would refuse its whole group.
 */
class Refusal {
  constructor(readonly error: Error) {}
}

/**
 * Retention's pace: each transaction that finds the ledger's time past the next pass deletes up to
 * PRUNE_BATCH closed reservations and as many ended bucket accounts; then passes are
 * PRUNE_INTERVAL_MS of ledger time apart, or back to back while a batch comes back full. A
 * transaction stays short, and deletes outpace any rate of closes a file can take.
 */
const PRUNE_BATCH = 1000;
const PRUNE_INTERVAL_MS = 1000;

/** Operations run in one transaction at most; more wait for the next. */
const MAX_GROUP = 64;

/** A queued operation: its body (run inside the group's transaction) and its promise's settlers. */
interface Queued {
  readonly run: (accounts: Accounts) => unknown;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

/** Spent and held of the accounts one operation touches: read once, changed in JS, written back at its end. */
class Accounts {
  readonly #rows = new Map<string, Account>();
  /**
   * Changed accounts by key, each with the root of the reservation that changed it first and,
   * for a rate window's bucket, when the bucket ends.
   */
  readonly #changed = new Map<string, { readonly root: string; readonly endsAt: number | null }>();

  readonly #read: (name: string) => AccountRow | undefined;

  constructor(read: (name: string) => AccountRow | undefined) {
    this.#read = read;
  }

  get(name: string): Account {
    let account = this.#rows.get(name);
    if (account === undefined) {
      const row = this.#read(name);
      this.#rows.set(
        name,
        (account = { spent: row?.spent ?? 0, held: row?.held ?? 0, settled: row?.settled ?? 0 }),
      );
    }
    return account;
  }

  /** Marks the accounts of these lines at ledger time `at`, which the rule changed, to be written back. */
  changed(lines: readonly LedgerLine[], keys: readonly string[], root: string, at: number): void {
    lines.forEach((line, i) => {
      const key = keys[i] as string;
      if (this.#changed.has(key)) return;
      const endsAt = line.windowMs === undefined ? null : bucketEndsAt(line.windowMs, at);
      this.#changed.set(key, { root, endsAt });
    });
  }

  *writes(): Generator<{ name: string; root: string; endsAt: number | null } & Required<Account>> {
    for (const [name, { root, endsAt }] of this.#changed) {
      const { spent, held, settled } = this.get(name);
      yield { name, root, endsAt, spent, held, settled: settled ?? 0 };
    }
  }
}

export class SqliteLedger extends SynchronousLedger {
  readonly name = "sqlite";
  readonly receipts = true;
  readonly groupsCalls = true;
  readonly #db: Database.Database;
  /** Operations asked for through the promise-returning methods, not yet run. */
  #queue: Queued[] = [];
  /** A lines array's JSON, digest and kinds, computed once per array. */
  readonly #lineSets = new WeakMap<readonly LedgerLine[], LineSet>();
  /** Parsed line sets by digest. */
  readonly #parsedLineSets = new Map<string, StoredLines>();
  #flushScheduled = false;
  readonly #statements;
  readonly #transaction: Database.Transaction<(run: (accounts: Accounts) => unknown) => unknown>;
  readonly #now: () => number;
  readonly #maxClockSkewMs: number;
  readonly #retentionMs: number;
  /** The ledger time from which the next transaction prunes (retention); -Infinity: the first. */
  #pruneFrom = Number.NEGATIVE_INFINITY;

  private constructor(
    db: Database.Database,
    clock: ReturnType<typeof checkedClockOptions>,
    retentionMs: number,
  ) {
    super();
    this.#db = db;
    this.#now = clock.now;
    this.#maxClockSkewMs = clock.maxClockSkewMs;
    this.#retentionMs = retentionMs;
    this.#statements = {
      account: db.prepare<[string], AccountRow>(
        "SELECT spent, held, settled FROM accounts WHERE account = ?",
      ),
      reservation: db.prepare<[string], ReservationRow>(
        "SELECT id, root, status, expires_at, lines, amounts, outcome, line_set, at, fingerprint, not_after FROM reservations WHERE id = ?",
      ),
      due: db.prepare<[string, number], ReservationRow>(
        "SELECT id, root, status, expires_at, lines, amounts, outcome, line_set, at, fingerprint, not_after FROM reservations WHERE root = ? AND status = 'held' AND expires_at <= ? ORDER BY expires_at, id",
      ),
      insertReservation: db.prepare<
        [string, string, number, string, string, number, string | null, number | null]
      >(
        "INSERT INTO reservations (id, root, status, expires_at, lines, amounts, line_set, at, fingerprint, not_after) VALUES (?, ?, 'held', ?, '', ?, ?, ?, ?, ?)",
      ),
      setExpiry: db.prepare<[number, string]>(
        "UPDATE reservations SET expires_at = ? WHERE id = ?",
      ),
      lineSet: db.prepare<[string], { lines: string }>(
        "SELECT lines FROM line_sets WHERE digest = ?",
      ),
      insertLineSet: db.prepare<[string, string]>(
        "INSERT OR IGNORE INTO line_sets (digest, lines) VALUES (?, ?)",
      ),
      receiptHead: db.prepare<[string], { entry: string }>(
        "SELECT entry FROM receipt_heads WHERE root = ?",
      ),
      setReceiptHead: db.prepare<[string, string]>(
        "INSERT INTO receipt_heads (root, entry) VALUES (?, ?) ON CONFLICT (root) DO UPDATE SET entry = excluded.entry",
      ),
      setStatus: db.prepare<[ReservationStatus, string | null, number, string]>(
        "UPDATE reservations SET status = ?, outcome = ?, closed_at = ? WHERE id = ?",
      ),
    };
    const write = db.prepare<[string, string, number, number, number | null, number]>(
      // The root column keeps the first writer's value: an account belongs to one chain's root.
      "INSERT INTO accounts (account, root, spent, held, ends_at, settled) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account) DO UPDATE SET spent = excluded.spent, held = excluded.held, settled = excluded.settled",
    );
    const read = (name: string) => this.#statements.account.get(name);
    // Retention (rule.ts forgetBefore): the oldest closed reservations, and bucket accounts whose
    // bucket ended as long ago and that hold nothing, a batch at a time, by the partial indexes.
    const forgetClosed = db.prepare<[number, number]>(
      "DELETE FROM reservations WHERE rowid IN (SELECT rowid FROM reservations WHERE closed_at IS NOT NULL AND closed_at <= ? LIMIT ?)",
    );
    const forgetBuckets = db.prepare<[number, number]>(
      "DELETE FROM accounts WHERE rowid IN (SELECT rowid FROM accounts WHERE ends_at IS NOT NULL AND ends_at <= ? AND held = 0 LIMIT ?)",
    );
    this.#transaction = db.transaction((run: (accounts: Accounts) => unknown) => {
      const accounts = new Accounts(read);
      const result = run(accounts);
      for (const { name, root, spent, held, endsAt, settled } of accounts.writes())
        write.run(name, root, spent, held, endsAt, settled);
      const now = timeOf(undefined, this.#now);
      if (now >= this.#pruneFrom) {
        const before = forgetBefore(now, this.#retentionMs);
        const full =
          forgetClosed.run(before, PRUNE_BATCH).changes === PRUNE_BATCH ||
          forgetBuckets.run(before, PRUNE_BATCH).changes === PRUNE_BATCH;
        // A full batch leaves more: the next transaction goes on; else wait a while.
        this.#pruneFrom = full ? now : now + PRUNE_INTERVAL_MS;
      }
      return result;
    });
  }

  /** Opens (and creates if needed) the ledger file at `path`; `:memory:` gives a private in-memory ledger. */
  static open(path: string, options: SqliteLedgerOptions = {}): SqliteLedger {
    if (typeof path !== "string" || path.length === 0)
      throw new TypeError('"path" expected a file path');
    checkKnownOptions(
      options,
      ["busyTimeoutMs", "retentionMs", "synchronous", "existingOnly"],
      "sqlite",
    );
    const clock = checkedClockOptions(options);
    const retentionMs =
      options.retentionMs === undefined ? DEFAULT_RETENTION_MS : options.retentionMs;
    if (typeof retentionMs !== "number")
      throw new TypeError(`"retentionMs" expected a number of ms, got ${shown(retentionMs)}`);
    if (!Number.isSafeInteger(retentionMs) || retentionMs < 1)
      throw new RangeError(
        `"retentionMs" expected an integer from 1 to 2^53 - 1, got ${shown(retentionMs)}`,
      );
    const busyTimeoutMs = integerOption(options.busyTimeoutMs, "busyTimeoutMs", 5000, 0);
    const synchronous = options.synchronous === undefined ? "FULL" : options.synchronous;
    if (synchronous !== "FULL" && synchronous !== "NORMAL")
      throw new RangeError(`"synchronous" expected FULL or NORMAL, got ${String(synchronous)}`);
    const existingOnly = checkedBoolean(options.existingOnly, "existingOnly");
    let db: Database.Database;
    try {
      db = new Database(path, { timeout: busyTimeoutMs, fileMustExist: existingOnly });
    } catch (error) {
      if (!existingOnly) throw error;
      throw new AllowanceError(
        "ERR_LEDGER_STATE",
        `no ledger at ${path}: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
    try {
      // Checked before anything is written (journal_mode = WAL writes the file's header).
      if (existingOnly && !isLedgerFile(db))
        throw new AllowanceError(
          "ERR_LEDGER_STATE",
          `${path} is not an Allowance ledger (no ledger schema in it); it was left as it was`,
        );
      // WAL: readers never block the writer, and one writer at a time is what BEGIN IMMEDIATE asks for.
      db.pragma("journal_mode = WAL");
      db.pragma(`synchronous = ${synchronous}`);
      db.transaction(() => {
        const version = db.pragma("user_version", { simple: true }) as number;
        if (version > SCHEMA_VERSION)
          throw new AllowanceError(
            "ERR_LEDGER_STATE",
            `ledger ${path} has schema version ${version}; this library knows up to ${SCHEMA_VERSION}`,
          );
        for (let v = version; v < SCHEMA_VERSION; v++) {
          const migration = MIGRATIONS[v] as string | ((db: Database.Database) => void);
          if (typeof migration === "string") db.exec(migration);
          else migration(db);
        }
        if (version < SCHEMA_VERSION) db.pragma(`user_version = ${SCHEMA_VERSION}`);
      }).immediate();
      return new SqliteLedger(db, clock, retentionMs);
    } catch (error) {
      db.close();
      throw error;
    }
  }

  reserveSync(op: ReserveOp): ReserveOutcome {
    return this.#runNow(this.#reserve(op));
  }

  commitSync(id: string, actual: Amounts, now?: number, options?: CommitOptions): CommitOutcome {
    return this.#runNow(this.#commit(id, actual, now, options));
  }

  releaseSync(id: string, now?: number): ReleaseOutcome {
    return this.#runNow(this.#release(id, now));
  }

  extendSync(id: string, ttlMs: number, now?: number): ExtendOutcome {
    return this.#runNow(this.#extend(id, ttlMs, now));
  }

  override reserve(op: ReserveOp): Promise<ReserveOutcome> {
    try {
      return this.#queued(this.#reserve(op));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  override commit(
    id: string,
    actual: Amounts,
    now?: number,
    options?: CommitOptions,
  ): Promise<CommitOutcome> {
    try {
      return this.#queued(this.#commit(id, actual, now, options));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  override release(id: string, now?: number): Promise<ReleaseOutcome> {
    try {
      return this.#queued(this.#release(id, now));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  override extend(id: string, ttlMs: number, now?: number): Promise<ExtendOutcome> {
    try {
      return this.#queued(this.#extend(id, ttlMs, now));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  balances(root: string, accounts: readonly AccountRef[], now?: number): Promise<BalancesOutcome> {
    // Checked here: a call that throws inside a group's transaction refuses the whole group.
    try {
      checkBalancesArgs(root, accounts, now);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#queued(this.#balances(root, accounts, now));
  }

  /** balances() without a promise (the enforcer's checkSync), in its own transaction. */
  balancesSync(root: string, accounts: readonly AccountRef[], now?: number): BalancesOutcome {
    checkBalancesArgs(root, accounts, now);
    return this.#runNow(this.#balances(root, accounts, now));
  }

  #balances(
    root: string,
    accounts: readonly AccountRef[],
    given: number | undefined,
  ): (cache: Accounts) => BalancesOutcome {
    const refs = accounts.map((ref) =>
      typeof ref === "string"
        ? ref
        : ref.windowMs === undefined
          ? ref.account
          : { account: ref.account, windowMs: ref.windowMs },
    );
    return (cache: Accounts): BalancesOutcome => {
      const now = timeOf(given, this.#now);
      const expired = this.#sweep(root, now, cache);
      return {
        balances: new Map(
          refs.map((ref): [string, Balance] => [
            nameOf(ref),
            balanceOf(cache.get(typeof ref === "string" ? ref : accountKey(ref, now))),
          ]),
        ),
        expired,
        at: now,
      };
    };
  }

  settle(root: string, lines: readonly LedgerLine[], now?: number): Promise<SettleOutcome> {
    try {
      return this.#queued(this.#settle(root, lines, now));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** settle() without a promise, in its own transaction. */
  settleSync(root: string, lines: readonly LedgerLine[], now?: number): SettleOutcome {
    return this.#runNow(this.#settle(root, lines, now));
  }

  /** As #reserve: checks and copies the arguments now, returns the body (spec §3.9). */
  #settle(
    root: string,
    given: readonly LedgerLine[],
    givenNow: number | undefined,
  ): (accounts: Accounts) => SettleOutcome {
    checkSettleArgs(root, given, givenNow);
    const lines = Object.isFrozen(given) ? given : given.map((line) => ({ ...line }));
    return (accounts) => {
      const now = timeOf(givenNow, this.#now);
      const expired = this.#sweep(root, now, accounts);
      const keys = lines.map((line) => accountKey(line, now));
      const outcome = settleDebt(
        lines,
        keys.map((key) => accounts.get(key)),
        expired,
      );
      if (outcome.settled.length > 0) accounts.changed(lines, keys, root, now);
      return outcome;
    };
  }

  /**
   * Checks a reserve's arguments and copies them; returns the body that runs it inside a
   * transaction. Copied now, because a queued body runs later, when the caller may have reused
   * its objects; checked now, because a body that throws refuses its whole group.
   */
  #reserve(given: ReserveOp): (accounts: Accounts) => ReserveOutcome | Refusal {
    checkReserveOp(given);
    const op = copyOf(given);
    const lineSet = this.#lineSetOf(op.lines);
    return (accounts) => {
      const at = timeOf(op.now, this.#now);
      const skewed = clockSkewOf(op.clientNowMs, at, this.#maxClockSkewMs);
      if (skewed !== undefined) return new Refusal(skewed);
      const expired = this.#sweep(op.root, at, accounts);
      const found = this.#statements.reservation.get(op.id);
      const repeated = answerRepeatedReserve(
        op.id,
        op.fingerprint,
        found === undefined ? undefined : recordOf(found),
        expired,
        at,
      );
      if (repeated !== undefined)
        return repeated instanceof Error ? new Refusal(repeated) : repeated;
      const keys = keysOf(op.lines, lineSet, at);
      const touched = keys.map((key) => accounts.get(key));
      const blocked =
        op.debtLimits === undefined
          ? undefined
          : denyIfBlocked(op.lines, lineSet.kinds, touched, op.debtLimits, expired, at);
      const decided =
        blocked ?? decide(op.lines, lineSet.kinds, touched, op.amounts, op.minimums, expired, at);
      const outcome =
        op.shadow === true
          ? holdAnyway(decided, op.lines, lineSet.kinds, touched, op.amounts)
          : decided;
      if (outcome instanceof RangeError) return new Refusal(outcome);
      if (!outcome.ok) return outcome;
      hold(lineSet.kinds, touched, outcome.amounts);
      accounts.changed(op.lines, keys, op.root, at);
      this.#statements.insertLineSet.run(lineSet.digest, lineSet.json);
      this.#statements.insertReservation.run(
        op.id,
        op.root,
        holdEnd(at, op.ttlMs, op.notAfter),
        JSON.stringify(outcome.amounts),
        lineSet.digest,
        at,
        op.fingerprint ?? null,
        op.notAfter ?? null,
      );
      return outcome;
    };
  }

  /** As #reserve: checks and copies the arguments now, returns the body. */
  #commit(
    id: string,
    given: Amounts,
    givenNow: number | undefined,
    options?: CommitOptions,
  ): (accounts: Accounts) => CommitOutcome | Refusal {
    checkCommitArgs(id, given, givenNow, options);
    const withReceipt = options?.receipt === true;
    const actual: Amounts = {
      tokens: given.tokens,
      usdMicros: given.usdMicros,
      risk: given.risk,
      requests: given.requests,
    };
    return (accounts) => {
      const now = timeOf(givenNow, this.#now);
      const expired = this.#sweep(rootOfReservation(id), now, accounts);
      const row = this.#statements.reservation.get(id);
      const state = row === undefined ? undefined : stateOf(row);
      const answer = answerWithoutCharge(state, expired);
      if (answer !== undefined) return answer;
      const r = row as ReservationRow;
      const { lines, kinds } = this.#linesOf(r);
      const at = r.at ?? now;
      const keys = lines.map((line) => accountKey(line, at));
      const touched = keys.map((key) => accounts.get(key));
      const outcome = charge(state as ReservationState, actual, lines, kinds, touched, expired);
      if (outcome instanceof RangeError) return new Refusal(outcome);
      if (outcome.status !== "committed") return outcome;
      accounts.changed(lines, keys, r.root, at);
      // What a repeated commit answers (§7.2), and no more: its expired ids are its own.
      const { late, reserved, charged, lines: crossed } = outcome;
      let receipt: ReceiptFacts | undefined;
      if (withReceipt) {
        const head = this.#statements.receiptHead.get(r.root);
        const previous = head === undefined ? null : (JSON.parse(head.entry) as ReceiptEntry);
        receipt = nextReceipt(previous, r.root, id, lines, outcome, now);
        this.#statements.setReceiptHead.run(r.root, JSON.stringify(receipt.entry));
      }
      this.#statements.setStatus.run(
        "committed",
        JSON.stringify({ status: "committed", late, reserved, charged, receipt, crossed }),
        now,
        id,
      );
      return receipt === undefined ? outcome : { ...outcome, receipt };
    };
  }

  #release(id: string, given: number | undefined): (accounts: Accounts) => ReleaseOutcome {
    checkReleaseArgs(id, given);
    return (accounts) => {
      const now = timeOf(given, this.#now);
      const expired = this.#sweep(rootOfReservation(id), now, accounts);
      const row = this.#statements.reservation.get(id);
      const answer = answerWithoutRelease(row === undefined ? undefined : stateOf(row), expired);
      if (answer !== undefined) return answer;
      this.#unhold(row as ReservationRow, accounts);
      this.#statements.setStatus.run("released", null, now, id);
      return released(expired);
    };
  }

  /** As #reserve: checks the arguments now, returns the body. */
  #extend(
    id: string,
    ttlMs: number,
    given: number | undefined,
  ): (accounts: Accounts) => ExtendOutcome {
    checkExtendArgs(id, ttlMs, given);
    return (accounts) => {
      const now = timeOf(given, this.#now);
      const expired = this.#sweep(rootOfReservation(id), now, accounts);
      const row = this.#statements.reservation.get(id);
      const answer = answerWithoutExtend(row, expired);
      if (answer !== undefined) return answer;
      const r = row as ReservationRow;
      const expiresAt = extendedExpiry(r.expires_at, now, ttlMs, r.not_after ?? undefined);
      if (expiresAt !== r.expires_at) this.#statements.setExpiry.run(expiresAt, id);
      return extended(expiresAt, expired);
    };
  }

  /** Runs one operation now, in a transaction of its own, after the operations already queued. */
  #runNow<T>(run: (accounts: Accounts) => T | Refusal): T {
    this.#flush();
    const result = this.#transaction.immediate(run) as T | Refusal;
    if (result instanceof Refusal) throw result.error;
    return result;
  }

  /** Queues one operation for the next group; its promise settles once the group's transaction has. */
  #queued<T>(run: (accounts: Accounts) => T | Refusal): Promise<T> {
    const result = new Promise<T>((resolve, reject) =>
      this.#queue.push({ run, resolve: resolve as (value: unknown) => void, reject }),
    );
    if (this.#queue.length >= MAX_GROUP) this.#flush();
    else if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => {
        this.#flushScheduled = false;
        this.#flush();
      });
    }
    return result;
  }

  /** Runs the queued operations in one transaction; settles their promises once it committed or failed. */
  #flush(): void {
    const group = this.#queue;
    if (group.length === 0) return;
    this.#queue = [];
    let results: unknown[];
    try {
      if (!this.#db.open) throw new TypeError("the SQLite ledger is closed");
      results = this.#transaction.immediate((accounts) =>
        group.map((queued) => queued.run(accounts)),
      ) as unknown[];
    } catch (error) {
      for (const queued of group) queued.reject(error);
      return;
    }
    group.forEach((queued, i) => {
      const result = results[i];
      if (result instanceof Refusal) queued.reject(result.error);
      else queued.resolve(result);
    });
  }

  async close(): Promise<void> {
    // Operations already asked for run before the file closes.
    this.#flush();
    if (this.#db.open) this.#db.close();
  }

  #unhold(row: ReservationRow, accounts: Accounts): void {
    const { lines, kinds } = this.#linesOf(row);
    // A row without `at` (version 3 and before) has no window's line.
    const at = row.at ?? 0;
    const keys = lines.map((line) => accountKey(line, at));
    unhold(
      kinds,
      keys.map((key) => accounts.get(key)),
      JSON.parse(row.amounts) as Amounts,
    );
    accounts.changed(lines, keys, row.root, at);
  }

  #lineSetOf(lines: readonly LedgerLine[]): LineSet {
    let set = this.#lineSets.get(lines);
    if (set === undefined) {
      const json = JSON.stringify(
        lines.map(({ account, kind, cap, linkIndex, linkId, field, windowMs }) => ({
          account,
          kind,
          cap,
          linkIndex,
          linkId,
          field,
          // Only on a window's line: the JSON (and digest) of other line sets stays as it was.
          ...(windowMs === undefined ? {} : { windowMs }),
        })),
      );
      set = {
        digest: createHash("sha256").update(json).digest("base64url"),
        json,
        kinds: kindsOf(lines),
        accounts: lines.some((line) => line.windowMs !== undefined)
          ? undefined
          : lines.map((line) => line.account),
      };
      this.#lineSets.set(lines, set);
    }
    return set;
  }

  /** A reservation's lines: from its line set (version 2), or from its own row (version 1). */
  #linesOf(row: ReservationRow): StoredLines {
    if (row.line_set === null) {
      const lines = JSON.parse(row.lines) as LedgerLine[];
      return { lines, kinds: kindsOf(lines) };
    }
    let stored = this.#parsedLineSets.get(row.line_set);
    if (stored === undefined) {
      const found = this.#statements.lineSet.get(row.line_set);
      if (found === undefined)
        throw new AllowanceError(
          "ERR_LEDGER_STATE",
          `ledger: the lines of reservation ${row.id} (line set ${row.line_set}) are missing`,
        );
      const lines = JSON.parse(found.lines) as LedgerLine[];
      stored = { lines, kinds: kindsOf(lines) };
      if (this.#parsedLineSets.size >= MAX_CACHED_LINE_SETS) this.#parsedLineSets.clear();
      this.#parsedLineSets.set(row.line_set, stored);
    }
    return stored;
  }

  /** Releases this root's holds whose expiry has passed; returns their ids in the rule's order. */
  #sweep(root: string, now: number, accounts: Accounts): string[] {
    // The index finds the due rows; the rule orders them (JS string order, whatever the collation).
    const rows = due(
      this.#statements.due
        .all(root, now)
        .map((row) => ({ row, id: row.id, expiresAt: row.expires_at })),
      now,
    );
    for (const { row } of rows) {
      this.#unhold(row, accounts);
      this.#statements.setStatus.run("expired", null, now, row.id);
    }
    return rows.map((r) => r.id);
  }
}

/** A lines array in storage: its JSON, that JSON's digest, and its kinds (rule.ts `kindsOf`). */
interface LineSet {
  readonly digest: string;
  readonly json: string;
  readonly kinds: readonly number[];
  /** The account keys of a line set without windows' lines, which do not change with time. */
  readonly accounts: readonly string[] | undefined;
}

/** The account keys of a line set's lines at ledger time `at` (rule.ts accountKey). */
function keysOf(lines: readonly LedgerLine[], set: LineSet, at: number): readonly string[] {
  return set.accounts ?? lines.map((line) => accountKey(line, at));
}

/** A reservation's lines as read back, with their kinds. */
interface StoredLines {
  readonly lines: readonly LedgerLine[];
  readonly kinds: readonly number[];
}

/** What the rule reads of a reservation row. */
function stateOf(row: ReservationRow): ReservationState {
  const amounts = JSON.parse(row.amounts) as Amounts;
  if (row.status === "committed" && row.outcome !== null) {
    const outcome = JSON.parse(row.outcome) as {
      late: boolean;
      reserved: Amounts;
      charged: Amounts;
      receipt?: ReceiptFacts;
      crossed?: ChargedLine[];
    };
    return {
      status: "committed",
      amounts: outcome.reserved,
      charged: outcome.charged,
      late: outcome.late,
      receipt: outcome.receipt ?? null,
      crossed: outcome.crossed,
    };
  }
  return { status: row.status, amounts, charged: null, late: false };
}

/** What a repeated reserve reads of a reservation row (rule.ts `answerRepeatedReserve`). */
function recordOf(row: ReservationRow): ReserveRecord {
  return {
    amounts: JSON.parse(row.amounts) as Amounts,
    expiresAt: row.expires_at,
    fingerprint: row.fingerprint ?? undefined,
  };
}

/** A reserve's arguments, copied: a frozen lines array (the enforcer's) is taken as is. */
function copyOf(given: ReserveOp): ReserveOp {
  const { tokens, usdMicros, risk, requests } = given.amounts;
  const op: { -readonly [K in keyof ReserveOp]: ReserveOp[K] } = {
    id: given.id,
    root: given.root,
    lines: Object.isFrozen(given.lines)
      ? given.lines
      : given.lines.map(({ account, kind, cap, linkIndex, linkId, field, windowMs }) => ({
          account,
          kind,
          cap,
          linkIndex,
          linkId,
          field,
          ...(windowMs === undefined ? {} : { windowMs }),
        })),
    amounts: { tokens, usdMicros, risk, requests },
    ttlMs: given.ttlMs,
  };
  if (given.now !== undefined) op.now = given.now;
  if (given.clientNowMs !== undefined) op.clientNowMs = given.clientNowMs;
  if (given.shadow === true) op.shadow = true;
  if (given.debtLimits !== undefined) op.debtLimits = { ...given.debtLimits };
  if (given.fingerprint !== undefined) op.fingerprint = given.fingerprint;
  if (given.notAfter !== undefined) op.notAfter = given.notAfter;
  if (given.minimums !== undefined) {
    const { tokens: minTokens, usdMicros: minUsd } = given.minimums;
    op.minimums = {
      ...(minTokens === undefined ? {} : { tokens: minTokens }),
      ...(minUsd === undefined ? {} : { usdMicros: minUsd }),
    };
  }
  return op;
}

/** Whether `db` holds a ledger's schema: a schema version and the tables of version 1 on. */
function isLedgerFile(db: Database.Database): boolean {
  let version: unknown;
  let tables: unknown;
  try {
    version = db.pragma("user_version", { simple: true });
    tables = db
      .prepare(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('accounts', 'reservations')",
      )
      .pluck()
      .get();
  } catch {
    // Not a database at all ("file is not a database").
    return false;
  }
  return typeof version === "number" && version >= 1 && tables === 2;
}
