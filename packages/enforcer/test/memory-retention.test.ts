/**
 * The memory ledger's retention of rate-window bucket accounts (spec/enforcement.md §3.5, §8): a
 * bucket account that holds nothing is forgotten once its bucket ended `retentionMs` ago, so that a
 * long run keeps as many as end within the retention, not one per bucket forever. Before, a
 * 1-second window added an account every second for as long as the process ran.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MemoryLedger, type LedgerLine, type ReserveOp } from "@allowance/enforcer";
import { storedAccountsOf } from "../src/memory-ledger.js";
import { line, T0, ZERO } from "../../../test/support/ledger-suite.js";

const ROOT = "root";
const windowed = (account: string, windowMs: number, cap: number | null): LedgerLine => ({
  ...line(account, "requests", cap),
  windowMs,
});

/** A 1-second window's line on requests, and a total on usdMicros without a window. */
const LINES: readonly LedgerLine[] = [
  windowed("link|rate.1s.requests", 1_000, 10),
  line("link|usdMicros", "usdMicros", 1_000_000),
];
/** Another chain's lines: a lookup of them runs a forgetting pass without touching LINES's cache. */
const OTHER: readonly LedgerLine[] = [windowed("other|rate.1s.requests", 1_000, 10)];

function reserve(
  id: string,
  at: number,
  requests: number,
  options: { lines?: readonly LedgerLine[]; ttlMs?: number } = {},
): ReserveOp {
  return {
    id: `${ROOT}.${id}`,
    root: ROOT,
    lines: options.lines ?? LINES,
    amounts: { ...ZERO, requests, usdMicros: requests },
    ttlMs: options.ttlMs ?? 60_000,
    now: at,
  };
}

const spentAndHeld = (ledger: MemoryLedger, ref: LedgerLine | string, at: number) =>
  ledger.balancesSync(ROOT, [ref], at).balances.get(typeof ref === "string" ? ref : ref.account);

