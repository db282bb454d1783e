import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { SqliteLedger, type SqliteLedgerOptions } from "@allowance/enforcer";
import { T0, ZERO, concurrentCallsLaw, ledgerSuite, storageLaws, storageOp, syncApiLaw, thresholdLaw, traceEqualityLaw } from "../../../test/support/ledger-suite.js";
import { describeMultiProcess } from "./multi-process.js";

const dir = mkdtempSync(join(tmpdir(), "allowance-sqlite-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const fresh = (options?: SqliteLedgerOptions) => SqliteLedger.open(join(dir, `ledger-${files++}.db`), options);

ledgerSuite("sqlite", async () => fresh());

describe("the sqlite ledger's laws", () => {
  // NORMAL skips the fsync per transaction; the algorithm under test is the same.
  traceEqualityLaw("sqlite", async () => fresh({ synchronous: "NORMAL" }), 100);
  concurrentCallsLaw("sqlite", async () => fresh({ synchronous: "NORMAL" }), 40);
  syncApiLaw("sqlite", async () => fresh({ synchronous: "NORMAL" }), 30);
  thresholdLaw("sqlite", async () => fresh({ synchronous: "NORMAL" }), 20);
});

describe("the sqlite ledger's storage", () => {
  const op = storageOp;
  storageLaws(async () => fresh());

  it("keeps its state in the file: another connection sees the holds and commits", async () => {
    const path = join(dir, `reopened-${files++}.db`);
    const first = SqliteLedger.open(path);
    await first.reserve(op("a", 40, 100));
    await first.reserve(op("b", 30, 100));
    await first.commit("root.b", { ...ZERO, usdMicros: 25 }, T0);
    await first.close();
    const second = SqliteLedger.open(path);
    try {
      expect((await second.balances("root", ["link|usdMicros"], T0)).balances).toEqual(new Map([["link|usdMicros", { spent: 25, held: 40 }]]));
      expect(await second.commit("root.b", { ...ZERO, usdMicros: 25 }, T0)).toMatchObject({ status: "committed", already: true });
    } finally {
      await second.close();
    }
  });
});

describeMultiProcess("sqlite", {
  target: (name) => ({ kind: "sqlite", path: join(dir, `${name}-${files++}.db`) }),
  open: async (target) => SqliteLedger.open((target as { path: string }).path),
  fairLock: false,
});
