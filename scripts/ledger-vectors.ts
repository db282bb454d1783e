/**
 * The ledger vectors' cases (spec/enforcement.md §9): sequences of operations with explicit times.
 * Each is played on the reference ledger (the rule over plain maps), which fills in every outcome
 * and every balance; where a case states what a step must give (`want`), the generator refuses to
 * write a vector the reference disagrees with. Written to spec/vectors/ledger/*.json and embedded in
 * @allowance/enforcer/testing by scripts/generate-ledger-vectors.ts; a test fails when either is
 * stale.
 */
import { join } from "node:path";
import type { AccountRef } from "../packages/enforcer/src/ledger.js";
import type { Amounts, DebtLimits, LedgerLine, LineKind } from "../packages/enforcer/src/rule.js";
import { ReferenceLedger } from "../packages/enforcer/src/testing/reference-ledger.js";
import {
  runStep,
  type LedgerVector,
  type VectorLineSet,
  type VectorStep,
  type VectorStepInput,
} from "../packages/enforcer/src/testing/vectors.js";

export const LEDGER_VECTORS_DIR = join(import.meta.dirname, "..", "spec", "vectors", "ledger");
export const LEDGER_VECTORS_MODULE_PATH = join(
  import.meta.dirname,
  "..",
  "packages",
  "enforcer",
  "src",
  "testing",
  "ledger-vectors.ts",
);

/** 2027-01-15T08:00:00Z, a multiple of 60 s: the start of a one-minute rate-window bucket. */
const T0 = 1_800_000_000_000;
const MAX = Number.MAX_SAFE_INTEGER;

/** A line as the enforcer builds it: account `<link id>|<name>`, with its link and field. */
function line(
  linkId: string,
  linkIndex: number,
  name: string,
  kind: LineKind,
  cap: number | null,
  field: string = name,
): LedgerLine {
  return { account: `${linkId}|${name}`, kind, cap, linkIndex, linkId, field };
}

const amounts = (tokens: number, usdMicros: number, risk = 0, requests = 1): Amounts => ({
  tokens,
  usdMicros,
  risk,
  requests,
});
/** A commit's actual amounts: risk and requests as reserved (-1) unless given. */
const actual = (tokens: number, usdMicros: number, risk = -1, requests = -1): Amounts => ({
  tokens,
  usdMicros,
  risk,
  requests,
});

/** A root L0 and its child L1: caps on the root's tokens and dollars, the child's tokens and risk. */
const CHAIN: VectorLineSet = {
  root: "L0",
  lines: [
    line("L0", 0, "tokens", "tokens", 1000),
    line("L0", 0, "usdMicros", "usdMicros", 800),
    line("L0", 0, "risk", "risk", null),
    line("L0", 0, "requests", "requests", null),
    line("L1", 1, "tokens", "tokens", 600),
    line("L1", 1, "usdMicros", "usdMicros", null),
    line("L1", 1, "risk", "risk", 5),
    line("L1", 1, "requests", "requests", null),
  ],
};

type CaseStep = VectorStepInput & {
  /** What the step must give, in part: each key's value must equal the outcome's. */
  readonly want?: Readonly<Record<string, unknown>>;
};

interface Case {
  readonly name: string;
  readonly description: string;
  readonly lineSets: Readonly<Record<string, VectorLineSet>>;
  readonly steps: readonly CaseStep[];
}

const reserve = (
  id: string,
  lineSet: string,
  a: Amounts,
  now: number,
  more: {
    readonly ttlMs?: number;
    readonly clientNowMs?: number;
    readonly minimums?: Readonly<Partial<Record<"tokens" | "usdMicros", number>>>;
    readonly shadow?: boolean;
    readonly debtLimits?: DebtLimits;
    readonly fingerprint?: string;
    readonly notAfter?: number;
    readonly note?: string;
    readonly want?: Readonly<Record<string, unknown>>;
  } = {},
): CaseStep => ({
  op: "reserve",
  id,
  lineSet,
  amounts: a,
  now,
  ttlMs: more.ttlMs ?? 60_000,
  ...(more.clientNowMs === undefined ? {} : { clientNowMs: more.clientNowMs }),
  ...(more.minimums === undefined ? {} : { minimums: more.minimums }),
  ...(more.shadow === undefined ? {} : { shadow: more.shadow }),
  ...(more.debtLimits === undefined ? {} : { debtLimits: more.debtLimits }),
  ...(more.fingerprint === undefined ? {} : { fingerprint: more.fingerprint }),
  ...(more.notAfter === undefined ? {} : { notAfter: more.notAfter }),
  ...(more.note === undefined ? {} : { note: more.note }),
  ...(more.want === undefined ? {} : { want: more.want }),
});
const commit = (
  id: string,
  a: Amounts,
  now: number,
  more: {
    readonly receipt?: boolean;
    readonly note?: string;
    readonly want?: Readonly<Record<string, unknown>>;
  } = {},
): CaseStep => ({ op: "commit", id, actual: a, now, ...more });
const release = (
  id: string,
  now: number,
  more: { readonly note?: string; readonly want?: Readonly<Record<string, unknown>> } = {},
): CaseStep => ({ op: "release", id, now, ...more });
const extend = (
  id: string,
  ttlMs: number,
  now: number,
  more: { readonly note?: string; readonly want?: Readonly<Record<string, unknown>> } = {},
): CaseStep => ({ op: "extend", id, ttlMs, now, ...more });
const balances = (
  root: string,
  accounts: readonly AccountRef[],
  now: number,
  more: { readonly note?: string; readonly want?: Readonly<Record<string, unknown>> } = {},
): CaseStep => ({ op: "balances", root, accounts, now, ...more });
const settle = (
  lineSet: string,
  now: number,
  more: { readonly note?: string; readonly want?: Readonly<Record<string, unknown>> } = {},
): CaseStep => ({ op: "settle", lineSet, now, ...more });

/** The overage policies as debt limits (spec/enforcement.md §3.9). */
const BLOCK: DebtLimits = { tokens: 0, usdMicros: 0, risk: 0, requests: 0 };
const overdraft = (usdMicros: number): DebtLimits => ({ ...BLOCK, usdMicros });

