/** The embedded default ledger: one process, in memory; atomic because each call runs to completion. */
import { decideAmounts, resolveActual, rootOfReservation, type Amounts, type Balance, type ChargedLine, type CommitOutcome, type Ledger, type LedgerLine, type ReleaseOutcome, type ReserveOp, type ReserveOutcome } from "./ledger.js";

interface Reservation {
  readonly id: string;
  readonly root: string;
  readonly lines: readonly LedgerLine[];
  readonly amounts: Amounts;
  readonly expiresAt: number;
  status: "held" | "committed" | "released" | "expired";
  outcome?: CommitOutcome;
}

export class MemoryLedger implements Ledger {
  readonly name = "memory";
  readonly #accounts = new Map<string, { spent: number; held: number }>();
  readonly #reservations = new Map<string, Reservation>();
  readonly #heldByRoot = new Map<string, Set<string>>();

  async reserve(op: ReserveOp): Promise<ReserveOutcome> {
    const expired = this.#sweep(op.root, op.now);
    if (this.#reservations.has(op.id)) throw new Error(`reservation id ${op.id} is already in use`);
    const available = op.lines.map((line) => {
      if (line.cap === null) return Number.POSITIVE_INFINITY;
      const account = this.#accounts.get(line.account);
      return line.cap - (account?.spent ?? 0) - (account?.held ?? 0);
    });
    const { amounts, line } = decideAmounts(op, available);
    if (line >= 0) return { ok: false, line, available: available[line] as number, expired };
    for (const l of op.lines) this.#account(l.account).held += amounts[l.kind];
    this.#reservations.set(op.id, { id: op.id, root: op.root, lines: op.lines, amounts, expiresAt: op.expiresAt, status: "held" });
    this.#held(op.root).add(op.id);
    return { ok: true, amounts, expired };
  }

  async commit(id: string, actual: Amounts, now: number): Promise<CommitOutcome> {
    const expired = this.#sweep(rootOfReservation(id), now);
    const reservation = this.#reservations.get(id);
    if (reservation === undefined) return { status: "unknown", expired };
    if (reservation.status === "committed" && reservation.outcome?.status === "committed") return { ...reservation.outcome, already: true, expired };
    if (reservation.status === "released") return { status: "released", expired };
    const late = reservation.status === "expired";
    const charged = resolveActual(actual, reservation.amounts);
    const lines: ChargedLine[] = reservation.lines.map((line) => {
      const account = this.#account(line.account);
      if (!late) account.held -= reservation.amounts[line.kind];
      const before = account.spent;
      account.spent += charged[line.kind];
      return { account: line.account, kind: line.kind, cap: line.cap, before, after: account.spent };
    });
    this.#heldByRoot.get(reservation.root)?.delete(id);
    reservation.status = "committed";
    const outcome: CommitOutcome = { status: "committed", already: false, late, reserved: reservation.amounts, charged, lines, expired };
    reservation.outcome = outcome;
    return outcome;
  }

  async release(id: string, now: number): Promise<ReleaseOutcome> {
    const expired = this.#sweep(rootOfReservation(id), now);
    const reservation = this.#reservations.get(id);
    if (reservation === undefined) return { status: "unknown", already: false, expired };
    if (reservation.status !== "held") return { status: reservation.status, already: true, expired };
    this.#unhold(reservation);
    reservation.status = "released";
    return { status: "released", already: false, expired };
  }

  async balances(root: string, accounts: readonly string[], now: number): Promise<Map<string, Balance>> {
    this.#sweep(root, now);
    return new Map(accounts.map((name) => {
      const account = this.#accounts.get(name);
      return [name, { spent: account?.spent ?? 0, held: account?.held ?? 0 }];
    }));
  }

  async close(): Promise<void> {}

  #account(name: string): { spent: number; held: number } {
    let account = this.#accounts.get(name);
    if (account === undefined) this.#accounts.set(name, (account = { spent: 0, held: 0 }));
    return account;
  }

  #held(root: string): Set<string> {
    let ids = this.#heldByRoot.get(root);
    if (ids === undefined) this.#heldByRoot.set(root, (ids = new Set()));
    return ids;
  }

  #unhold(reservation: Reservation): void {
    for (const line of reservation.lines) this.#account(line.account).held -= reservation.amounts[line.kind];
    this.#heldByRoot.get(reservation.root)?.delete(reservation.id);
  }

  /** Releases this root's holds whose expiry has passed; returns their ids in expiry order. */
  #sweep(root: string, now: number): string[] {
    const ids = this.#heldByRoot.get(root);
    if (ids === undefined) return [];
    const due = [...ids].map((id) => this.#reservations.get(id) as Reservation).filter((r) => r.expiresAt <= now);
    due.sort((a, b) => a.expiresAt - b.expiresAt || (a.id < b.id ? -1 : 1));
    for (const reservation of due) {
      this.#unhold(reservation);
      reservation.status = "expired";
    }
    return due.map((r) => r.id);
  }
}
