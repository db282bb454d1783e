import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MemoryLedger } from "@allowance/enforcer";
import { family, ledgerSuite, runSchedule, scheduleGrants, stepArbitrary } from "../../../test/support/ledger-suite.js";

ledgerSuite("memory", async () => new MemoryLedger());

describe("the memory ledger's laws", () => {
  it("law: in any interleaving of reserve, commit, release and expiry, no capped account passes its cap beyond recorded overruns", async () => {
    const chains = await family(scheduleGrants.parent, scheduleGrants.children);
    await fc.assert(
      fc.asyncProperty(fc.array(stepArbitrary, { minLength: 1, maxLength: 40, size: "max" }), async (steps) => {
        await runSchedule(async () => new MemoryLedger(), chains, steps);
      }),
      { numRuns: 200 },
    );
  });
});

describe("the memory ledger's retention of closed reservations", () => {
  const lines = [{ account: "root|usdMicros", kind: "usdMicros" as const, cap: 1_000_000 }];
  const amounts = { tokens: 0, usdMicros: 1, risk: 0, requests: 1 };
  const reserveAndCommit = async (ledger: MemoryLedger, id: string, now: number) => {
    await ledger.reserve({ id, root: "root", lines, amounts, expiresAt: now + 60_000, now });
    await ledger.commit(id, { ...amounts, usdMicros: -1 }, now);
  };
  const statusOf = async (ledger: MemoryLedger, id: string, now: number) => {
    const outcome = await ledger.commit(id, { ...amounts, usdMicros: -1 }, now);
    return outcome.status === "committed" ? (outcome.already ? "already" : "committed") : outcome.status;
  };

  it("remembers at least the latest maxClosed, and forgets beyond twice that", async () => {
    const ledger = new MemoryLedger({ maxClosed: 3 });
    for (let i = 0; i < 20; i++) {
      await reserveAndCommit(ledger, `root.${i}`, 0);
      for (let j = Math.max(0, i - 2); j <= i; j++) expect(await statusOf(ledger, `root.${j}`, 0)).toBe("already");
      if (i >= 6) expect(await statusOf(ledger, `root.${i - 6}`, 0)).toBe("unknown");
    }
  });

  it("remembers a closed reservation for at least retentionMs, and forgets it within twice that", async () => {
    const ledger = new MemoryLedger({ retentionMs: 1000 });
    await reserveAndCommit(ledger, "root.a", 0);
    for (let now = 100; now < 1000; now += 100) {
      await reserveAndCommit(ledger, `root.at${now}`, now);
      expect(await statusOf(ledger, "root.a", now)).toBe("already");
    }
    for (let now = 1000; now <= 2000; now += 100) await reserveAndCommit(ledger, `root.at${now}`, now);
    expect(await statusOf(ledger, "root.a", 2000)).toBe("unknown");
  });
});
