import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { MemoryLedger, SqliteLedger, type SqliteLedgerOptions } from "@allowance/enforcer";
import { T0, ledgerSuite, traceEqualityLaw } from "../../../test/support/ledger-suite.js";
import { describeMultiProcess } from "./multi-process.js";

const dir = mkdtempSync(join(tmpdir(), "allowance-sqlite-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const fresh = (options?: SqliteLedgerOptions) => SqliteLedger.open(join(dir, `ledger-${files++}.db`), options);

ledgerSuite("sqlite", async () => fresh());

describe("the sqlite ledger's laws", () => {
  // NORMAL skips the fsync per transaction; the algorithm under test is the same.
  traceEqualityLaw("sqlite", async () => fresh({ synchronous: "NORMAL" }), 100);
});

describe("the sqlite ledger's storage", () => {
  const zero = { tokens: 0, usdMicros: 0, risk: 0, requests: 0 };
  const op = (id: string, usdMicros: number, cap: number) => ({
    id: `root.${id}`,
    root: "root",
    lines: [{ account: "link|usdMicros", kind: "usdMicros" as const, cap }],
    amounts: { ...zero, usdMicros },
    expiresAt: T0 + 60_000,
    now: T0,
  });

  it("keeps amounts exact up to 2^53 - 1", async () => {
    const max = Number.MAX_SAFE_INTEGER;
    const ledger = fresh();
    try {
      expect(await ledger.reserve(op("a", max - 1, max))).toMatchObject({ ok: true });
      expect(await ledger.commit("root.a", { ...zero, usdMicros: max - 1 }, T0)).toMatchObject({ status: "committed", lines: [{ before: 0, after: max - 1 }] });
      expect(await ledger.reserve(op("b", 2, max))).toMatchObject({ ok: false, available: 1 });
      expect(await ledger.reserve(op("c", 1, max))).toMatchObject({ ok: true });
      expect((await ledger.balances("root", ["link|usdMicros"], T0)).balances).toEqual(new Map([["link|usdMicros", { spent: max - 1, held: 1 }]]));
    } finally {
      await ledger.close();
    }
  });

  it("keeps its state in the file: another connection sees the holds and commits", async () => {
    const path = join(dir, `reopened-${files++}.db`);
    const first = SqliteLedger.open(path);
    await first.reserve(op("a", 40, 100));
    await first.reserve(op("b", 30, 100));
    await first.commit("root.b", { ...zero, usdMicros: 25 }, T0);
    await first.close();
    const second = SqliteLedger.open(path);
    try {
      expect((await second.balances("root", ["link|usdMicros"], T0)).balances).toEqual(new Map([["link|usdMicros", { spent: 25, held: 40 }]]));
      expect(await second.commit("root.b", { ...zero, usdMicros: 25 }, T0)).toMatchObject({ status: "committed", already: true });
    } finally {
      await second.close();
    }
  });

  it("refuses a reservation id already in use, as the memory ledger does, keeping the expiry sweep", async () => {
    for (const ledger of [new MemoryLedger(), fresh()]) {
      await ledger.reserve({ ...op("a", 40, 100), expiresAt: T0 + 1 });
      await expect(ledger.reserve({ ...op("a", 10, 100), now: T0 + 1 })).rejects.toThrow("reservation id root.a is already in use");
      expect(await ledger.release("root.a", T0 + 1)).toMatchObject({ status: "expired", already: true });
      await ledger.close();
    }
  });

  it("rejects amounts that are not exact integers", async () => {
    const ledger = fresh();
    try {
      await expect(ledger.reserve(op("a", 0.5, 100))).rejects.toThrow(RangeError);
      await expect(ledger.reserve(op("b", 2 ** 53, 2 ** 60))).rejects.toThrow(RangeError);
    } finally {
      await ledger.close();
    }
  });
});

describeMultiProcess("sqlite", {
  target: (name) => ({ kind: "sqlite", path: join(dir, `${name}-${files++}.db`) }),
  open: async (target) => SqliteLedger.open((target as { path: string }).path),
  fairLock: false,
});