describe("the memory ledger's bucket accounts", () => {
  it("forgets a bucket account that holds nothing once its bucket ended retentionMs ago, within a second of ledger time, and never earlier", () => {
    const ledger = new MemoryLedger({ retentionMs: 5_000, now: () => T0 });
    ledger.reserveSync(reserve("a", T0, 3));
    ledger.commitSync(`${ROOT}.a`, { ...ZERO, requests: 3, usdMicros: 3 }, T0);
    const window = LINES[0] as LedgerLine;
    expect(spentAndHeld(ledger, window, T0)).toEqual({ spent: 3, held: 0 });
    expect(storedAccountsOf(ledger)).toBe(2);
    // The bucket of T0 ends at T0 + 1,000: kept while it ended less than 5,000 ago.
    ledger.reserveSync(reserve("o1", T0 + 5_999, 1, { lines: OTHER }));
    expect(spentAndHeld(ledger, window, T0)).toEqual({ spent: 3, held: 0 });
    expect(storedAccountsOf(ledger)).toBe(3);
    // The next pass runs a second of ledger time later, on a lookup of another bucket.
    ledger.reserveSync(reserve("o2", T0 + 6_999, 1, { lines: OTHER }));
    expect(spentAndHeld(ledger, window, T0)).toEqual({ spent: 0, held: 0 });
    // T0's window bucket went, and OTHER's second bucket came.
    expect(storedAccountsOf(ledger)).toBe(3);
    // The total, without a window, is kept whatever the time.
    expect(spentAndHeld(ledger, "link|usdMicros", T0 + 6_999)).toEqual({ spent: 3, held: 0 });
  });

  it("keeps a past bucket's account while it holds, and forgets it at a pass after its hold ends", () => {
    const ledger = new MemoryLedger({ retentionMs: 5_000, now: () => T0 });
    ledger.reserveSync(reserve("held", T0, 4, { ttlMs: 3_600_000 }));
    const window = LINES[0] as LedgerLine;
    ledger.reserveSync(reserve("o1", T0 + 20_000, 1, { lines: OTHER }));
    expect(spentAndHeld(ledger, window, T0)).toEqual({ spent: 0, held: 4 });
    expect(ledger.releaseSync(`${ROOT}.held`, T0 + 20_001)).toMatchObject({ status: "released" });
    // Not forgotten before the next pass, a second of ledger time after the last one.
    ledger.reserveSync(reserve("o2", T0 + 20_500, 1, { lines: OTHER, ttlMs: 100 }));
    expect(spentAndHeld(ledger, window, T0)).toEqual({ spent: 0, held: 0 });
    expect(storedAccountsOf(ledger)).toBe(3);
    ledger.reserveSync(reserve("o3", T0 + 21_000, 1, { lines: OTHER }));
    // T0's bucket (released) went; o1's and o2's bucket still holds o1's 1 (o2 expired).
    expect(storedAccountsOf(ledger)).toBe(3);
    expect(spentAndHeld(ledger, OTHER[0] as LedgerLine, T0 + 20_000)).toEqual({
      spent: 0,
      held: 1,
    });
  });

  it("hands a reserve whose clock stepped back into a forgotten bucket a fresh account that balances() reads, never the forgotten one its lines' cache still names", () => {
    const ledger = new MemoryLedger({ retentionMs: 5_000, now: () => T0 });
    const window = LINES[0] as LedgerLine;
    ledger.reserveSync(reserve("a", T0 + 100, 6));
    ledger.commitSync(`${ROOT}.a`, { ...ZERO, requests: 6, usdMicros: 6 }, T0 + 200);
    // LINES's cache still covers T0's bucket; OTHER's lookup runs the pass that forgets it.
    ledger.reserveSync(reserve("o", T0 + 10_000, 1, { lines: OTHER }));
    expect(spentAndHeld(ledger, window, T0)).toEqual({ spent: 0, held: 0 });
    // Back in T0's bucket: the forgotten account had 6 of 10 spent; the one the ledger has, none.
    const again = ledger.reserveSync(reserve("b", T0 + 300, 10));
    expect(again).toMatchObject({ ok: true, amounts: { requests: 10 } });
    expect(spentAndHeld(ledger, window, T0 + 300)).toEqual({ spent: 0, held: 10 });
    expect(ledger.reserveSync(reserve("c", T0 + 400, 1))).toMatchObject({ ok: false });
    ledger.commitSync(`${ROOT}.b`, { ...ZERO, requests: 7, usdMicros: 7 }, T0 + 500);
    expect(spentAndHeld(ledger, window, T0 + 500)).toEqual({ spent: 7, held: 0 });
  });

  it("charges a late commit whose bucket account was forgotten to that bucket's account, made anew, which balances() reads", () => {
    const ledger = new MemoryLedger({ retentionMs: 5_000, now: () => T0 });
    const window = LINES[0] as LedgerLine;
    ledger.reserveSync(reserve("late", T0 + 100, 4, { ttlMs: 500 }));
    expect(ledger.balancesSync(ROOT, [], T0 + 700).expired).toEqual([`${ROOT}.late`]);
    ledger.reserveSync(reserve("o", T0 + 10_000, 1, { lines: OTHER }));
    expect(spentAndHeld(ledger, window, T0)).toEqual({ spent: 0, held: 0 });
    const stored = storedAccountsOf(ledger);
    const outcome = ledger.commitSync(
      `${ROOT}.late`,
      { ...ZERO, requests: 3, usdMicros: 3 },
      T0 + 10_001,
    );
    expect(outcome).toMatchObject({ status: "committed", late: true, charged: { requests: 3 } });
    expect(storedAccountsOf(ledger)).toBe(stored + 1);
    expect(spentAndHeld(ledger, window, T0 + 100)).toEqual({ spent: 3, held: 0 });
    expect(spentAndHeld(ledger, "link|usdMicros", T0 + 10_001)).toEqual({ spent: 3, held: 0 });
    // The account made anew is a past bucket's that holds nothing: the next pass forgets it again.
    ledger.reserveSync(reserve("o2", T0 + 11_000, 1, { lines: OTHER }));
    expect(spentAndHeld(ledger, window, T0 + 100)).toEqual({ spent: 0, held: 0 });
  });

  it("charges the commit of a hold of nothing on a forgotten bucket to that bucket's account as the ledger has it", () => {
    const ledger = new MemoryLedger({ retentionMs: 5_000, now: () => T0 });
    const window = LINES[0] as LedgerLine;
    // Nothing held on the window's line: its bucket account holds nothing, and may go.
    ledger.reserveSync(reserve("zero", T0, 0, { ttlMs: 3_600_000 }));
    ledger.reserveSync(reserve("o", T0 + 10_000, 1, { lines: OTHER }));
    expect(spentAndHeld(ledger, window, T0)).toEqual({ spent: 0, held: 0 });
    expect(
      ledger.commitSync(`${ROOT}.zero`, { ...ZERO, requests: 2, usdMicros: 2 }, T0 + 10_001),
    ).toMatchObject({ status: "committed", late: false });
    expect(spentAndHeld(ledger, window, T0)).toEqual({ spent: 2, held: 0 });
  });

  it("never forgets an account without a window", () => {
    const lines = [line("link|usdMicros", "usdMicros", 1_000), line("link|tokens", "tokens", null)];
    const ledger = new MemoryLedger({ retentionMs: 1, now: () => T0 });
    for (let i = 0; i < 50; i++) {
      const at = T0 + i * 86_400_000;
      ledger.reserveSync({ ...reserve(String(i), at, 1), lines });
      ledger.commitSync(`${ROOT}.${i}`, { ...ZERO, usdMicros: 1, tokens: 2 }, at);
      // A bucket lookup each time, to run the passes.
      ledger.reserveSync(reserve(`o${i}`, at, 0, { lines: OTHER }));
    }
    expect(spentAndHeld(ledger, "link|usdMicros", T0)).toEqual({ spent: 50, held: 0 });
    expect(spentAndHeld(ledger, "link|tokens", T0)).toEqual({ spent: 100, held: 0 });
  });

  it("stays bounded under a long run: 200,000 reserve + commit pairs over 200,000 seconds of 1-second buckets keep about a retention's worth of accounts", () => {
    const ledger = new MemoryLedger({ retentionMs: 60_000, now: () => T0 });
    const window = LINES[0] as LedgerLine;
    let most = 0;
    for (let i = 0; i < 200_000; i++) {
      const at = T0 + i * 1_000;
      ledger.reserveSync(reserve(String(i), at, 1));
      ledger.commitSync(`${ROOT}.${i}`, { ...ZERO, requests: 1, usdMicros: 1 }, at);
      if (i % 1_000 === 999) most = Math.max(most, storedAccountsOf(ledger));
    }
    // The total, and the buckets that ended within the last 60 seconds plus the current one.
    expect(most).toBeLessThanOrEqual(1 + 62);
    expect(storedAccountsOf(ledger)).toBeGreaterThanOrEqual(1 + 60);
    expect(spentAndHeld(ledger, window, T0)).toEqual({ spent: 0, held: 0 });
    expect(spentAndHeld(ledger, "link|usdMicros", T0)).toEqual({ spent: 200_000, held: 0 });
  });
});

