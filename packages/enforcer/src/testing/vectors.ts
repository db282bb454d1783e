/**
 * Ledger vectors (spec/enforcement.md §9): sequences of ledger operations, each with explicit
 * times, the outcome every ledger must give and the balances every ledger must hold after it; and
 * the one runner that plays them on a ledger. Vectors are data (spec/vectors/ledger/*.json, the
 * same as LEDGER_VECTORS); a ledger of your own proves itself with
 * `expect((await runLedgerVectors(() => new MyLedger())).failures).toEqual([])`.
 */
import { isAllowanceError } from "@allowance/core";
import {
  rootOfReservation,
  type AccountRef,
  type Balance,
  type Ledger,
  type ReserveOp,
} from "../ledger.js";
import type { Amounts, DebtLimits, LedgerLine } from "../rule.js";
import { LEDGER_VECTORS } from "./ledger-vectors.js";

/** A named lines array, all of whose accounts belong to one root. */
export interface VectorLineSet {
  readonly root: string;
  readonly lines: readonly LedgerLine[];
}

/** The outcome a step must give, as JSON: a ledger outcome (balances as an object), or an error. */
export type VectorOutcome = Readonly<Record<string, unknown>>;

interface StepCommon {
  /** What the step shows, for a person. */
  readonly note?: string;
  /** The ledger's time of the step (epoch ms), given to the ledger with the operation. */
  readonly now: number;
  readonly expect: VectorOutcome;
  /**
   * Spent and held of every account of the step's root (the accounts of the vector's line sets
   * of that root), read with `balances(root, accounts, now)` right after the step.
   */
  readonly after: Readonly<Record<string, Balance>>;
}

export type VectorStep = StepCommon &
  (
    | {
        readonly op: "reserve";
        readonly id: string;
        /** The name of one of the vector's line sets; its root is the reserve's. */
        readonly lineSet: string;
        readonly amounts: Amounts;
        readonly minimums?: Readonly<Partial<Record<"tokens" | "usdMicros", number>>>;
        readonly ttlMs: number;
        /** The caller's clock, which the ledger compares with its own (spec §3.8). */
        readonly clientNowMs?: number;
        /** A shadow reserve (spec/enforcement.md §3.7). */
        readonly shadow?: boolean;
        /** The overage policy's debt limits (spec/enforcement.md §3.9). */
        readonly debtLimits?: DebtLimits;
        /** The request's fingerprint (spec/enforcement.md §3.10). */
        readonly fingerprint?: string;
        /** The end of the chain: the hold never lasts past it (spec/enforcement.md §3.11). */
        readonly notAfter?: number;
      }
    | {
        readonly op: "commit";
        readonly id: string;
        readonly actual: Amounts;
        /** A receipted commit (spec/receipts.md §2). */
        readonly receipt?: boolean;
      }
    | { readonly op: "release"; readonly id: string }
    /** An extend of a hold by `ttlMs` from the step's time (spec/enforcement.md §3.11). */
    | { readonly op: "extend"; readonly id: string; readonly ttlMs: number }
    | { readonly op: "balances"; readonly root: string; readonly accounts: readonly AccountRef[] }
    /** A settle of the named line set's lines, on its root (spec/enforcement.md §3.9). */
    | { readonly op: "settle"; readonly lineSet: string }
  );

type WithoutResults<S> = S extends unknown ? Omit<S, "expect" | "after"> : never;

/** A step as a case states it: without its outcome and balances, which a reference fills in. */
export type VectorStepInput = WithoutResults<VectorStep>;

export interface LedgerVector {
  readonly name: string;
  readonly description: string;
  readonly lineSets: Readonly<Record<string, VectorLineSet>>;
  readonly steps: readonly VectorStep[];
}

/** One step whose outcome or balances differ from the vector's. */
export interface VectorFailure {
  readonly vector: string;
  /** The step's index in the vector. */
  readonly step: number;
  readonly what: "outcome" | "balances";
  readonly expected: unknown;
  readonly actual: unknown;
}

export interface VectorReport {
  /** The vectors run. */
  readonly vectors: number;
  /** The steps run, each counted once for its outcome and once for its balances. */
  readonly checks: number;
  readonly failures: readonly VectorFailure[];
}

/** What a vector step does to a ledger: an operation, and the balances read after it. */
export interface StepRun {
  readonly outcome: VectorOutcome;
  readonly after: Readonly<Record<string, Balance>>;
}

/** The root a step acts on (its sweep's root), and the accounts whose balances follow it. */
export function stepRoot(vector: Pick<LedgerVector, "lineSets">, step: VectorStepInput): string {
  if (step.op === "reserve" || step.op === "settle") return lineSetOf(vector, step.lineSet).root;
  if (step.op === "balances") return step.root;
  return rootOfReservation(step.id);
}

/**
 * Every account of the vector's line sets of `root`, each once, in the order they appear: a name,
 * or for a rate window's line its name and window (its bucket at the step's time is read).
 */
export function accountsOfRoot(vector: Pick<LedgerVector, "lineSets">, root: string): AccountRef[] {
  const accounts = new Map<string, AccountRef>();
  for (const set of Object.values(vector.lineSets))
    if (set.root === root)
      for (const { account, windowMs } of set.lines)
        if (!accounts.has(account))
          accounts.set(account, windowMs === undefined ? account : { account, windowMs });
  return [...accounts.values()];
}