/** A root whose child has a dollar cap, and risk caps on both, for requests that cost no dollars. */
const DEBTS: VectorLineSet = {
  root: "L0",
  lines: [
    line("L0", 0, "usdMicros", "usdMicros", 100),
    line("L0", 0, "risk", "risk", 50),
    line("L1", 1, "usdMicros", "usdMicros", 40),
    line("L1", 1, "risk", "risk", 10),
  ],
};

/** A one-minute rate window's line: the ledger keys its account by the bucket of its own time. */
const windowLine = (name: string, kind: LineKind, cap: number): LedgerLine => ({
  ...line("L1", 1, name, kind, cap, `rate.60s.${kind}`),
  windowMs: 60_000,
});
/** The accounts of a line set as a balances step names them: a window's line with its window. */
const accountsOf = (set: VectorLineSet): AccountRef[] =>
  set.lines.map(({ account, windowMs }) =>
    windowMs === undefined ? account : { account, windowMs },
  );
const WINDOW: VectorLineSet = {
  root: "L0",
  lines: [
    line("L0", 0, "usdMicros", "usdMicros", 800),
    line("L1", 1, "requests", "requests", null),
    windowLine("w0:60:requests", "requests", 2),
    windowLine("w0:60:tokens", "tokens", 100),
  ],
};

