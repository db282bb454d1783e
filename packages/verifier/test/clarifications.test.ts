/**
 * Rules that a second, independent implementation found unclear, as the spec now states them:
 * lengths in UTF-8 bytes (spec/format.md §7), ASCII-only upper-casing of the method
 * (spec/presentation.md §4 step 7), the empty audience (spec/format.md §8.4) and a root kid bound
 * to another key (spec/format.md §8.2).
 */
import { describe, expect, it } from "vitest";
import {
  generateKeyPair,
  mint,
  publicKeyOf,
  trustedRoots,
  type KeyPair,
  type Token,
} from "@allowance/core";
import { encodePayload, fromBase64url, signingInput } from "@allowance/core/format";
import { nodeBackend } from "@allowance/core/node";
import {
  AllowanceError,
  MemoryReplayCache,
  createVerifier,
  present,
  verify,
  verifyPresentation,
} from "@allowance/verifier";

const NOW = 1_800_000_000;
const AUD = "https://tools.example/search";

function codeOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (error instanceof AllowanceError) return error.code;
    throw error;
  }
  return "accepted";
}

async function codeOfAsync(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof AllowanceError) return error.code;
    throw error;
  }
  return "accepted";
}

async function setup() {
  const root = await generateKeyPair();
  const holder = await generateKeyPair();
  const token = mint({ rootKey: root, holder: publicKeyOf(holder), grant: { exp: NOW + 3600 } });
  return { root, holder, token, roots: trustedRoots([root]) };
}

describe("maxTokenChars counts UTF-8 bytes", () => {
  const roots = trustedRoots([]);

  it("refuses 8,000 euro signs after the prefix with ERR_LIMIT: 8,005 characters but 24,005 bytes", () => {
    expect(codeOf(() => verify("alw1_" + "€".repeat(8000), { roots, now: () => NOW * 1000 }))).toBe(
      "ERR_LIMIT",
    );
  });

  it("reaches the prefix and base64url checks when the bytes are within the limit", () => {
    const text = "alw1_" + "€".repeat(8000);
    const limits = { maxTokenChars: 24_005 };
    expect(codeOf(() => verify(text, { roots, now: () => NOW * 1000, limits }))).toBe(
      "ERR_MALFORMED",
    );
    expect(
      codeOf(() =>
        verify(text, { roots, now: () => NOW * 1000, limits: { maxTokenChars: 24_004 } }),
      ),
    ).toBe("ERR_LIMIT");
  });

  it("counts a lone surrogate as 3 bytes and an astral character as 4", () => {
    expect(
      codeOf(() => verify("alw1_" + "\ud800".repeat(8000), { roots, now: () => NOW * 1000 })),
    ).toBe("ERR_LIMIT");
    // 5 + 4 × 5,999 = 24,001 bytes (11,003 UTF-16 units).
    expect(
      codeOf(() => verify("alw1_" + "😀".repeat(5999), { roots, now: () => NOW * 1000 })),
    ).toBe("ERR_LIMIT");
    expect(
      codeOf(() => verify("alw1_" + "😀".repeat(5998), { roots, now: () => NOW * 1000 })),
    ).toBe("ERR_MALFORMED");
  });

  it("bounds a presentation string at maxTokenChars + 512 UTF-8 bytes", async () => {
    const text = "alwp1_" + "€".repeat(8170); // 8,176 characters, 24,516 bytes
    const run = (limits?: { maxTokenChars: number }) =>
      codeOfAsync(
        verifyPresentation(text, {
          roots,
          audience: AUD,
          now: () => NOW * 1000,
          replay: new MemoryReplayCache(),
          ...(limits === undefined ? {} : { limits }),
        }),
      );
    expect(await run()).toBe("ERR_LIMIT");
    expect(await run({ maxTokenChars: 24_004 })).toBe("ERR_MALFORMED");
  });
});

describe("the request method is upper-cased in ASCII only", () => {
  it("accepts a lower-case request method for a presentation bound to POST", async () => {
    const { roots, holder, token } = await setup();
    const p = present(token, holder, { aud: AUD, method: "POST", now: () => NOW * 1000 });
    const options = {
      roots,
      audience: AUD,
      now: () => NOW * 1000,
      replay: new MemoryReplayCache(),
    };
    expect(await codeOfAsync(verifyPresentation(p, { ...options, method: "post" }))).toBe(
      "accepted",
    );
  });

  it('refuses "poſt" (long s, which toUpperCase maps to S) for a presentation bound to POST', async () => {
    const { roots, holder, token } = await setup();
    const p = present(token, holder, { aud: AUD, method: "POST", now: () => NOW * 1000 });
    const options = {
      roots,
      audience: AUD,
      now: () => NOW * 1000,
      replay: new MemoryReplayCache(),
    };
    expect(await codeOfAsync(verifyPresentation(p, { ...options, method: "poſt" }))).toBe(
      "ERR_PRESENTATION",
    );
    expect(await codeOfAsync(verifyPresentation(p, { ...options, method: "DELETİ" }))).toBe(
      "ERR_PRESENTATION",
    );
  });

  it('refuses to bind a method that is not ASCII letters, such as "poſt", with a TypeError', async () => {
    const { holder, token } = await setup();
    expect(() =>
      present(token, holder, { aud: AUD, method: "poſt", now: () => NOW * 1000 }),
    ).toThrow(TypeError);
  });
});

