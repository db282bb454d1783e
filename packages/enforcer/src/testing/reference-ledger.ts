/**
 * The rule (rule.ts) over plain maps, and nothing else: no heap, no caches, no retention limit.
 * Slow on purpose, so that it can be read at a glance: it is what the ledger vectors are generated
 * from, and the model a ledger of your own is compared with.
 */
// Only what @allowance/enforcer and @allowance/enforcer/rule export: a ledger of your own can be
// built from the same.
import { SynchronousLedger, balanceOf, type BalancesOutcome, type ReserveOp } from "../ledger.js";
import type {
  Amounts,
  CommitOutcome,
  LedgerLine,
  ReleaseOutcome,
  ReserveOutcome,
  SettleOutcome,
} from "../rule.js";
import {
  answerWithoutCharge,
  answerWithoutRelease,
  charge,
  checkBalancesArgs,
  checkCommitArgs,
  checkReleaseArgs,
  checkReserveOp,
  checkSettleArgs,
  decide,
  denyIfBlocked,
  due,
  hold,
  holdAnyway,
  kindsOf,
  released,
  reservationConflict,
  rootOfReservation,
  settleDebt,
  unhold,
  type Account,
  type ReservationState,
} from "../rule-entry.js";

interface Stored extends ReservationState {
  readonly id: string;
  readonly root: string;
  readonly lines: readonly LedgerLine[];
  readonly expiresAt: number;
}

export class ReferenceLedger extends SynchronousLedger {
  readonly name = "reference";
  readonly #accounts = new Map<string, Account>();
  readonly #reservations = new Map<string, Stored>();

  reserveSync(op: ReserveOp): ReserveOutcome {
    checkReserveOp(op);
    const expired = this.#sweep(op.root, op.now);
    if (this.#reservations.has(op.id)) throw reservationConflict(op.id);
    const accounts = this.#accountsOf(op.lines);
    const kinds = kindsOf(op.lines);
    const blocked =
      op.debtLimits === undefined
        ? undefined
        : denyIfBlocked(op.lines, kinds, accounts, op.debtLimits, expired);
    const decided = blocked ?? decide(op.lines, kinds, accounts, op.amounts, op.minimums, expired);
    const outcome =
      op.shadow === true ? holdAnyway(decided, op.lines, kinds, accounts, op.amounts) : decided;
    if (outcome instanceof RangeError) throw outcome;
    if (!outcome.ok) return outcome;
    hold(kinds, accounts, outcome.amounts);
    this.#reservations.set(op.id, {
      id: op.id,
      root: op.root,
      lines: op.lines.map((line) => ({ ...line })),
      expiresAt: op.expiresAt,
      status: "held",
      amounts: outcome.amounts,
      charged: null,
      late: false,
    });
    return outcome;
  }

  commitSync(id: string, actual: Amounts, now: number): CommitOutcome {
    checkCommitArgs(id, actual, now);
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
      this.#accountsOf(r.lines),
      expired,
    );
    if (outcome instanceof RangeError) throw outcome;
    if (outcome.status === "committed")
      this.#reservations.set(id, {
        ...r,
        status: "committed",
        charged: outcome.charged,
        late: outcome.late,
      });
    return outcome;
  }

  releaseSync(id: string, now: number): ReleaseOutcome {
    checkReleaseArgs(id, now);
    const expired = this.#sweep(rootOfReservation(id), now);
    const stored = this.#reservations.get(id);
    const answer = answerWithoutRelease(stored, expired);
    if (answer !== undefined) return answer;
    const r = stored as Stored;
    unhold(kindsOf(r.lines), this.#accountsOf(r.lines), r.amounts);
    this.#reservations.set(id, { ...r, status: "released" });
    return released(expired);
  }

  async balances(root: string, accounts: readonly string[], now: number): Promise<BalancesOutcome> {
    checkBalancesArgs(root, accounts, now);
    const expired = this.#sweep(root, now);
    const balances = new Map(accounts.map((name) => [name, balanceOf(this.#accounts.get(name))]));
    return { balances, expired };
  }

  async settle(root: string, lines: readonly LedgerLine[], now: number): Promise<SettleOutcome> {
    checkSettleArgs(root, lines, now);
    return settleDebt(lines, this.#accountsOf(lines), this.#sweep(root, now));
  }

  async close(): Promise<void> {}

  #accountsOf(lines: readonly LedgerLine[]): Account[] {
    return lines.map((line) => {
      let account = this.#accounts.get(line.account);
      if (account === undefined)
        this.#accounts.set(line.account, (account = { spent: 0, held: 0 }));
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
      unhold(kindsOf(r.lines), this.#accountsOf(r.lines), r.amounts);
      this.#reservations.set(r.id, { ...r, status: "expired" });
      ids.push(r.id);
    }
    return ids;
  }
}