function lineSetOf(vector: Pick<LedgerVector, "lineSets">, name: string): VectorLineSet {
  const set = vector.lineSets[name];
  if (set === undefined) throw new TypeError(`the vector has no line set ${JSON.stringify(name)}`);
  return set;
}

/**
 * Plays one step on a ledger: the operation, then `balances` of the step's root at the same time
 * (which sweeps nothing more: the operation has just swept that root at that time). A refusal is
 * the outcome `{ error: code }`, with the AllowanceError's code or the error's name.
 */
export async function runStep(
  ledger: Ledger,
  vector: Pick<LedgerVector, "lineSets">,
  step: VectorStepInput,
): Promise<StepRun> {
  let outcome: VectorOutcome;
  try {
    outcome = await operate(ledger, vector, step);
  } catch (error) {
    outcome = { error: errorName(error) };
  }
  const root = stepRoot(vector, step);
  const { balances } = await ledger.balances(root, accountsOfRoot(vector, root), step.now);
  return { outcome, after: Object.fromEntries(balances) };
}

async function operate(
  ledger: Ledger,
  vector: Pick<LedgerVector, "lineSets">,
  step: VectorStepInput,
): Promise<VectorOutcome> {
  switch (step.op) {
    case "reserve": {
      const set = lineSetOf(vector, step.lineSet);
      const op: ReserveOp = {
        id: step.id,
        root: set.root,
        lines: set.lines,
        amounts: step.amounts,
        ...(step.minimums === undefined ? {} : { minimums: step.minimums }),
        ttlMs: step.ttlMs,
        ...(step.clientNowMs === undefined ? {} : { clientNowMs: step.clientNowMs }),
        now: step.now,
        ...(step.shadow === undefined ? {} : { shadow: step.shadow }),
        ...(step.debtLimits === undefined ? {} : { debtLimits: step.debtLimits }),
        ...(step.fingerprint === undefined ? {} : { fingerprint: step.fingerprint }),
        ...(step.notAfter === undefined ? {} : { notAfter: step.notAfter }),
      };
      return { ...(await ledger.reserve(op)) };
    }
    case "commit":
      return {
        ...(await ledger.commit(
          step.id,
          step.actual,
          step.now,
          step.receipt === undefined ? undefined : { receipt: step.receipt },
        )),
      };
    case "release":
      return { ...(await ledger.release(step.id, step.now)) };
    case "extend":
      return { ...(await ledger.extend(step.id, step.ttlMs, step.now)) };
    case "settle": {
      if (ledger.settle === undefined)
        throw new TypeError(`the ${ledger.name} ledger has no settle (spec/enforcement.md §3.9)`);
      const set = lineSetOf(vector, step.lineSet);
      return { ...(await ledger.settle(set.root, set.lines, step.now)) };
    }
    case "balances": {
      const { balances, expired, at } = await ledger.balances(step.root, step.accounts, step.now);
      return { balances: Object.fromEntries(balances), expired, at };
    }
  }
}

function errorName(error: unknown): string {
  if (isAllowanceError(error)) return error.code;
  if (error instanceof Error) return error.name;
  return typeof error;
}

/**
 * Plays every vector (by default LEDGER_VECTORS) on a fresh ledger from `make` (closed after its
 * vector) and reports each step whose outcome or following balances differ from the vector's.
 */
export async function runLedgerVectors(
  make: () => Ledger | Promise<Ledger>,
  vectors: readonly LedgerVector[] = LEDGER_VECTORS,
): Promise<VectorReport> {
  const failures: VectorFailure[] = [];
  let checks = 0;
  for (const vector of vectors) {
    const ledger = await make();
    try {
      for (const [i, step] of vector.steps.entries()) {
        const run = await runStep(ledger, vector, step);
        checks += 2;
        failures.push(...compareStep(vector, i, run));
      }
    } finally {
      await ledger.close();
    }
  }
  return { vectors: vectors.length, checks, failures };
}

/** The failures of one step's run against the vector. */
export function compareStep(vector: LedgerVector, i: number, run: StepRun): VectorFailure[] {
  const step = vector.steps[i] as VectorStep;
  const failures: VectorFailure[] = [];
  const fail = (what: VectorFailure["what"], expected: unknown, actual: unknown) =>
    failures.push({ vector: vector.name, step: i, what, expected, actual });
  if (!sameJson(step.expect, run.outcome)) fail("outcome", step.expect, run.outcome);
  if (!sameJson(step.after, run.after)) fail("balances", step.after, run.after);
  return failures;
}

/**
 * Whether two values are the same JSON value: plain objects with the same keys (in any order),
 * arrays, and primitives compared with `===` (so 0 and -0 are the same, as in JSON).
 */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b))
    return a.length === b.length && a.every((value, i) => sameJson(value, b[i]));
  const entries = Object.entries(a).filter(([, value]) => value !== undefined);
  const other = b as Record<string, unknown>;
  if (entries.length !== Object.values(other).filter((value) => value !== undefined).length)
    return false;
  return entries.every(([key, value]) => Object.hasOwn(other, key) && sameJson(value, other[key]));
}
