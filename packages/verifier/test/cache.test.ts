import { describe, expect, it } from "vitest";
import {
  attenuate,
  generateKeyPair,
  mint,
  publicKeyOf,
  trustedRoots,
  type KeyPair,
  type Token,
} from "@allowance/core";
import {
  LruPrefixCache,
  MemoryRevocationStore,
  createVerifier,
  verify,
  type PrefixCache,
  type PrefixEntry,
} from "@allowance/verifier";
import { outcome } from "../../../test/support/outcome.js";

const NOW = 1_800_000_000;

async function family() {
  const keys = await Promise.all([0, 1, 2, 3, 4, 5].map(() => generateKeyPair()));
  const k = (i: number) => keys[i] as KeyPair;
  let prefix = mint({
    rootKey: k(0),
    holder: publicKeyOf(k(1)),
    grant: { exp: NOW + 3600, usdMicros: 100, tools: ["a", "b", "c"] },
  });
  for (let i = 1; i < 4; i++)
    prefix = attenuate(prefix, {
      holderKey: k(i),
      holder: publicKeyOf(k(i + 1)),
      grant: { usdMicros: 100 - i },
    });
  const childA = attenuate(prefix, {
    holderKey: k(4),
    holder: publicKeyOf(k(5)),
    grant: { usdMicros: 10 },
  });
  const childB = attenuate(prefix, {
    holderKey: k(4),
    holder: publicKeyOf(k(5)),
    grant: { usdMicros: 20, exp: NOW + 60 },
  });
  return { roots: trustedRoots([k(0)]), prefix, childA, childB, keys };
}

const code = outcome;

describe("the verified-prefix cache", () => {
  it("gives the same result as an uncached verify, cold and warm", async () => {
    const { roots, childA, childB } = await family();
    const verifier = createVerifier({ roots });
    const plain = verify(childA, { roots, now: () => NOW * 1000 });
    expect(verifier.verify(childA, { now: () => NOW * 1000 }).grant).toEqual(plain.grant);
    expect(verifier.verify(childA, { now: () => NOW * 1000 }).linkIds).toEqual(plain.linkIds);
    expect(verifier.verify(childB, { now: () => NOW * 1000 }).grant).toEqual(
      verify(childB, { roots, now: () => NOW * 1000 }).grant,
    );
  });

  it("lets a sibling reuse the shared prefix", async () => {
    const { roots, childA, childB } = await family();
    const cache = new LruPrefixCache();
    const verifier = createVerifier({ roots, cache });
    verifier.verify(childA, { now: () => NOW * 1000 });
    const hitsBefore = cache.hits;
    verifier.verify(childB, { now: () => NOW * 1000 });
    expect(cache.hits).toBe(hitsBefore + 1);
    expect(cache.size).toBe(6);
  });

  it("still checks the clock on every call", async () => {
    const { roots, childB } = await family();
    const verifier = createVerifier({ roots, skewSeconds: 0 });
    verifier.verify(childB, { now: () => NOW * 1000 });
    expect(code(() => verifier.verify(childB, { now: () => (NOW + 61) * 1000 }))).toBe(
      "ERR_EXPIRED",
    );
    expect(code(() => verifier.verify(childB, { now: () => (NOW + 3601) * 1000 }))).toBe(
      "ERR_EXPIRED",
    );
  });

  it("still checks revocation and audience on every call", async () => {
    const { roots, childA } = await family();
    const verifier = createVerifier({ roots });
    const { linkIds } = verifier.verify(childA, { now: () => NOW * 1000 });
    expect(
      code(() =>
        verifier.verify(childA, {
          now: () => NOW * 1000,
          revocations: new MemoryRevocationStore([linkIds[1] as string]),
        }),
      ),
    ).toBe("ERR_REVOKED");
  });

  it("never lets a cached prefix vouch for a tampered link", async () => {
    const { roots, childA } = await family();
    const verifier = createVerifier({ roots });
    verifier.verify(childA, { now: () => NOW * 1000 });
    const tampered: Token = {
      rootKid: childA.rootKid,
      links: childA.links.map((l, i) =>
        i === 2
          ? { payload: l.payload, signature: l.signature.map((b, j) => (j === 63 ? b ^ 1 : b)) }
          : l,
      ),
    };
    expect(code(() => verifier.verify(tampered, { now: () => NOW * 1000 }))).toBe("ERR_SIGNATURE");
  });

  it("stays correct when full (one entry)", async () => {
    const { roots, childA, childB } = await family();
    const verifier = createVerifier({ roots, cacheSize: 1 });
    for (let i = 0; i < 3; i++) {
      expect(verifier.verify(childA, { now: () => NOW * 1000 }).grant.usdMicros).toBe(10);
      expect(verifier.verify(childB, { now: () => NOW * 1000 }).grant.usdMicros).toBe(20);
    }
    expect(verifier.cache.size).toBe(1);
  });

  it("ignores entries from a poisoned cache that returns another prefix for every key", async () => {
    const { roots, childA, childB, keys } = await family();
    const honest = createVerifier({ roots });
    honest.verify(childA, { now: () => NOW * 1000 });
    // A cache whose every lookup "collides" with one stored entry: the links of childA.
    const stolen: PrefixEntry = {
      key: new Uint8Array(32),
      rootKid: [...roots.keys()][0] as string,
      links: honest.verify(childA, { now: () => NOW * 1000 }).links,
    };
    const poisoned: PrefixCache = {
      get: () => stolen,
      set: () => undefined,
      size: 1,
      clear: () => undefined,
    };
    const verifier = createVerifier({ roots, cache: poisoned });
    expect(verifier.verify(childB, { now: () => NOW * 1000 }).grant.usdMicros).toBe(20);
    const wider = attenuate(
      childB.links.length > 0
        ? { rootKid: childB.rootKid, links: childB.links.slice(0, 1) }
        : childB,
      {
        holderKey: keys[1] as KeyPair,
        holder: publicKeyOf(keys[2] as KeyPair),
        grant: { usdMicros: 1 },
      },
    );
    expect(verifier.verify(wider, { now: () => NOW * 1000 }).grant.usdMicros).toBe(1);
  });

  it("is not shared across different limits", async () => {
    const { roots, childA } = await family();
    const cache = new LruPrefixCache();
    createVerifier({ roots, cache }).verify(childA, { now: () => NOW * 1000 });
    const strict = createVerifier({ roots, cache, limits: { maxLinks: 4 } });
    expect(code(() => strict.verify(childA, { now: () => NOW * 1000 }))).toBe("ERR_LIMIT");
    // List lengths are checked only when a payload is decoded, which a shared cache would skip.
    const tight = createVerifier({ roots, cache, limits: { maxListLength: 2 } });
    expect(code(() => tight.verify(childA, { now: () => NOW * 1000 }))).toBe("ERR_LIMIT");
  });
});
