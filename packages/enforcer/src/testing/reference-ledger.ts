/**
 * The rule (rule.ts) over plain maps, and nothing else: no heap, no caches, no retention limit.
 * Slow on purpose, so that it can be read at a glance: it is what the ledger vectors are generated
 * from, and the model a ledger of your own is compared with.
 */
// Only what @allowance/enforcer and @allowance/enforcer/rule export: a ledger of your own can be
// built from the same.
import {
  SynchronousLedger,
  balanceOf,
  type AccountRef,
  type BalancesOutcome,
  type CommitOptions,
  type LedgerClockOptions,
  type ReserveOp,
} from "../ledger.js";
import type {
  Amounts,
  CommitOutcome,
  ExtendOutcome,
  LedgerLine,
  ReleaseOutcome,
  ReserveOutcome,
  SettleOutcome,
} from "../rule.js";
import {
  accountKey,
  answerRepeatedReserve,
  answerWithoutCharge,
  answerWithoutExtend,
  answerWithoutRelease,
  charge,
  checkBalancesArgs,
  checkCommitArgs,
  checkExtendArgs,
  checkReleaseArgs,
  checkReserveOp,
  checkedClockOptions,
  checkSettleArgs,
  clockSkewOf,
  decide,
  denyIfBlocked,
  due,
  extended,
  extendedExpiry,
  hold,
  holdAnyway,
  holdEnd,
  kindsOf,
  nameOf,
  nextReceipt,
  released,
  rootOfReservation,
  settleDebt,
  timeOf,
  unhold,
  type Account,
  type ReceiptEntry,
  type ReservationState,
} from "../rule-entry.js";

interface Stored extends ReservationState {
  readonly id: string;
  readonly root: string;
  readonly lines: readonly LedgerLine[];
  /** The ledger's time of the reserve: a rate window's line holds the bucket current then. */
  readonly at: number;
  readonly expiresAt: number;
  /** What its reserve gave (spec/enforcement.md §3.10, §3.11). */
  readonly notAfter: number | undefined;
  readonly fingerprint: string | undefined;
}

export class ReferenceLedger extends SynchronousLedger {
  readonly name = "reference";
  readonly receipts = true;
  /** The entry of each root's latest receipted commit (spec/receipts.md §2). */
  readonly #heads = new Map<string, ReceiptEntry>();
  readonly #accounts = new Map<string, Account>();
  readonly #reservations = new Map<string, Stored>();
  readonly #clock: { readonly now: () => number; readonly maxClockSkewMs: number };

  constructor(options: LedgerClockOptions = {}) {
    super();
    this.#clock = checkedClockOptions(options);
  }

  reserveSync(op: ReserveOp): ReserveOutcome {
    checkReserveOp(op);
    const at = timeOf(op.now, this.#clock.now);
    const skewed = clockSkewOf(op.clientNowMs, at, this.#clock.maxClockSkewMs);
    if (skewed !== undefined) throw skewed;
    const expired = this.#sweep(op.root, at);
    const stored = this.#reservations.get(op.id);
    const repeated = answerRepeatedReserve(op.id, op.fingerprint, stored, expired, at);
    if (repeated !== undefined) {
      if (repeated instanceof Error) throw repeated;
      return repeated;
    }
    const accounts = this.#accountsOf(op.lines, at);
    const kinds = kindsOf(op.lines);
    const blocked =
      op.debtLimits === undefined
        ? undefined
        : denyIfBlocked(op.lines, kinds, accounts, op.debtLimits, expired, at);
    const decided =
      blocked ?? decide(op.lines, kinds, accounts, op.amounts, op.minimums, expired, at);
    const outcome =
      op.shadow === true ? holdAnyway(decided, op.lines, kinds, accounts, op.amounts) : decided;
    if (outcome instanceof RangeError) throw outcome;
    if (!outcome.ok) return outcome;
    hold(kinds, accounts, outcome.amounts);
    this.#reservations.set(op.id, {
      id: op.id,
      root: op.root,
      lines: op.lines.map((line) => ({ ...line })),
      at,
      expiresAt: holdEnd(at, op.ttlMs, op.notAfter),
      notAfter: op.notAfter,
      fingerprint: op.fingerprint,
      status: "held",
      amounts: outcome.amounts,
      charged: null,
      late: false,
    });
    return outcome;
  }

