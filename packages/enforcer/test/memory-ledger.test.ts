import fc from "fast-check";
import { describe, it } from "vitest";
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
