/**
 * The SQLite ledger's retention (spec/enforcement.md §3.5, rule.ts forgetBefore): a closed
 * reservation is kept at least `retentionMs` of the ledger's clock after it closed, then deleted by
 * a later transaction, and a rate window's bucket account that holds nothing goes the same way
 * once its bucket has ended that long ago; so a file under a long run stays bounded by what closes
 * within the retention. Before, every closed reservation stayed: a burst left 136,862 rows and a
 * 76 MB file.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { SqliteLedger, type SqliteLedgerOptions } from "@allowance/enforcer/sqlite";
import { line, ZERO } from "../../../test/support/ledger-suite.js";

const dir = mkdtempSync(join(tmpdir(), "allowance-retention-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

/** A ledger on a clock the test moves, and the path of its file. */
function open(options: SqliteLedgerOptions = {}) {
  const path = join(dir, `retention-${files++}.db`);
  const clock = { ms: 1_000_000 };
  const ledger = SqliteLedger.open(path, {
    synchronous: "NORMAL",
    now: () => clock.ms,
    ...options,
  });
  const count = (sql: string) => {
    const db = new Database(path, { readonly: true });
    try {
      return (db.prepare(sql).get() as { n: number }).n;
    } finally {
      db.close();
    }
  };
  return { ledger, clock, path, count };
}

const lines = [line("link|usdMicros", "usdMicros", 1_000_000_000)];
const op = (id: string, ttlMs = 60_000) => ({
  id: `root.${id}`,
  root: "root",
  lines,
  amounts: { ...ZERO, usdMicros: 1, requests: 1 },
  ttlMs,
});
const AS_RESERVED = { ...ZERO, usdMicros: -1, requests: -1 };

describe("the sqlite ledger's retention", () => {
  it("keeps a committed reservation for retentionMs of the ledger's clock after it closed, then forgets it", () => {
    const { ledger, clock } = open({ retentionMs: 10_000 });
    try {
      ledger.reserveSync(op("a"));
      clock.ms += 500;
      ledger.commitSync("root.a", AS_RESERVED);
      clock.ms += 9_999;
      expect(ledger.commitSync("root.a", AS_RESERVED)).toMatchObject({ already: true });
      // Retention ended; the next transaction that prunes (they are a second of ledger time
      // apart) still sees it, and forgets it after.
      clock.ms += 1 + 1_000;
      expect(ledger.commitSync("root.a", AS_RESERVED)).toMatchObject({ already: true });
      expect(ledger.commitSync("root.a", AS_RESERVED)).toEqual({ status: "unknown", expired: [] });
      expect(ledger.releaseSync("root.a")).toMatchObject({ status: "unknown" });
    } finally {
      void ledger.close();
    }
  });

  it("charges a late commit within the retention of an expired hold, which closes it again; not after", () => {
    const { ledger, clock } = open({ retentionMs: 10_000 });
    try {
      ledger.reserveSync(op("late", 1_000));
      ledger.reserveSync(op("lost", 1_000));
      clock.ms += 1_000; // both expire now, at the next operation's sweep
      expect(ledger.reserveSync(op("sweep")).expired).toEqual(["root.late", "root.lost"]);
      clock.ms += 9_000;
      expect(ledger.commitSync("root.late", AS_RESERVED)).toMatchObject({ late: true });
      clock.ms += 2_000; // 11 s after both expired; 2 s after the late commit
      ledger.releaseSync("root.sweep");
      expect(ledger.commitSync("root.lost", AS_RESERVED)).toEqual({
        status: "unknown",
        expired: [],
      });
      expect(ledger.commitSync("root.late", AS_RESERVED)).toMatchObject({ already: true });
      const { balances } = ledger.balancesSync("root", ["link|usdMicros"]);
      // The late commit's dollar, and nothing for the forgotten one.
      expect(balances.get("link|usdMicros")).toEqual({ spent: 1, held: 0 });
    } finally {
      void ledger.close();
    }
  });

  it("forgets a rate window's bucket account once its bucket ended a retention ago and it holds nothing; keeps one that holds", () => {
    const { ledger, clock, count } = open({ retentionMs: 5_000 });
    const windowed = [{ ...line("link|w0:1:requests", "requests", 5), windowMs: 1_000 }];
    try {
      ledger.reserveSync({ ...op("done"), lines: windowed });
      ledger.commitSync("root.done", AS_RESERVED);
      clock.ms += 2_000;
      ledger.reserveSync({ ...op("held", 7 * 86_400_000), lines: windowed });
      expect(count("SELECT count(*) AS n FROM accounts WHERE ends_at IS NOT NULL")).toBe(2);
      clock.ms += 10_000;
      ledger.balancesSync("root", []);
      // The first bucket's account went; the second still holds its reservation.
      expect(count("SELECT count(*) AS n FROM accounts WHERE ends_at IS NOT NULL")).toBe(1);
      expect(ledger.commitSync("root.held", AS_RESERVED)).toMatchObject({ late: false });
    } finally {
      void ledger.close();
    }
  });

  it("finds what to forget through its partial indexes, not by reading every row", () => {
    const { ledger, path } = open();
    void ledger.close();
    const db = new Database(path, { readonly: true });
    try {
      const plan = (sql: string) =>
        (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as { detail: string }[])
          .map((r) => r.detail)
          .join("; ");
      expect(
        plan(
          "SELECT rowid FROM reservations WHERE closed_at IS NOT NULL AND closed_at <= 1 LIMIT 10",
        ),
      ).toMatch(/USING (COVERING )?INDEX reservations_closed/);
      expect(
        plan(
          "SELECT rowid FROM accounts WHERE ends_at IS NOT NULL AND ends_at <= 1 AND held = 0 LIMIT 10",
        ),
      ).toMatch(/USING INDEX accounts_ended/);
    } finally {
      db.close();
    }
  });

  it("stays bounded under a long run: rows level off at what closes within the retention", () => {
    const { ledger, clock, count } = open({ retentionMs: 2_000 });
    try {
      const rows: number[] = [];
      for (let i = 0; i < 20_000; i++) {
        ledger.reserveSync(op(String(i)));
        ledger.commitSync(`root.${i}`, AS_RESERVED);
        clock.ms += 1; // a reservation a millisecond: 2,000 close within the retention
        if (i % 5_000 === 4_999) rows.push(count("SELECT count(*) AS n FROM reservations"));
      }
      for (const n of rows) expect(n).toBeLessThanOrEqual(2_000 + 1_000);
      expect(rows.at(-1)).toBeGreaterThanOrEqual(2_000);
    } finally {
      void ledger.close();
    }
  });

  it("refuses a retentionMs that is not a positive integer of milliseconds", () => {
    for (const retentionMs of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53])
      expect(() => open({ retentionMs }), String(retentionMs)).toThrow(RangeError);
    for (const retentionMs of ["1000", null, {}])
      expect(() => open({ retentionMs: retentionMs as never }), String(retentionMs)).toThrow(
        TypeError,
      );
  });
});