describe("the empty string is not an audience", () => {
  it("is a RangeError for verify and for a caching verifier, whatever the token", async () => {
    const { roots, token } = await setup();
    expect(() => verify(token, { roots, now: () => NOW * 1000, audience: "" })).toThrow(RangeError);
    expect(() => verify("not a token", { roots, now: () => NOW * 1000, audience: "" })).toThrow(
      RangeError,
    );
    expect(() =>
      createVerifier({ roots }).verify(token, { now: () => NOW * 1000, audience: "" }),
    ).toThrow(RangeError);
  });

  it("is a RangeError for verifyPresentation, before the replay cache is touched", async () => {
    const { roots, holder, token } = await setup();
    const p = present(token, holder, { aud: AUD, now: () => NOW * 1000 });
    let claims = 0;
    const replay = { claim: () => (claims++, true) };
    await expect(
      verifyPresentation(p, { roots, audience: "", now: () => NOW * 1000, replay }),
    ).rejects.toThrow(RangeError);
    expect(claims).toBe(0);
  });
});

describe("a root kid is only ever bound to the key it is the thumbprint of", () => {
  /** A one-link token signed by `signer` but labelled with `kid`: what a misbound roots map lets in. */
  function relabelled(signer: KeyPair, kid: string, holder: KeyPair): Token {
    const rootKid = fromBase64url(kid) as Uint8Array;
    const payload = encodePayload({
      sub: holder.publicKey,
      nonce: new Uint8Array(8).fill(7),
      exp: NOW + 3600,
    });
    const signature = nodeBackend.sign(signer.privateKey, signingInput(rootKid, payload));
    return { rootKid, links: [{ payload, signature }] };
  }

  it("refuses a token signed by the bound key under another key's kid with ERR_UNKNOWN_ROOT", async () => {
    const { root, holder } = await setup();
    const other = await generateKeyPair();
    const token = relabelled(other, root.kid, holder);
    const misbound = new Map([[root.kid, { kid: root.kid, bytes: other.publicKey }]]);
    const error = (() => {
      try {
        verify(token, { roots: misbound, now: () => NOW * 1000 });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(AllowanceError);
    expect(error).toMatchObject({ code: "ERR_UNKNOWN_ROOT", linkIndex: 0 });
    const cached = createVerifier({ roots: misbound });
    expect(codeOf(() => cached.verify(token, { now: () => NOW * 1000 }))).toBe("ERR_UNKNOWN_ROOT");
    expect(codeOf(() => cached.verify(token, { now: () => NOW * 1000 }))).toBe("ERR_UNKNOWN_ROOT");
  });

  it("still accepts the same key bound to its own thumbprint", async () => {
    const { holder } = await setup();
    const other = await generateKeyPair();
    const token = relabelled(other, other.kid, holder);
    expect(
      codeOf(() => verify(token, { roots: trustedRoots([other]), now: () => NOW * 1000 })),
    ).toBe("accepted");
  });

  it("refuses a key found bound before once its bytes are changed in place (the check is not remembered blindly)", async () => {
    const { holder } = await setup();
    const [bound, swapped] = await Promise.all([generateKeyPair(), generateKeyPair()]);
    const roots = trustedRoots([bound]);
    const at = { roots, now: () => NOW * 1000 };
    expect(codeOf(() => verify(relabelled(bound, bound.kid, holder), at))).toBe("accepted");
    // The roots map still names bound.kid, but its key array now holds another key.
    (roots.get(bound.kid) as { bytes: Uint8Array }).bytes.set(swapped.publicKey);
    expect(codeOf(() => verify(relabelled(swapped, bound.kid, holder), at))).toBe(
      "ERR_UNKNOWN_ROOT",
    );
  });

  it("refuses a key array found bound under its own kid when a map binds it to another kid", async () => {
    const { root, holder } = await setup();
    const other = await generateKeyPair();
    const at = { now: () => NOW * 1000 };
    expect(
      codeOf(() =>
        verify(relabelled(other, other.kid, holder), { ...at, roots: trustedRoots([other]) }),
      ),
    ).toBe("accepted");
    const misbound = new Map([[root.kid, { kid: root.kid, bytes: other.publicKey }]]);
    expect(
      codeOf(() => verify(relabelled(other, root.kid, holder), { ...at, roots: misbound })),
    ).toBe("ERR_UNKNOWN_ROOT");
  });
});
