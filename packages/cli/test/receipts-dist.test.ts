/**
 * `allowance ledger receipts verify` through the BUILT binary, as a user runs it (`tsc -b` first):
 * the receipts an enforcer signed, whole and with one left out.
 */
import { writeFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { exportPublicJwk, generateKeyPair, mint, publicKeyOf, trustedRoots } from "@allowance/core";
import { Enforcer, MemoryLedger, receiptToJSON } from "@allowance/enforcer";
import { verify } from "@allowance/verifier";
import { allowance, expectFailure, expectSuccess, json, tempDir } from "./support.js";

const tmp = tempDir();
const at = tmp.path;
afterAll(() => tmp.remove());

describe("allowance ledger receipts verify (built)", () => {
  it("passes the receipts an enforcer signed, and refuses them with one left out", async () => {
    const key = await generateKeyPair();
    const rootKey = await generateKeyPair();
    const token = mint({
      rootKey,
      holder: publicKeyOf(await generateKeyPair()),
      grant: { exp: Math.floor(Date.now() / 1000) + 3600, usdMicros: 1_000_000 },
    });
    const chain = verify(token, { roots: trustedRoots([rootKey]) });
    const enforcer = new Enforcer({ ledger: new MemoryLedger(), receipts: { key } });
    const lines: string[] = [];
    for (const usdMicros of [1, 2, 3]) {
      const decision = await enforcer.reserve({ chain, usdMicros });
      if (decision.decision === "DENY") throw new Error(decision.detail);
      const result = await enforcer.commit(decision.reservationId, { usdMicros });
      if (result.status !== "committed" || result.receipt === undefined) throw new Error("none");
      lines.push(JSON.stringify(receiptToJSON(result.receipt)));
    }
    writeFileSync(at("enforcer.pub.jwk"), JSON.stringify(exportPublicJwk(publicKeyOf(key))));
    writeFileSync(at("all.jsonl"), `${lines.join("\n")}\n`);
    writeFileSync(at("gap.jsonl"), `${[lines[0], lines[2]].join("\n")}\n`);
    const args = (file: string) => [
      "ledger",
      "receipts",
      "verify",
      "--receipts",
      at(file),
      "--keys",
      at("enforcer.pub.jwk"),
      "--json",
    ];
    const whole = allowance(args("all.jsonl"));
    expectSuccess(whole);
    expect(json(whole)).toMatchObject({ ok: true, verified: 3, roots: [{ first: 1, last: 3 }] });
    const gap = allowance(args("gap.jsonl"));
    expectFailure(gap, 1, /1 problem in the receipts: receipt 2 of root \S+ is missing/);
    expect(json(gap)).toMatchObject({ ok: false, code: "RECEIPTS_INVALID", verified: 2 });
  });
});