  commitSync(id: string, actual: Amounts, given?: number, options?: CommitOptions): CommitOutcome {
    checkCommitArgs(id, actual, given, options);
    const now = timeOf(given, this.#clock.now);
    const expired = this.#sweep(rootOfReservation(id), now);
    const stored = this.#reservations.get(id);
    const answer = answerWithoutCharge(stored, expired);
    if (answer !== undefined) return answer;
    const r = stored as Stored;
    const outcome = charge(
      r,
      actual,
      r.lines,
      kindsOf(r.lines),
      this.#accountsOf(r.lines, r.at),
      expired,
    );
    if (outcome instanceof RangeError) throw outcome;
    if (outcome.status !== "committed") return outcome;
    const receipt =
      options?.receipt === true
        ? nextReceipt(this.#heads.get(r.root) ?? null, r.root, id, r.lines, outcome, now)
        : null;
    if (receipt !== null) this.#heads.set(r.root, receipt.entry);
    this.#reservations.set(id, {
      ...r,
      status: "committed",
      charged: outcome.charged,
      late: outcome.late,
      receipt,
      crossed: outcome.lines,
    });
    return receipt === null ? outcome : { ...outcome, receipt };
  }

  releaseSync(id: string, given?: number): ReleaseOutcome {
    checkReleaseArgs(id, given);
    const now = timeOf(given, this.#clock.now);
    const expired = this.#sweep(rootOfReservation(id), now);
    const stored = this.#reservations.get(id);
    const answer = answerWithoutRelease(stored, expired);
    if (answer !== undefined) return answer;
    const r = stored as Stored;
    unhold(kindsOf(r.lines), this.#accountsOf(r.lines, r.at), r.amounts);
    this.#reservations.set(id, { ...r, status: "released" });
    return released(expired);
  }

  extendSync(id: string, ttlMs: number, given?: number): ExtendOutcome {
    checkExtendArgs(id, ttlMs, given);
    const now = timeOf(given, this.#clock.now);
    const expired = this.#sweep(rootOfReservation(id), now);
    const stored = this.#reservations.get(id);
    const answer = answerWithoutExtend(stored, expired);
    if (answer !== undefined) return answer;
    const r = stored as Stored;
    const expiresAt = extendedExpiry(r.expiresAt, now, ttlMs, r.notAfter);
    this.#reservations.set(id, { ...r, expiresAt });
    return extended(expiresAt, expired);
  }

  async balances(
    root: string,
    accounts: readonly AccountRef[],
    given?: number,
  ): Promise<BalancesOutcome> {
    checkBalancesArgs(root, accounts, given);
    const now = timeOf(given, this.#clock.now);
    const expired = this.#sweep(root, now);
    const balances = new Map(
      accounts.map((ref) => [
        nameOf(ref),
        balanceOf(this.#accounts.get(typeof ref === "string" ? ref : accountKey(ref, now))),
      ]),
    );
    return { balances, expired, at: now };
  }

  async settle(root: string, lines: readonly LedgerLine[], given?: number): Promise<SettleOutcome> {
    checkSettleArgs(root, lines, given);
    const now = timeOf(given, this.#clock.now);
    return settleDebt(lines, this.#accountsOf(lines, now), this.#sweep(root, now));
  }

  async close(): Promise<void> {}

  /** The accounts of lines at ledger time `at` (a window's line: its bucket's, accountKey). */
  #accountsOf(lines: readonly LedgerLine[], at: number): Account[] {
    return lines.map((line) => {
      const key = accountKey(line, at);
      let account = this.#accounts.get(key);
      if (account === undefined) this.#accounts.set(key, (account = { spent: 0, held: 0 }));
      return account;
    });
  }

  /** The rule's sweep: this root's held reservations that are due, in expiry order, expired. */
  #sweep(root: string, now: number): string[] {
    const held = [...this.#reservations.values()].filter(
      (r) => r.root === root && r.status === "held",
    );
    const ids: string[] = [];
    for (const r of due(held, now)) {
      unhold(kindsOf(r.lines), this.#accountsOf(r.lines, r.at), r.amounts);
      this.#reservations.set(r.id, { ...r, status: "expired" });
      ids.push(r.id);
    }
    return ids;
  }
}