export const CASES: readonly Case[] = [
  {
    name: "reserve-within-caps",
    description:
      "Reserves without minimums: each holds its amounts on every line, or the first line (in line order) whose positive amount exceeds what it has left denies; an amount equal to what is left fits, and a zero amount never denies.",
    lineSets: { chain: CHAIN },
    steps: [
      reserve("L0.a", "chain", amounts(400, 300), T0, { want: { ok: true } }),
      reserve("L0.b", "chain", amounts(300, 100), T0 + 1, {
        note: "the root has 600 tokens left, the child 200: the child's line denies",
        want: { ok: false, line: 4, available: 200 },
      }),
      reserve("L0.c", "chain", amounts(0, 500), T0 + 2, {
        note: "exactly what the root has left",
        want: { ok: true },
      }),
      reserve("L0.d", "chain", amounts(0, 1), T0 + 3, {
        want: { ok: false, line: 1, available: 0 },
      }),
      reserve("L0.e", "chain", amounts(0, 0), T0 + 4, {
        note: "dollars spent out: a request for no dollars still fits",
        want: { ok: true },
      }),
      reserve("L0.f", "chain", amounts(0, 0, 6), T0 + 5, {
        want: { ok: false, line: 6, available: 5 },
      }),
      reserve("L0.g", "chain", amounts(200, 0, 5), T0 + 6, { want: { ok: true } }),
    ],
  },
  {
    name: "reserve-accept-caps",
    description:
      "Reserves with minimums: tokens and micro-dollars are lowered to the least left on their kind's capped lines when that is at least the minimum, and stay as asked (and deny) when it is not; a kind without a minimum, risk and requests are never lowered.",
    lineSets: { chain: CHAIN },
    steps: [
      reserve("L0.a", "chain", amounts(500, 700), T0, { want: { ok: true } }),
      reserve("L0.b", "chain", amounts(500, 500), T0 + 1, {
        minimums: { tokens: 1, usdMicros: 1 },
        note: "lowered to the child's 100 tokens and the root's 100 micro-dollars",
        want: { ok: true, amounts: amounts(100, 100) },
      }),
      reserve("L0.c", "chain", amounts(50, 0), T0 + 2, {
        minimums: { tokens: 10, usdMicros: 10 },
        note: "no tokens left on the child: 0 is below the minimum, so 50 stays and denies",
        want: { ok: false, line: 4, available: 0 },
      }),
      reserve("L0.d", "chain", amounts(50, 0), T0 + 3, {
        minimums: { tokens: 0 },
        note: "a minimum of 0 accepts nothing at all",
        want: { ok: true, amounts: amounts(0, 0) },
      }),
      reserve("L0.e", "chain", amounts(0, 10), T0 + 4, {
        minimums: { tokens: 1 },
        note: "micro-dollars have no minimum: not lowered",
        want: { ok: false, line: 1, available: 0 },
      }),
      reserve("L0.f", "chain", amounts(0, 0, 9), T0 + 5, {
        minimums: { tokens: 1, usdMicros: 1 },
        want: { ok: false, line: 6, available: 5 },
      }),
      release("L0.a", T0 + 6, { want: { status: "released", already: false } }),
      reserve("L0.g", "chain", amounts(700, 900), T0 + 7, {
        minimums: { tokens: 650, usdMicros: 1 },
        note: "500 tokens fit on the child, below the minimum of 650: the child denies 700",
        want: { ok: false, line: 4, available: 500 },
      }),
      reserve("L0.h", "chain", amounts(700, 900), T0 + 8, {
        minimums: { tokens: 500, usdMicros: 1 },
        want: { ok: true, amounts: amounts(500, 700) },
      }),
    ],
  },
  {
    name: "commit-below-and-above-the-hold",
    description:
      "Commits charge what was used on every line and give back the hold: less than held, more than held (an overrun, charged all the same), risk and requests as reserved when -1. A commit lists the capped lines whose spent crossed 50, 80 or 100% of the cap; a cap of 0 crosses nothing. After an overrun a line's available amount is negative.",
    lineSets: {
      usd: {
        root: "L0",
        lines: [
          line("L0", 0, "usdMicros", "usdMicros", 100),
          line("L0", 0, "tokens", "tokens", 0),
          line("L0", 0, "requests", "requests", null),
          line("L1", 1, "usdMicros", "usdMicros", 40),
        ],
      },
    },
    steps: [
      reserve("L0.a", "usd", amounts(0, 30), T0, { want: { ok: true } }),
      commit("L0.a", actual(0, 20), T0 + 1, {
        note: "below the hold: 20 of 30; the child's 20 of 40 crosses 50%",
        want: { status: "committed", already: false, late: false },
      }),
      reserve("L0.b", "usd", amounts(0, 10), T0 + 2, { want: { ok: true } }),
      commit("L0.b", actual(0, 45), T0 + 3, {
        note: "above the hold: 45 of 10; the root crosses 50%, the child 80% and 100%",
      }),
      reserve("L0.c", "usd", amounts(0, 0), T0 + 4, { want: { ok: true } }),
      commit("L0.c", actual(5, 0), T0 + 5, {
        note: "5 tokens on a cap of 0: charged, no threshold",
        want: { lines: [] },
      }),
      reserve("L0.d", "usd", amounts(0, 35), T0 + 6, {
        note: "the child is 25 over its cap",
        want: { ok: false, line: 3, available: -25 },
      }),
      reserve("L0.e", "usd", amounts(0, 3), T0 + 7, { want: { ok: false, line: 3 } }),
      reserve("L0.f", "usd", amounts(7, 0), T0 + 8, { want: { ok: false, line: 1 } }),
      commit("L0.c", actual(9, 9, 9, 9), T0 + 9, {
        note: "repeated: the first commit's outcome, nothing charged again",
        want: { already: true, charged: amounts(5, 0) },
      }),
    ],
  },
  {
    name: "commit-late-repeated-and-released",
    description:
      "A hold expires at its expiry time (included) at the next operation on its root; a commit after that is charged in full and marked late; a repeated commit answers the first one's outcome; release and commit of a released, committed, expired or unknown reservation change nothing.",
    lineSets: { chain: CHAIN },
    steps: [
      reserve("L0.a", "chain", amounts(100, 50), T0, { ttlMs: 1000, want: { ok: true } }),
      reserve("L0.b", "chain", amounts(0, 10), T0 + 500, { want: { ok: true } }),
      release("L0.none", T0 + 1000, {
        note: "unknown; its sweep expires L0.a, due at exactly now",
        want: { status: "unknown", already: false, expired: ["L0.a"] },
      }),
      commit("L0.a", actual(120, 70), T0 + 2000, {
        note: "late: charged in full; nothing was held any more",
        want: { status: "committed", already: false, late: true, charged: actual(120, 70, 0, 1) },
      }),
      commit("L0.a", actual(1, 1), T0 + 2001, { want: { already: true, late: true } }),
      release("L0.a", T0 + 2002, { want: { status: "committed", already: true } }),
      release("L0.b", T0 + 2003, { want: { status: "released", already: false } }),
      release("L0.b", T0 + 2004, { want: { status: "released", already: true } }),
      commit("L0.b", actual(1, 1), T0 + 2005, { want: { status: "released" } }),
      commit("L0.none", actual(1, 1), T0 + 2006, { want: { status: "unknown" } }),
      commit("Q0.x", actual(1, 1), T0 + 2007, {
        note: "a root no line set has",
        want: { status: "unknown" },
      }),
    ],
  },
  {
    name: "expiry-order",
    description:
      "A sweep expires the holds of the root whose expiry is at or before now, reporting them in order of expiry time, then id (UTF-16 order); times keep fractions of a millisecond.",
    lineSets: { chain: CHAIN },
    steps: [
      reserve("L0.m", "chain", amounts(10, 10), T0, { ttlMs: 100 }),
      reserve("L0.k", "chain", amounts(10, 10), T0, { ttlMs: 100 }),
      reserve("L0.z", "chain", amounts(10, 10), T0, { ttlMs: 50.5 }),
      reserve("L0.a", "chain", amounts(10, 10), T0, { ttlMs: 100.25 }),
      reserve("L0.b", "chain", amounts(10, 10), T0, { ttlMs: 200 }),
      reserve("L0.B", "chain", amounts(10, 10), T0, { ttlMs: 100 }),
      balances("L0", ["L0|tokens"], T0 + 50.25, { want: { expired: [] } }),
      balances("L0", ["L0|tokens"], T0 + 50.5, { want: { expired: ["L0.z"] } }),
      reserve("L0.c", "chain", amounts(1, 1), T0 + 100.25, {
        want: { ok: true, expired: ["L0.B", "L0.k", "L0.m", "L0.a"] },
      }),
      commit("L0.b", actual(10, 10), T0 + 199.75, { want: { late: false, expired: [] } }),
      release("L0.c", T0 + 300, { want: { status: "released", expired: [] } }),
    ],
  },
  {
    name: "sweep-per-root",
    description:
      "An operation sweeps only the root it acts on: another root's due holds stay held until an operation on that root.",
    lineSets: {
      r: { root: "R0", lines: [line("R0", 0, "usdMicros", "usdMicros", 100)] },
      q: { root: "Q0", lines: [line("Q0", 0, "usdMicros", "usdMicros", 100)] },
    },
    steps: [
      reserve("R0.a", "r", amounts(0, 60), T0, { ttlMs: 10 }),
      reserve("Q0.a", "q", amounts(0, 60), T0, { ttlMs: 10 }),
      commit("Q0.x", actual(0, 1), T0 + 20, { want: { status: "unknown", expired: ["Q0.a"] } }),
      reserve("Q0.b", "q", amounts(0, 100), T0 + 21, { want: { ok: true, expired: [] } }),
      balances("R0", ["R0|usdMicros"], T0 + 22, {
        note: "R0.a was still held: its root is swept now",
        want: { expired: ["R0.a"] },
      }),
    ],
  },
  {
    name: "thresholds",
    description:
      "A commit lists a capped line when its spent went from below c·p/100 to at or above it, for p in 50, 80, 100: reaching the mark exactly crosses it, starting on it does not, one commit may cross several.",
    lineSets: {
      caps: {
        root: "L0",
        lines: [
          line("L0", 0, "usdMicros", "usdMicros", 1000),
          line("L0", 0, "tokens", "tokens", 3),
          line("L0", 0, "requests", "requests", null),
        ],
      },
    },
    steps: [
      reserve("L0.a", "caps", amounts(0, 500), T0),
      commit("L0.a", actual(0, 499), T0 + 1, { want: { lines: [] } }),
      reserve("L0.b", "caps", amounts(0, 1), T0 + 2),
      commit("L0.b", actual(0, 1), T0 + 3, { note: "499 → 500: exactly 50%" }),
      reserve("L0.c", "caps", amounts(0, 300), T0 + 4),
      commit("L0.c", actual(0, 300), T0 + 5, { note: "500 → 800: 80%, not 50% again" }),
      reserve("L0.d", "caps", amounts(2, 0), T0 + 6),
      commit("L0.d", actual(2, 0), T0 + 7, { note: "0 → 2 of 3 tokens: 50% (1.5)" }),
      reserve("L0.e", "caps", amounts(1, 0), T0 + 8),
      commit("L0.e", actual(1, 250), T0 + 9, {
        note: "tokens 2 → 3: 80% (2.4) and 100%; dollars 800 → 1050: 100%",
      }),
      reserve("L0.f", "caps", amounts(0, 0), T0 + 10),
      commit("L0.f", actual(0, 10), T0 + 11, {
        note: "past 100% already",
        want: { lines: [] },
      }),
    ],
  },
  {
    name: "rate-window-bucket-boundary",
    description:
      "A rate window's line names the window (windowMs); its account is per bucket of the ledger's time, floor(now / windowMs), keyed `<account>@<bucket>`: the bucket ending at T0 + 60 s fills up and denies, whatever the caller's clock says; from the boundary on, the next bucket's account allows; a hold made in the old bucket is charged to it when committed after the boundary, as a read at a time in the old bucket shows.",
    lineSets: { window: WINDOW },
    steps: [
      reserve("L0.a", "window", amounts(60, 0), T0 + 59_000, { want: { ok: true } }),
      reserve("L0.b", "window", amounts(50, 0), T0 + 59_001, {
        want: { ok: false, line: 3, available: 40 },
      }),
      reserve("L0.c", "window", amounts(40, 0), T0 + 59_002, { want: { ok: true } }),
      reserve("L0.d", "window", amounts(0, 0), T0 + 59_999, {
        clientNowMs: T0 + 63_999,
        note: "two requests held in this bucket; the caller's clock, 4 s ahead, is in the next bucket but the ledger's is not",
        want: { ok: false, line: 2, available: 0 },
      }),
      reserve("L0.e", "window", amounts(100, 0), T0 + 60_000, { want: { ok: true } }),
      commit("L0.a", actual(70, 0), T0 + 60_001, {
        note: "charged to the old bucket: 70 of its 100 tokens, one of its two requests",
      }),
      release("L0.c", T0 + 60_002, { want: { status: "released" } }),
      reserve("L0.f", "window", amounts(1, 0), T0 + 60_003, {
        want: { ok: false, line: 3, available: 0 },
      }),
      balances("L0", accountsOf(WINDOW), T0 + 59_999, {
        note: "read at a time in the old bucket: L0.a's 70 tokens and its request, L0.c's released",
      }),
    ],
  },
  {
    name: "clock-skew",
    description:
      "The ledger's time decides (spec/enforcement.md §3.8): a reserve whose caller's clock (clientNowMs) is more than 5,000 ms from the ledger's, either way, is refused with ERR_CLOCK_SKEW and changes nothing, not even taking its id; at the bound it is allowed. A caller ahead by a hold's TTL cannot expire it: holds end by the ledger's time.",
    lineSets: { chain: CHAIN },
    steps: [
      reserve("L0.a", "chain", amounts(100, 600), T0, {
        clientNowMs: T0 - 5000,
        note: "5 s behind: at the bound",
        want: { ok: true },
      }),
      reserve("L0.b", "chain", amounts(100, 100), T0 + 1, {
        clientNowMs: T0 + 5001,
        note: "5 s ahead: at the bound",
        want: { ok: true },
      }),
      reserve("L0.c", "chain", amounts(100, 100), T0 + 2, {
        clientNowMs: T0 + 5002.5,
        want: { error: "ERR_CLOCK_SKEW" },
      }),
      reserve("L0.d", "chain", amounts(100, 100), T0 + 3, {
        clientNowMs: T0 + 3 - 5001,
        want: { error: "ERR_CLOCK_SKEW" },
      }),
      reserve("L0.c", "chain", amounts(100, 100), T0 + 4, {
        clientNowMs: T0 + 4,
        note: "the refused reserve did not take its id",
        want: { ok: true },
      }),
      reserve("L0.e", "chain", amounts(100, 400), T0 + 10, {
        clientNowMs: T0 + 60_010,
        note: "a caller a whole TTL ahead: refused; L0.a, due at T0 + 60 s by the ledger's clock, stays held",
        want: { error: "ERR_CLOCK_SKEW" },
      }),
      reserve("L0.f", "chain", amounts(0, 1), T0 + 59_999, {
        note: "by the ledger's clock L0.a is still held: the root has nothing left",
        want: { ok: false, line: 1, available: 0 },
      }),
      reserve("L0.g", "chain", amounts(0, 1), T0 + 60_000, {
        note: "L0.a ends at the ledger's T0 + 60 s (its time plus its TTL)",
        want: { ok: true, expired: ["L0.a"] },
      }),
    ],
  },
  {
    name: "reservation-conflict",
    description:
      "A reserve whose id another reservation has — held, expired, committed or released — is refused with ERR_RESERVATION_CONFLICT after its sweep, which stays.",
    lineSets: { chain: CHAIN },
    steps: [
      reserve("L0.a", "chain", amounts(10, 10), T0, { ttlMs: 1000 }),
      reserve("L0.a", "chain", amounts(5, 5), T0 + 1, {
        want: { error: "ERR_RESERVATION_CONFLICT" },
      }),
      reserve("L0.a", "chain", amounts(5, 5), T0 + 1000, {
        note: "the sweep expires L0.a first; the id is still taken",
        want: { error: "ERR_RESERVATION_CONFLICT" },
      }),
      release("L0.a", T0 + 1001, { want: { status: "expired", already: true, expired: [] } }),
      reserve("L0.b", "chain", amounts(10, 10), T0 + 1002),
      commit("L0.b", actual(10, 10), T0 + 1003),
      reserve("L0.b", "chain", amounts(1, 1), T0 + 1004, {
        want: { error: "ERR_RESERVATION_CONFLICT" },
      }),
    ],
  },
  {
    name: "totals-at-the-maximum",
    description:
      "Amounts are exact up to 2^53 - 1: a reserve that would take a line without a cap past it, or a commit that would take a spent past it, is refused with a RangeError and changes no account.",
    lineSets: {
      big: {
        root: "L0",
        lines: [
          line("L0", 0, "tokens", "tokens", null),
          line("L0", 0, "usdMicros", "usdMicros", MAX),
        ],
      },
    },
    steps: [
      reserve("L0.a", "big", amounts(MAX - 5, 0), T0, { want: { ok: true } }),
      reserve("L0.b", "big", amounts(6, 0), T0 + 1, { want: { error: "RangeError" } }),
      reserve("L0.c", "big", amounts(5, MAX), T0 + 2, { want: { ok: true } }),
      commit("L0.a", actual(MAX - 5, 0), T0 + 3, { want: { status: "committed" } }),
      commit("L0.c", actual(6, 0), T0 + 4, { want: { error: "RangeError" } }),
      commit("L0.c", actual(5, -1), T0 + 5, {
        want: { status: "committed", charged: actual(5, MAX, 0, 1) },
      }),
      reserve("L0.d", "big", amounts(0, 1), T0 + 6, {
        want: { ok: false, line: 1, available: 0 },
      }),
    ],
  },
  {
    name: "shadow-reserve",
    description:
      "A shadow reserve is decided as any other and holds the amounts asked whatever the decision: when the rule would have denied or lowered them, the outcome is ok with the amounts asked and wouldBe, what the rule would have answered; a commit then charges as usual, crossing thresholds past the cap; only a total past 2^53 - 1, on any line, refuses it.",
    lineSets: {
      chain: CHAIN,
      big: { root: "B0", lines: [line("B0", 0, "usdMicros", "usdMicros", 10)] },
    },
    steps: [
      reserve("L0.a", "chain", amounts(500, 700), T0, {
        shadow: true,
        note: "fits: the outcome of any reserve, no wouldBe",
        want: { ok: true, wouldBe: undefined },
      }),
      reserve("L0.b", "chain", amounts(200, 200), T0 + 1, {
        shadow: true,
        note: "the root has 100 micro-dollars left: held anyway, 100 past its cap",
        want: {
          ok: true,
          amounts: amounts(200, 200),
          wouldBe: { ok: false, line: 1, available: 100 },
        },
      }),
      reserve("L0.c", "chain", amounts(0, 50), T0 + 2, {
        note: "not a shadow reserve: the rule denies, with the root 100 past its cap",
        want: { ok: false, line: 1, available: -100 },
      }),
      reserve("L0.d", "chain", amounts(500, 10), T0 + 3, {
        shadow: true,
        minimums: { tokens: 1 },
        note: "the child has no tokens left: 0 is below the minimum, so 500 stays and the root's 300 deny",
        want: {
          ok: true,
          amounts: amounts(500, 10),
          wouldBe: { ok: false, line: 0, available: 300 },
        },
      }),
      release("L0.d", T0 + 4),
      release("L0.b", T0 + 5),
      reserve("L0.e", "chain", amounts(300, 0), T0 + 6, {
        shadow: true,
        minimums: { tokens: 1 },
        note: "lowered to the child's 100 tokens left, and fits: held as asked",
        want: {
          ok: true,
          amounts: amounts(300, 0),
          wouldBe: { ok: true, amounts: amounts(100, 0) },
        },
      }),
      commit("L0.a", actual(500, 900), T0 + 7, {
        note: "charged as any commit: the root's 900 of 800 crosses 100%",
      }),
      reserve("B0.a", "big", amounts(0, MAX - 5), T0 + 8, { shadow: true }),
      reserve("B0.b", "big", amounts(0, 6), T0 + 9, {
        shadow: true,
        note: "would be held past 2^53 - 1 on a capped line: refused",
        want: { error: "RangeError" },
      }),
      reserve("B0.c", "big", amounts(0, 5), T0 + 10, {
        shadow: true,
        want: { ok: true, wouldBe: { ok: false, line: 0, available: 10 - (MAX - 5) } },
      }),
    ],
  },
  {
    name: "receipts",
    description:
      "A commit asked for with a receipt is numbered among its root's receipted commits, from 1, atomically with the charge: the answer names its entry (root, sequence number, reservation, the link ids of its lines each once in line order, what was charged, whether late, the ledger's time in whole milliseconds) and the entry before it (null for the first). A commit without a receipt takes no number; a repeated commit answers the first's receipt; each root counts on its own.",
    lineSets: {
      chain: CHAIN,
      other: { root: "R0", lines: [line("R0", 0, "usdMicros", "usdMicros", 100)] },
    },
    steps: [
      reserve("L0.a", "chain", amounts(10, 10), T0),
      reserve("L0.b", "chain", amounts(10, 10), T0 + 1, { ttlMs: 1_000 }),
      reserve("L0.c", "chain", amounts(10, 10), T0 + 2),
      reserve("L0.d", "chain", amounts(10, 10), T0 + 3),
      commit("L0.a", actual(12, 8), T0 + 10.75, {
        receipt: true,
        note: "the root's first receipt: no entry before it; its time is rounded down",
        want: { receipt: { entry: { seq: 1, atMs: T0 + 10 }, prev: null } },
      }),
      commit("L0.c", actual(10, 10), T0 + 11, {
        note: "no receipt asked for: no number taken, no receipt answered",
        want: { receipt: undefined },
      }),
      reserve("R0.a", "other", amounts(0, 5), T0 + 12),
      commit("R0.a", actual(0, 5, 0, 1), T0 + 13, {
        receipt: true,
        note: "another root counts from 1",
        want: { receipt: { entry: { root: "R0", seq: 1, linkIds: ["R0"] }, prev: null } },
      }),
      commit("L0.b", actual(10, 10), T0 + 2_000, {
        receipt: true,
        note: "late: its hold expired at T0 + 1001; the second receipt names the first",
        want: { late: true, receipt: { entry: { seq: 2, late: true } } },
      }),
      commit("L0.a", actual(1, 1), T0 + 2_001, {
        receipt: true,
        note: "repeated: the first commit's outcome and receipt, no new number",
        want: { already: true, receipt: { entry: { seq: 1 }, prev: null } },
      }),
      commit("L0.d", actual(0, 0), T0 + 2_002, {
        receipt: true,
        want: { receipt: { entry: { seq: 3 } } },
      }),
      commit("L0.d", actual(0, 0), T0 + 2_003, {
        note: "repeated without asking for a receipt: the first one's all the same",
        want: { already: true, receipt: { entry: { seq: 3 } } },
      }),
      commit("L0.none", actual(1, 1), T0 + 2_004, {
        receipt: true,
        note: "unknown: nothing charged, no number taken",
        want: { status: "unknown" },
      }),
      release("L0.c", T0 + 2_005),
    ],
  },
  {
    name: "overage-policy",
    description:
      "The overage policy, as a reserve's debt limits: a capped line whose outstanding debt (spent - cap - settled) is past its kind's limit denies every reserve that touches it, whatever its amount, with its debt; a settle marks every capped line's outstanding debt settled, so that it no longer blocks, without lowering spent or raising the cap; without debt limits (record) debt denies only amounts of its own kind, by the cap.",
    lineSets: { debts: DEBTS },
    steps: [
      reserve("L0.a", "debts", amounts(0, 30, 1), T0, { debtLimits: BLOCK, want: { ok: true } }),
      commit("L0.a", actual(0, 50), T0 + 1, {
        note: "an overrun: the child's 50 of 40 is 10 in debt",
        want: { status: "committed" },
      }),
      reserve("L0.b", "debts", amounts(0, 0, 1), T0 + 2, {
        debtLimits: BLOCK,
        note: "block: no dollars asked, and still denied by the child's debt",
        want: { ok: false, line: 2, available: -10, debt: 10 },
      }),
      reserve("L0.c", "debts", amounts(0, 0, 1), T0 + 3, {
        note: "record: debt denies only what its cap denies, and a zero amount never",
        want: { ok: true },
      }),
      reserve("L0.d", "debts", amounts(0, 0, 1), T0 + 4, {
        debtLimits: overdraft(10),
        note: "overdraft of 10: a debt of 10 is within it",
        want: { ok: true },
      }),
      reserve("L0.e", "debts", amounts(0, 0, 1), T0 + 5, {
        debtLimits: overdraft(9),
        want: { ok: false, line: 2, debt: 10 },
      }),
      reserve("L0.f", "debts", amounts(0, 0, 1), T0 + 6, {
        debtLimits: BLOCK,
        shadow: true,
        note: "a shadow reserve holds anyway, and says the policy would have denied it",
        want: { ok: true, wouldBe: { ok: false, line: 2, available: -10, debt: 10 } },
      }),
      release("L0.c", T0 + 7),
      release("L0.d", T0 + 8),
      release("L0.f", T0 + 9),
      settle("debts", T0 + 10, {
        note: "the child's 10 settled; the root, within its cap, has none",
        want: { settled: [{ ...DEBTS.lines[2], amount: 10, spent: 50 }] },
      }),
      settle("debts", T0 + 11, { note: "nothing left to settle", want: { settled: [] } }),
      reserve("L0.g", "debts", amounts(0, 0, 1), T0 + 12, {
        debtLimits: BLOCK,
        note: "settled: no longer blocked",
        want: { ok: true },
      }),
      reserve("L0.h", "debts", amounts(0, 1, 1), T0 + 13, {
        debtLimits: BLOCK,
        note: "but the cap is spent past: dollars are denied by it, as always (no debt field)",
        want: { ok: false, line: 2, available: -10, debt: undefined },
      }),
      commit("L0.g", actual(0, 3), T0 + 14, { note: "3 more past the cap: new debt" }),
      reserve("L0.i", "debts", amounts(0, 0, 1), T0 + 15, {
        debtLimits: BLOCK,
        want: { ok: false, line: 2, debt: 3 },
      }),
      reserve("L0.j", "debts", amounts(0, 0, 12), T0 + 16, {
        debtLimits: overdraft(3),
        note: "the child's dollars are within the overdraft; its risk cap denies 12 as always",
        want: { ok: false, line: 3, available: 8 },
      }),
      balances("L0", ["L1|usdMicros", "L0|usdMicros"], T0 + 17, {
        want: {
          balances: {
            "L1|usdMicros": { spent: 53, held: 0, settled: 10 },
            "L0|usdMicros": { spent: 53, held: 0 },
          },
        },
      }),
      settle("debts", T0 + 18, {
        note: "the new debt settled: the amount is what was not settled before, spent is the line's",
        want: { settled: [{ ...DEBTS.lines[2], amount: 3, spent: 53 }] },
      }),
    ],
  },
  {
    name: "overage-window-reset",
    description:
      "Debt on a rate window's account is debt of its bucket: the next bucket's account has none, so a policy that blocks in one bucket lets the next one through.",
    lineSets: { window: WINDOW },
    steps: [
      reserve("L0.a", "window", amounts(60, 0), T0 + 1_000, { debtLimits: BLOCK }),
      commit("L0.a", actual(150, 0), T0 + 2_000, {
        note: "150 tokens of the window's 100: 50 in debt in this bucket",
      }),
      reserve("L0.b", "window", amounts(0, 0), T0 + 3_000, {
        debtLimits: BLOCK,
        want: { ok: false, line: 3, available: -50, debt: 50 },
      }),
      reserve("L0.c", "window", amounts(10, 0), T0 + 60_000, {
        debtLimits: BLOCK,
        note: "the next bucket: a new account, no debt",
        want: { ok: true },
      }),
    ],
  },
  {
    name: "reserve-repeated",
    description:
      "A reserve of an id already in use with the same fingerprint (a retry whose first answer was lost) answers the first decision, unchanged (already, the amounts it held, its hold's expiry), and holds nothing more, whatever the reservation became since and whatever the balances are now; another fingerprint, or none on either side, is ERR_RESERVATION_CONFLICT. A denial holds nothing and is not kept.",
    lineSets: { chain: CHAIN },
    steps: [
      reserve("L0.k", "chain", amounts(100, 50), T0, { fingerprint: "F1", want: { ok: true } }),
      reserve("L0.k", "chain", amounts(100, 50), T0 + 1000, {
        fingerprint: "F1",
        note: "the same reserve again: the first decision, nothing more held",
        want: { ok: true, already: true, amounts: amounts(100, 50), expiresAt: T0 + 60_000 },
      }),
      reserve("L0.k", "chain", amounts(100, 50), T0 + 1001, {
        fingerprint: "F2",
        note: "another request under the same id",
        want: { error: "ERR_RESERVATION_CONFLICT" },
      }),
      reserve("L0.k", "chain", amounts(100, 50), T0 + 1002, {
        note: "no fingerprint: the id is in use",
        want: { error: "ERR_RESERVATION_CONFLICT" },
      }),
      reserve("L0.n", "chain", amounts(10, 10), T0 + 1003),
      reserve("L0.n", "chain", amounts(10, 10), T0 + 1004, {
        fingerprint: "F1",
        note: "a reservation made without a fingerprint is never repeated",
        want: { error: "ERR_RESERVATION_CONFLICT" },
      }),
      reserve("L0.c", "chain", amounts(700, 900), T0 + 1005, {
        fingerprint: "F3",
        minimums: { tokens: 1, usdMicros: 1 },
        want: { ok: true, amounts: amounts(490, 740) },
      }),
      release("L0.k", T0 + 1006),
      reserve("L0.c", "chain", amounts(700, 900), T0 + 1007, {
        fingerprint: "F3",
        minimums: { tokens: 1, usdMicros: 1 },
        note: "more fits now, but the answer is the first one's",
        want: { ok: true, already: true, amounts: amounts(490, 740) },
      }),
      reserve("L0.k", "chain", amounts(100, 50), T0 + 1008, {
        fingerprint: "F1",
        note: "released since: still its decision, and nothing held again",
        want: { ok: true, already: true },
      }),
      commit("L0.c", actual(400, 600), T0 + 1009),
      reserve("L0.c", "chain", amounts(700, 900), T0 + 1010, {
        fingerprint: "F3",
        minimums: { tokens: 1, usdMicros: 1 },
        note: "committed since",
        want: { ok: true, already: true, amounts: amounts(490, 740) },
      }),
      reserve("L0.e", "chain", amounts(5, 5), T0 + 2000, { fingerprint: "F4", ttlMs: 1000 }),
      reserve("L0.e", "chain", amounts(5, 5), T0 + 3000, {
        fingerprint: "F4",
        note: "its sweep expires the hold first; the answer is still the first decision",
        want: { ok: true, already: true, expiresAt: T0 + 3000, expired: ["L0.e"] },
      }),
      reserve("L0.d", "chain", amounts(0, 200), T0 + 3001, {
        fingerprint: "F5",
        want: { ok: false, line: 1 },
      }),
      release("L0.n", T0 + 3002),
      reserve("L0.d", "chain", amounts(0, 200), T0 + 3003, {
        fingerprint: "F5",
        note: "the denial was not kept: decided afresh, and now it fits",
        want: { ok: true },
      }),
    ],
  },
  {
    name: "commit-repeated",
    description:
      "A repeated commit (a retry whose first answer was lost) answers the first commit's outcome: already, what it charged, whether late, and the lines it listed, with their spent before and after as the first commit found them, so that the caller can still raise its events; nothing is charged again.",
    lineSets: {
      usd: {
        root: "L0",
        lines: [
          line("L0", 0, "usdMicros", "usdMicros", 100),
          line("L0", 0, "requests", "requests", null),
          line("L1", 1, "usdMicros", "usdMicros", 60),
        ],
      },
    },
    steps: [
      reserve("L0.a", "usd", amounts(0, 30), T0),
      commit("L0.a", actual(0, 45), T0 + 1, {
        note: "above the hold; the child crosses 50%",
        want: { already: false },
      }),
      commit("L0.a", actual(0, 1), T0 + 2, {
        note: "the first commit's outcome, its listed line included; nothing charged",
        want: { already: true, charged: actual(0, 45, 0, 1) },
      }),
      reserve("L0.b", "usd", amounts(0, 10), T0 + 3, { ttlMs: 10 }),
      commit("L0.b", actual(0, 20), T0 + 20, {
        note: "late; the root crosses 50%, the child 80 and 100%",
        want: { already: false, late: true, expired: ["L0.b"] },
      }),
      commit("L0.b", actual(0, 20), T0 + 21, { want: { already: true, late: true } }),
      reserve("L0.c", "usd", amounts(0, 0), T0 + 22, { note: "a request that costs nothing" }),
      commit("L0.c", actual(0, 0), T0 + 23, { want: { already: false, lines: [] } }),
      commit("L0.c", actual(0, 0), T0 + 24, { want: { already: true, lines: [] } }),
    ],
  },
  {
    name: "extend",
    description:
      "An extend moves a held reservation's expiry to its TTL after the step's time, never past the bound its reserve gave (the end of its chain) and never earlier than it was, after the root's sweep; a reservation that is not held (its expiry come, released, committed, unknown) is answered with its status, unchanged. A reserve's own hold never lasts past its bound either, and expiry order follows the moved expiries.",
    lineSets: { chain: CHAIN },
    steps: [
      reserve("L0.a", "chain", amounts(100, 100), T0, { ttlMs: 1000, notAfter: T0 + 5000 }),
      reserve("L0.b", "chain", amounts(100, 100), T0, { ttlMs: 1000 }),
      extend("L0.a", 2000, T0 + 500, { want: { status: "held", expiresAt: T0 + 2500 } }),
      extend("L0.a", 1000, T0 + 600, {
        note: "an extend never shortens a hold",
        want: { status: "held", expiresAt: T0 + 2500 },
      }),
      balances("L0", ["L0|tokens"], T0 + 1000, {
        note: "L0.b ends at its time; L0.a, extended, holds on",
        want: { balances: { "L0|tokens": { spent: 0, held: 100 } }, expired: ["L0.b"] },
      }),
      extend("L0.b", 1000, T0 + 1001, { want: { status: "expired", expired: [] } }),
      extend("L0.a", 10_000, T0 + 2000, {
        note: "no further than the end of its chain",
        want: { status: "held", expiresAt: T0 + 5000 },
      }),
      extend("L0.a", 1000, T0 + 5000, {
        note: "its expiry has come: the sweep expires it first, nothing is extended",
        want: { status: "expired", expired: ["L0.a"] },
      }),
      extend("L0.none", 1000, T0 + 5001, { want: { status: "unknown" } }),
      reserve("L0.c", "chain", amounts(1, 1), T0 + 5002),
      release("L0.c", T0 + 5003),
      extend("L0.c", 1000, T0 + 5004, { want: { status: "released" } }),
      reserve("L0.d", "chain", amounts(1, 1), T0 + 5005),
      commit("L0.d", actual(1, 1), T0 + 5006),
      extend("L0.d", 1000, T0 + 5007, { want: { status: "committed" } }),
      reserve("L0.e", "chain", amounts(10, 10), T0 + 6000, {
        notAfter: T0 + 6500,
        note: "a TTL of 60 s on a chain that ends in 0.5 s: the hold ends with the chain",
      }),
      balances("L0", ["L0|tokens"], T0 + 6500, { want: { expired: ["L0.e"] } }),
      reserve("L0.f", "chain", amounts(10, 10), T0 + 7000, { ttlMs: 1000 }),
      reserve("L0.g", "chain", amounts(10, 10), T0 + 7000, { ttlMs: 1000 }),
      extend("L0.f", 500, T0 + 7600, { want: { expiresAt: T0 + 8100 } }),
      balances("L0", ["L0|tokens"], T0 + 8000, { want: { expired: ["L0.g"] } }),
      balances("L0", ["L0|tokens"], T0 + 8100, { want: { expired: ["L0.f"] } }),
      reserve("L0.h", "chain", amounts(10, 10), T0 + 9000, { ttlMs: 1000, fingerprint: "FH" }),
      extend("L0.h", 5000, T0 + 9500, { want: { expiresAt: T0 + 14_500 } }),
      reserve("L0.h", "chain", amounts(10, 10), T0 + 9600, {
        ttlMs: 1000,
        fingerprint: "FH",
        note: "a repeated reserve answers the hold's expiry as extended",
        want: { already: true, expiresAt: T0 + 14_500 },
      }),
    ],
  },
  {
    name: "balances",
    description:
      "balances() sweeps the root like any operation and answers spent and held of the accounts asked for, 0 and 0 for an account never used.",
    lineSets: { chain: CHAIN },
    steps: [
      reserve("L0.a", "chain", amounts(10, 20, 1), T0, { ttlMs: 5 }),
      balances("L0", ["L1|risk", "L0|never", "L0|usdMicros"], T0 + 4, {
        want: {
          balances: {
            "L1|risk": { spent: 0, held: 1 },
            "L0|never": { spent: 0, held: 0 },
            "L0|usdMicros": { spent: 0, held: 20 },
          },
          expired: [],
        },
      }),
      balances("L0", ["L0|usdMicros"], T0 + 5, {
        want: { balances: { "L0|usdMicros": { spent: 0, held: 0 } }, expired: ["L0.a"] },
      }),
    ],
  },
];

