import { describe, expect, it } from "vitest";
import {
  attenuate,
  generateKeyPair,
  mint,
  publicKeyOf,
  trustedRoots,
  type KeyPair,
} from "@allowance/core";
import {
  AllowanceError,
  MemoryReplayCache,
  present,
  verifyPresentation,
} from "@allowance/verifier";

const NOW = 1_800_000_000;
const AUD = "https://tools.example/search";

async function setup() {
  const root = await generateKeyPair();
  const agent = await generateKeyPair();
  const worker = await generateKeyPair();
  const token = attenuate(
    mint({
      rootKey: root,
      holder: publicKeyOf(agent),
      grant: { exp: NOW + 3600, aud: [AUD, "https://tools.example/email"] },
    }),
    {
      holderKey: agent,
      holder: publicKeyOf(worker),
      grant: { usdMicros: 1 },
    },
  );
  return { roots: trustedRoots([root]), token, agent, worker };
}

function options(
  roots: ReturnType<typeof trustedRoots>,
  extra: Partial<Parameters<typeof verifyPresentation>[1]> = {},
) {
  return {
    roots,
    audience: AUD,
    method: "POST",
    path: "/search",
    now: () => NOW * 1000,
    replay: new MemoryReplayCache(),
    ...extra,
  };
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof AllowanceError) return error.code;
    throw error;
  }
  return "accepted";
}