type Step =
  | { readonly kind: "reserve"; readonly requests: number; readonly ttlMs: number }
  | { readonly kind: "commit"; readonly pick: number; readonly requests: number }
  | { readonly kind: "release"; readonly pick: number }
  | { readonly kind: "advance"; readonly ms: number };

const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    kind: fc.constant("reserve" as const),
    requests: fc.integer({ min: 0, max: 4 }),
    ttlMs: fc.integer({ min: 1, max: 3_000 }),
  }),
  fc.record({
    kind: fc.constant("commit" as const),
    pick: fc.nat(),
    requests: fc.integer({ min: -1, max: 6 }),
  }),
  fc.record({ kind: fc.constant("release" as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 2_500 }) }),
);

/** Windows of 1 and 3 seconds and a total: a reservation's buckets are current until its 1s one ends. */
const PROPERTY_LINES: readonly LedgerLine[] = [
  windowed("link|rate.1s.requests", 1_000, 6),
  { ...line("link|rate.3s.usdMicros", "usdMicros", 12), windowMs: 3_000 },
  line("link|usdMicros", "usdMicros", 40),
];

describe("the memory ledger's bucket retention, as a law", () => {
  it("law: forgetting past buckets changes no answer to a reserve, commit, release or read of the current buckets", () => {
    let forgotSome = 0;
    fc.assert(
      fc.property(
        fc.array(stepArbitrary, { minLength: 1, maxLength: 60, size: "max" }),
        (steps) => {
          // Retention: as short as a 1s bucket allows (a reservation's commit stays within it), and
          // longer than any run.
          const short = new MemoryLedger({ retentionMs: 1_000, now: () => T0 });
          const long = new MemoryLedger({ retentionMs: 2 ** 40, now: () => T0 });
          const made: { id: string; until: number }[] = [];
          let at = T0;
          for (const step of steps) {
            if (step.kind === "advance") {
              at += step.ms;
              continue;
            }
            if (step.kind === "reserve") {
              const id = `${ROOT}.${made.length}`;
              const op: ReserveOp = {
                id,
                root: ROOT,
                lines: PROPERTY_LINES,
                amounts: { ...ZERO, requests: step.requests, usdMicros: 3 * step.requests },
                ttlMs: step.ttlMs,
                now: at,
              };
              made.push({ id, until: (Math.floor(at / 1_000) + 1) * 1_000 });
              expect(short.reserveSync(op)).toEqual(long.reserveSync(op));
            } else {
              const target = made[step.pick % Math.max(made.length, 1)];
              // Only a reservation whose buckets are still current: of a past bucket, a late commit
              // charges an account the short ledger may have forgotten (§3.5), and nothing reads it.
              if (target === undefined || at >= target.until) continue;
              if (step.kind === "commit") {
                const actual =
                  step.requests < 0
                    ? { ...ZERO, requests: -1, usdMicros: -1 }
                    : { ...ZERO, requests: step.requests, usdMicros: 3 * step.requests };
                expect(short.commitSync(target.id, actual, at)).toEqual(
                  long.commitSync(target.id, actual, at),
                );
              } else {
                expect(short.releaseSync(target.id, at)).toEqual(long.releaseSync(target.id, at));
              }
            }
            expect(short.balancesSync(ROOT, PROPERTY_LINES, at)).toEqual(
              long.balancesSync(ROOT, PROPERTY_LINES, at),
            );
          }
          if (storedAccountsOf(short) < storedAccountsOf(long)) forgotSome++;
        },
      ),
      { numRuns: 300 },
    );
    // The law is not empty: the short retention did forget accounts in many runs.
    expect(forgotSome).toBeGreaterThan(100);
  });
});