/** Every case played on the reference ledger, its outcomes and balances filled in. */
export async function buildLedgerVectors(): Promise<LedgerVector[]> {
  const vectors: LedgerVector[] = [];
  for (const c of CASES) {
    const ledger = new ReferenceLedger();
    const steps: VectorStep[] = [];
    for (const [i, { want, ...step }] of c.steps.entries()) {
      const run = await runStep(ledger, c, step);
      for (const [key, value] of Object.entries(want ?? {}))
        if (!wanted(run.outcome[key], value))
          throw new Error(
            `ledger vector ${c.name}, step ${i}: the reference gives ${key} = ${JSON.stringify(run.outcome[key])}, the case wants ${JSON.stringify(value)}`,
          );
      steps.push({ ...step, expect: run.outcome, after: run.after } as VectorStep);
    }
    vectors.push({ name: c.name, description: c.description, lineSets: c.lineSets, steps });
  }
  return vectors;
}

/**
 * Whether an outcome's value is what a case wants: an object wanted matches an object having at
 * least its keys, each as wanted; anything else, the same JSON.
 */
function wanted(actual: unknown, want: unknown): boolean {
  if (typeof want === "object" && want !== null && !Array.isArray(want))
    return (
      typeof actual === "object" &&
      actual !== null &&
      Object.entries(want).every(([key, value]) =>
        wanted((actual as Record<string, unknown>)[key], value),
      )
    );
  return JSON.stringify(actual) === JSON.stringify(want);
}

/** A vector's file, as committed. */
export function renderLedgerVector(vector: LedgerVector): string {
  return `${JSON.stringify(vector, null, 2)}\n`;
}

/** The module that embeds the vectors in @allowance/enforcer/testing. */
export function renderLedgerVectorsModule(vectors: readonly LedgerVector[]): string {
  return [
    "// Generated by scripts/generate-ledger-vectors.ts from scripts/ledger-vectors.ts: do not edit.",
    "// The same vectors as spec/vectors/ledger/*.json.",
    'import type { LedgerVector } from "./vectors.js";',
    "",
    "/** The ledger vectors (spec/enforcement.md §9). */",
    `export const LEDGER_VECTORS: readonly LedgerVector[] = ${JSON.stringify(vectors, null, 2)};`,
    "",
  ].join("\n");
}