describe("presentations", () => {
  it("are accepted once, from the leaf holder, for the named audience, method and path", async () => {
    const { roots, token, worker } = await setup();
    const p = present(token, worker, {
      aud: AUD,
      method: "post",
      path: "/search",
      now: () => NOW * 1000,
    });
    const result = await verifyPresentation(p, options(roots));
    expect(result.claims).toMatchObject({ aud: AUD, method: "POST", path: "/search", iat: NOW });
    expect(result.chain.linkIds).toHaveLength(2);
  });

  it("are refused the second time (replay)", async () => {
    const { roots, token, worker } = await setup();
    const replay = new MemoryReplayCache();
    const p = present(token, worker, { aud: AUD, now: () => NOW * 1000 });
    await verifyPresentation(p, options(roots, { replay }));
    expect(await codeOf(verifyPresentation(p, options(roots, { replay })))).toBe("ERR_REPLAY");
  });

  it("signed by anyone but the leaf holder are refused, even by an ancestor holder", async () => {
    const { roots, token, agent } = await setup();
    const thief: KeyPair = await generateKeyPair();
    for (const signer of [agent, thief]) {
      expect(
        await codeOf(
          verifyPresentation(
            present(token, signer, { aud: AUD, now: () => NOW * 1000 }),
            options(roots),
          ),
        ),
      ).toBe("ERR_PRESENTATION");
    }
  });

  it("for another audience are refused, even when the token allows both", async () => {
    const { roots, token, worker } = await setup();
    const p = present(token, worker, { aud: "https://tools.example/email", now: () => NOW * 1000 });
    expect(await codeOf(verifyPresentation(p, options(roots)))).toBe("ERR_AUDIENCE");
  });

  it("for an endpoint outside the token's aud are refused", async () => {
    const { roots, token, worker } = await setup();
    const other = "https://evil.example";
    const p = present(token, worker, { aud: other, now: () => NOW * 1000 });
    expect(await codeOf(verifyPresentation(p, options(roots, { audience: other })))).toBe(
      "ERR_AUDIENCE",
    );
  });

  it("bound to another method or path are refused", async () => {
    const { roots, token, worker } = await setup();
    expect(
      await codeOf(
        verifyPresentation(
          present(token, worker, { aud: AUD, method: "GET", now: () => NOW * 1000 }),
          options(roots),
        ),
      ),
    ).toBe("ERR_PRESENTATION");
    expect(
      await codeOf(
        verifyPresentation(
          present(token, worker, { aud: AUD, path: "/admin", now: () => NOW * 1000 }),
          options(roots),
        ),
      ),
    ).toBe("ERR_PRESENTATION");
  });

  it("outside the time window are refused, and skew is honoured", async () => {
    const { roots, token, worker } = await setup();
    const old = present(token, worker, { aud: AUD, now: () => (NOW - 121) * 1000 });
    expect(
      await codeOf(verifyPresentation(old, options(roots, { skewSeconds: 60, maxAgeSeconds: 60 }))),
    ).toBe("ERR_STALE");
    const future = present(token, worker, { aud: AUD, now: () => (NOW + 61) * 1000 });
    expect(await codeOf(verifyPresentation(future, options(roots, { skewSeconds: 60 })))).toBe(
      "ERR_STALE",
    );
    const slightlyOld = present(token, worker, { aud: AUD, now: () => (NOW - 119) * 1000 });
    expect(
      await codeOf(
        verifyPresentation(slightlyOld, options(roots, { skewSeconds: 60, maxAgeSeconds: 60 })),
      ),
    ).toBe("accepted");
  });

  it("that fail for another reason do not use up their one-time id", async () => {
    const { roots, token, worker } = await setup();
    const replay = new MemoryReplayCache();
    const p = present(token, worker, { aud: AUD, method: "POST", now: () => NOW * 1000 });
    expect(await codeOf(verifyPresentation(p, options(roots, { replay, method: "GET" })))).toBe(
      "ERR_PRESENTATION",
    );
    expect(await codeOf(verifyPresentation(p, options(roots, { replay })))).toBe("accepted");
  });

  it("carrying a token swapped for another of the same holder are refused", async () => {
    const { roots, token, worker, agent } = await setup();
    const other = attenuate(
      token.links.length === 2 ? { rootKid: token.rootKid, links: token.links.slice(0, 1) } : token,
      {
        holderKey: agent,
        holder: publicKeyOf(worker),
        grant: { usdMicros: 2 },
      },
    );
    const p = present(token, worker, { aud: AUD, now: () => NOW * 1000 });
    const q = present(other, worker, { aud: AUD, now: () => NOW * 1000 });
    // Splice p's payload and signature onto q's token.
    const { decodeCanonical, encodeCanonical, fromBase64url, toBase64url } =
      await import("@allowance/core/format");
    const [, payload, signature] = decodeCanonical(
      fromBase64url(p.slice(6)) as Uint8Array,
    ) as Uint8Array[];
    const [otherToken] = decodeCanonical(fromBase64url(q.slice(6)) as Uint8Array) as Uint8Array[];
    const spliced =
      "alwp1_" +
      toBase64url(
        encodeCanonical([otherToken as Uint8Array, payload as Uint8Array, signature as Uint8Array]),
      );
    expect(await codeOf(verifyPresentation(spliced, options(roots)))).toBe("ERR_PRESENTATION");
  });

  it("with a malformed body get a typed error", async () => {
    const { roots } = await setup();
    for (const text of ["", "alwp1_", "alwp1_AAAA", "alw1_xyz", "alwp1_" + "A".repeat(40)]) {
      expect(await codeOf(verifyPresentation(text, options(roots)))).toMatch(/^ERR_/);
    }
  });
});

describe("presentation options", () => {
  it("refuse a negative or fractional maxAge with a RangeError", async () => {
    const { roots, token, worker } = await setup();
    const p = present(token, worker, { aud: AUD, now: () => NOW * 1000 });
    await expect(verifyPresentation(p, options(roots, { maxAgeSeconds: -1 }))).rejects.toThrow(
      RangeError,
    );
    await expect(verifyPresentation(p, options(roots, { maxAgeSeconds: 1.5 }))).rejects.toThrow(
      RangeError,
    );
  });
});

describe("the memory replay cache", () => {
  it("forgets ids after they expire", () => {
    const cache = new MemoryReplayCache();
    expect(cache.claim("a", 10, 0)).toBe(true);
    expect(cache.claim("a", 10, 5)).toBe(false);
    expect(cache.claim("a", 20, 10)).toBe(true);
  });

  it("refuses new ids when full of unexpired ones rather than forget any", () => {
    const cache = new MemoryReplayCache({ maxEntries: 2 });
    expect(cache.claim("a", 10, 0)).toBe(true);
    expect(cache.claim("b", 10, 0)).toBe(true);
    expect(cache.claim("c", 10, 0)).toBe(false);
    expect(cache.claim("c", 20, 10)).toBe(true);
  });
});
