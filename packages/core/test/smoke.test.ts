import { describe, expect, it } from "vitest";
import { attenuate, generateKeyPair, mint, trustedRoots } from "@allowance/core";
import { verify } from "@allowance/verifier";

describe("a two-link chain", () => {
  it("verifies to the narrower grant", async () => {
    const root = await generateKeyPair();
    const a = await generateKeyPair();
    const b = await generateKeyPair();
    const exp = Math.floor(Date.now() / 1000) + 3600;
    const token = attenuate(
      mint({ rootKey: root, holder: a.publicKey, grant: { exp, usdMicros: 10 } }),
      {
        holderKey: a,
        holder: b.publicKey,
        grant: { usdMicros: 5 },
      },
    );
    expect(verify(token, { roots: trustedRoots([root]) }).grant.usdMicros).toBe(5);
  });
});
