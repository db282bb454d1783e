/** Keys: generation, JWK (RFC 8037) import and export, RFC 7638 thumbprints as kids, JWKS of roots. */
import { createHash } from "node:crypto";
import { format, inspect } from "node:util";
import fc from "fast-check";
import { calculateJwkThumbprint } from "jose";
import { describe, expect, it } from "vitest";
import {
  exportJwks,
  exportPrivateJwk,
  exportPublicJwk,
  generateKeyPair,
  importJwks,
  importPrivateJwk,
  importPublicJwk,
  keyPairFromSeed,
  kidOf,
  mint,
  nobleBackend,
  publicKeyFromBytes,
  getDefaultBackend,
  publicKeyOf,
  setDefaultBackend,
  trustedRoots,
  type KeyPair,
  type PublicKey,
} from "@allowance/core";
import { nodeBackend } from "@allowance/core/node";
import { toBase64url } from "@allowance/core/format";
import { expectMisuse, expectMisuseAsync } from "../../../test/support/misuse.js";

const seedOf = (byte: number): Uint8Array => new Uint8Array(32).fill(byte);
const SMALL_ORDER_KEY = "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"; // y = 1, the identity
const NON_CANONICAL_KEY = toBase64url(
  Uint8Array.from([0xee, ...new Array<number>(30).fill(0xff), 0x7f]),
); // y = p + 1

/** RFC 7638 §3: SHA-256 over the required members in lexicographic order, no whitespace. */
function rfc7638(x: string): string {
  return createHash("sha256")
    .update(`{"crv":"Ed25519","kty":"OKP","x":"${x}"}`)
    .digest("base64url");
}

describe("generating keys", () => {
  it("returns a 32-byte seed, its public key and the thumbprint of that key as kid", async () => {
    const key = await generateKeyPair();
    expect(key.privateKey).toHaveLength(32);
    expect(key.publicKey).toEqual(nodeBackend.publicKey(key.privateKey));
    expect(key.kid).toBe(rfc7638(toBase64url(key.publicKey)));
  });

  it("returns a different key each time", async () => {
    const [a, b] = await Promise.all([generateKeyPair(), generateKeyPair()]);
    expect(a.kid).not.toBe(b.kid);
  });

  it("derives the same key pair from a seed with either backend", async () => {
    const viaNode = await keyPairFromSeed(seedOf(1), nodeBackend);
    const viaNoble = await keyPairFromSeed(seedOf(1), nobleBackend);
    expect(viaNoble).toEqual(viaNode);
  });

  it("refuses a seed that is not 32 bytes with a RangeError", async () => {
    await expect(keyPairFromSeed(new Uint8Array(31))).rejects.toThrow(RangeError);
  });
});

describe("key ids", () => {
  it("equal jose's calculateJwkThumbprint and the RFC 7638 definition for any key", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 32, maxLength: 32 }), async (seed) => {
        const key = await keyPairFromSeed(seed);
        const x = toBase64url(key.publicKey);
        expect(key.kid).toBe(
          await calculateJwkThumbprint({ kty: "OKP", crv: "Ed25519", x }, "sha256"),
        );
        expect(key.kid).toBe(rfc7638(x));
      }),
      { numRuns: 100 },
    );
  });

  it("match the thumbprint example of RFC 8037 Appendix A.3", async () => {
    const publicKey = Uint8Array.from(
      Buffer.from("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "base64url"),
    );
    expect(await kidOf(publicKey)).toBe("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
  });

  it("refuse to name a small-order key", async () => {
    await expect(
      publicKeyFromBytes(Uint8Array.from(Buffer.from(SMALL_ORDER_KEY, "base64url"))),
    ).rejects.toThrow(RangeError);
  });
});

describe("JWK export and import", () => {
  it("round-trips a public key", async () => {
    const key = await keyPairFromSeed(seedOf(2));
    const jwk = exportPublicJwk(key);
    expect(jwk).toEqual({
      kty: "OKP",
      crv: "Ed25519",
      x: toBase64url(key.publicKey),
      kid: key.kid,
      alg: "EdDSA",
      use: "sig",
    });
    expect(await importPublicJwk(jwk)).toEqual(publicKeyOf(key));
  });

  it("round-trips a private key", async () => {
    const key = await keyPairFromSeed(seedOf(3));
    const jwk = exportPrivateJwk(key);
    expect(jwk.d).toBe(toBase64url(key.privateKey));
    const imported = await importPrivateJwk(jwk);
    expect(imported).toEqual(key);
    // Not enumerable, so toEqual does not compare it: by name.
    expect(imported.privateKey).toEqual(key.privateKey);
  });

  it("never puts the private part in a public JWK", async () => {
    const key = await keyPairFromSeed(seedOf(4));
    expect(exportPublicJwk(key)).not.toHaveProperty("d");
  });

  it("accepts a public JWK without a kid", async () => {
    const key = await keyPairFromSeed(seedOf(5));
    expect(
      (await importPublicJwk({ kty: "OKP", crv: "Ed25519", x: toBase64url(key.publicKey) })).kid,
    ).toBe(key.kid);
  });

  it("refuses a public JWK whose kid is not its thumbprint", async () => {
    const key = await keyPairFromSeed(seedOf(6));
    await expect(importPublicJwk({ ...exportPublicJwk(key), kid: "someone-else" })).rejects.toThrow(
      TypeError,
    );
  });

  it("refuses a private JWK whose x is not the public key of its d", async () => {
    const a = await keyPairFromSeed(seedOf(7));
    const b = await keyPairFromSeed(seedOf(8));
    const mismatched = { ...exportPrivateJwk(a), x: toBase64url(b.publicKey), kid: b.kid };
    await expect(importPrivateJwk(mismatched)).rejects.toThrow(
      /"x" is not the public key of its "d"/,
    );
  });

  it("refuses a private JWK without d", async () => {
    const key = await keyPairFromSeed(seedOf(9));
    await expect(importPrivateJwk(exportPublicJwk(key))).rejects.toThrow(TypeError);
  });

  it.each([
    ["an RSA key", { kty: "RSA", n: "AQAB", e: "AQAB" }],
    [
      "an X25519 key",
      { kty: "OKP", crv: "X25519", x: "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" },
    ],
    ["a 31-byte x", { kty: "OKP", crv: "Ed25519", x: toBase64url(new Uint8Array(31)) }],
    [
      "a padded x",
      { kty: "OKP", crv: "Ed25519", x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo=" },
    ],
    [
      "a standard-base64 x",
      { kty: "OKP", crv: "Ed25519", x: "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo" },
    ],
    ["a string", "not a jwk"],
    ["null", null],
  ])("refuses %s as an Ed25519 JWK with a TypeError", async (_name, jwk) => {
    await expect(importPublicJwk(jwk)).rejects.toThrow(TypeError);
  });

  it.each([
    ["a small-order", SMALL_ORDER_KEY],
    ["a non-canonical", NON_CANONICAL_KEY],
  ])("refuses %s public key with a RangeError", async (_name, x) => {
    await expect(importPublicJwk({ kty: "OKP", crv: "Ed25519", x })).rejects.toThrow(RangeError);
  });
});

describe("JWKS of trusted roots", () => {
  it("round-trips through exportJwks and importJwks, keyed by kid", async () => {
    const a = await keyPairFromSeed(seedOf(10));
    const b = await keyPairFromSeed(seedOf(11));
    const roots = await importJwks(JSON.parse(JSON.stringify(exportJwks([a, publicKeyOf(b)]))));
    expect([...roots.keys()].sort()).toEqual([a.kid, b.kid].sort());
    expect(roots.get(a.kid)).toEqual(publicKeyOf(a));
    expect(roots).toEqual(trustedRoots([a, b]));
  });

  it("skips keys that are not Ed25519", async () => {
    const a = await keyPairFromSeed(seedOf(12));
    const roots = await importJwks({
      keys: [
        { kty: "RSA", n: "AQAB", e: "AQAB", kid: "rsa" },
        { kty: "EC", crv: "P-256", x: "AA", y: "AA", kid: "ec" },
        { kty: "OKP", crv: "X25519", x: toBase64url(a.publicKey), kid: "x25519" },
        { kty: "OKP", crv: "Ed448", x: "AA", kid: "ed448" },
        exportPublicJwk(a),
      ],
    });
    expect([...roots.keys()]).toEqual([a.kid]);
  });

  it("refuses a JWKS that holds a private key", async () => {
    const a = await keyPairFromSeed(seedOf(13));
    await expect(importJwks({ keys: [exportPrivateJwk(a)] })).rejects.toThrow(
      /must not contain private keys/,
    );
  });

  it("refuses a JWKS entry whose kid is not its thumbprint", async () => {
    const a = await keyPairFromSeed(seedOf(14));
    await expect(
      importJwks({ keys: [{ ...exportPublicJwk(a), kid: "root-2024" }] }),
    ).rejects.toThrow(TypeError);
  });

  it("refuses a JWKS entry with a small-order key", async () => {
    await expect(
      importJwks({ keys: [{ kty: "OKP", crv: "Ed25519", x: SMALL_ORDER_KEY }] }),
    ).rejects.toThrow(RangeError);
  });

  it.each([
    ["an array", []],
    ["an object without keys", {}],
    ["keys that is not an array", { keys: {} }],
    ["an entry without kty", { keys: [{ crv: "Ed25519" }] }],
  ])("refuses %s with a TypeError", async (_name, jwks) => {
    await expect(importJwks(jwks)).rejects.toThrow(TypeError);
  });

  it("imports an empty JWKS as no roots", async () => {
    expect((await importJwks({ keys: [] })).size).toBe(0);
  });
});

describe("JWK members that say what the key is for (spec/format.md §8.2)", () => {
  it("a public JWK with a private part is refused, naming it, before anything is imported", async () => {
    const key = await keyPairFromSeed(seedOf(30));
    const jwk = exportPrivateJwk(key);
    await expect(importPublicJwk(jwk)).rejects.toThrow(/must not contain a private key \("d"\)/);
    // Whatever "d" holds: the member itself is the refusal.
    for (const d of [jwk.d, "", null, undefined, 0, "not base64!"])
      await expect(importPublicJwk({ ...exportPublicJwk(key), d })).rejects.toThrow(TypeError);
    // A private JWK is still what importPrivateJwk reads.
    expect((await importPrivateJwk(jwk)).kid).toBe(key.kid);
  });

  it.each([
    ["use", "enc"],
    ["use", "SIG"],
    ["use", ""],
    ["alg", "ES256"],
    ["alg", "none"],
    ["alg", "eddsa"],
    ["alg", "Ed448"],
    ["key_ops", ["sign"]],
    ["key_ops", ["encrypt", "wrapKey"]],
    ["key_ops", []],
    ["key_ops", "verify"],
    ["key_ops", ["verify", "verify"]],
    ["key_ops", ["verify", 1]],
    ["key_ops", { 0: "verify", length: 1 }],
    ["key_ops", null],
  ])("a public JWK with %s %j is refused with a TypeError naming it", async (member, bad) => {
    const key = await keyPairFromSeed(seedOf(31));
    const jwk = { ...exportPublicJwk(key), [member]: bad };
    await expect(importPublicJwk(jwk)).rejects.toThrow(TypeError);
    await expect(importPublicJwk(jwk)).rejects.toThrow(member);
    await expect(importJwks({ keys: [jwk] })).rejects.toThrow(TypeError);
  });

  it.each([
    ["no use, alg or key_ops", {}],
    ['alg "Ed25519" (RFC 9864)', { alg: "Ed25519" }],
    ['key_ops ["verify"]', { key_ops: ["verify"] }],
    ["key_ops naming verify among others", { key_ops: ["sign", "verify"] }],
  ])("a public JWK with %s is read", async (_name, members) => {
    const key = await keyPairFromSeed(seedOf(32));
    const jwk = { kty: "OKP", crv: "Ed25519", x: toBase64url(key.publicKey), ...members };
    expect(await importPublicJwk(jwk)).toEqual(publicKeyOf(key));
    expect([...(await importJwks({ keys: [jwk] })).keys()]).toEqual([key.kid]);
  });

  it('a private JWK must be for signing: use "sig", an Ed25519 alg, key_ops with "sign"', async () => {
    const key = await keyPairFromSeed(seedOf(33));
    const jwk = exportPrivateJwk(key);
    for (const bad of [{ use: "enc" }, { alg: "RS256" }, { key_ops: ["verify"] }, { key_ops: 1 }])
      await expect(importPrivateJwk({ ...jwk, ...bad })).rejects.toThrow(TypeError);
    expect((await importPrivateJwk({ ...jwk, key_ops: ["sign"] })).kid).toBe(key.kid);
  });

  it("a JWKS skips other algorithms' keys but refuses an entry that does not say what it is", async () => {
    const a = await keyPairFromSeed(seedOf(34));
    const good = exportPublicJwk(a);
    // Skipped: a string kty other than "OKP", or an OKP key on another curve.
    for (const foreign of [
      { kty: "oct", k: "AAAA" },
      { kty: "okp", crv: "Ed25519", x: good.x },
      { kty: "OKP", crv: "X448", x: "AA" },
      { kty: "OKP", crv: "ed25519", x: good.x },
    ])
      expect([...(await importJwks({ keys: [foreign, good] })).keys()]).toEqual([a.kid]);
    // Malformed: no string kty, or an OKP key with no string crv.
    for (const malformed of [
      { crv: "Ed25519", x: good.x },
      { kty: null, crv: "Ed25519", x: good.x },
      { kty: 1 },
      { kty: ["OKP"], crv: "Ed25519", x: good.x },
      { kty: "OKP", x: good.x },
      { kty: "OKP", crv: null, x: good.x },
      { kty: "OKP", crv: ["Ed25519"], x: good.x },
      "OKP",
      null,
      [good],
    ])
      await expect(importJwks({ keys: [good, malformed] })).rejects.toThrow(/keys\.1/);
  });
});

describe("a key object's kid is the thumbprint of its bytes (spec/format.md §2.1)", () => {
  /** A key pair rebuilt from storage after a rotation: the new key's bytes, the old key's kid. */
  async function staleKeyPair(): Promise<{ old: KeyPair; fresh: KeyPair; stale: KeyPair }> {
    const old = await keyPairFromSeed(seedOf(40));
    const fresh = await keyPairFromSeed(seedOf(41));
    const stale = { kid: old.kid, publicKey: fresh.publicKey, privateKey: fresh.privateKey };
    return { old, fresh, stale };
  }

  it("publicKeyOf, the JWK exports and trustedRoots refuse a stale kid, naming it", async () => {
    const { fresh, stale } = await staleKeyPair();
    const stalePublic: PublicKey = { kid: stale.kid, bytes: fresh.publicKey };
    expectMisuse(() => publicKeyOf(stale), '"keyPair.kid"', TypeError);
    expectMisuse(() => exportPublicJwk(stale), '"key.kid"', TypeError);
    expectMisuse(() => exportPublicJwk(stalePublic), '"key.kid"', TypeError);
    expectMisuse(() => exportPrivateJwk(stale), '"keyPair.kid"', TypeError);
    expectMisuse(() => exportJwks([fresh, stalePublic]), '"keys[1].kid"', TypeError);
    expectMisuse(() => trustedRoots([fresh, stale]), '"keys[1].kid"', TypeError);
    expectMisuse(() => trustedRoots([stalePublic]), '"keys[0].kid"', TypeError);
    for (const kid of ["", "bogus", fresh.kid.toLowerCase(), `${fresh.kid}=`, " ".repeat(10_000)])
      expectMisuse(() => trustedRoots([{ kid, bytes: fresh.publicKey }]), '"keys[0].kid"');
    // A pair that also carries `bytes` (with the kid's key) is judged by the public key it hands out.
    const twoFaced = { ...stale, bytes: (await keyPairFromSeed(seedOf(40))).publicKey };
    expectMisuse(() => publicKeyOf(twoFaced as KeyPair), '"keyPair.kid"', TypeError);
    // The real key still works, under its own kid.
    expect([...trustedRoots([fresh]).keys()]).toEqual([fresh.kid]);
    expect(exportPublicJwk(fresh).kid).toBe(fresh.kid);
  });

  it("mint refuses a root key whose kid names another key", async () => {
    const { stale } = await staleKeyPair();
    const holder = await keyPairFromSeed(seedOf(42));
    expectMisuse(
      () => mint({ rootKey: stale, holder: publicKeyOf(holder), grant: { exp: 2e9 } }),
      '"rootKey.kid"',
      TypeError,
    );
  });

  it("a key whose bytes were changed in place after use is checked anew", async () => {
    const a = await keyPairFromSeed(seedOf(43));
    const b = await keyPairFromSeed(seedOf(44));
    const bytes = Uint8Array.from(a.publicKey);
    const key: PublicKey = { kid: a.kid, bytes };
    expect([...trustedRoots([key]).keys()]).toEqual([a.kid]);
    bytes.set(b.publicKey);
    expectMisuse(() => exportPublicJwk(key), '"key.kid"', TypeError);
    expectMisuse(() => trustedRoots([key]), '"keys[0].kid"', TypeError);
    bytes.set(a.publicKey);
    expect(exportPublicJwk(key).kid).toBe(a.kid);
  });

  it("trustedRoots holds its own copy of each key", async () => {
    const a = await keyPairFromSeed(seedOf(45));
    const bytes = Uint8Array.from(a.publicKey);
    const roots = trustedRoots([{ kid: a.kid, bytes }]);
    bytes.fill(0);
    expect(roots.get(a.kid)?.bytes).toEqual(a.publicKey);
    expect(Object.isFrozen(roots.get(a.kid))).toBe(true);
  });

  it.each([
    ["a small-order", SMALL_ORDER_KEY],
    ["a non-canonical", NON_CANONICAL_KEY],
  ])(
    "trustedRoots and the JWK export refuse %s key, as importJwks does, with a RangeError",
    async (_name, x) => {
      const bytes = Uint8Array.from(Buffer.from(x, "base64url"));
      // Named by its true thumbprint, so only the key policy can refuse it.
      const key: PublicKey = { kid: await kidOf(bytes), bytes };
      expectMisuse(() => trustedRoots([key]), '"keys[0]"', RangeError);
      expectMisuse(() => exportPublicJwk(key), '"key"', RangeError);
      await expect(importJwks({ keys: [{ kty: "OKP", crv: "Ed25519", x }] })).rejects.toThrow(
        RangeError,
      );
    },
  );

  it("a key that is 32 bytes but not a curve point is refused by trustedRoots", async () => {
    // y = 2 is not the y of any point on edwards25519 (no x solves the curve equation).
    const bytes = new Uint8Array(32);
    bytes[0] = 2;
    const key: PublicKey = { kid: await kidOf(bytes), bytes };
    expectMisuse(() => trustedRoots([key]), "curve point", RangeError);
  });
});

describe("a key pair's seed does not print", () => {
  /** Every way a key pair is commonly logged or serialized, as text. */
  function printed(value: unknown): string[] {
    return [
      inspect(value),
      inspect(value, { depth: Infinity, showHidden: true }),
      inspect({ config: { signing: value } }, { depth: Infinity }),
      format("%o %O %j %s", value, value, value, value),
      JSON.stringify(value),
      JSON.stringify({ key: value, keys: [value] }),
      JSON.stringify(Object.entries(value as object)),
      JSON.stringify({ ...(value as object) }),
      JSON.stringify(structuredClone(value)),
      String(Object.keys(value as object)),
    ];
  }

  it.each([
    ["generateKeyPair", () => generateKeyPair()],
    ["keyPairFromSeed (node)", () => keyPairFromSeed(seedOf(0xab), nodeBackend)],
    ["keyPairFromSeed (noble)", () => keyPairFromSeed(seedOf(0xab), nobleBackend)],
    ["importPrivateJwk", async () => importPrivateJwk(exportPrivateJwk(await generateKeyPair()))],
  ])("from %s: not in inspect, JSON, spread, entries or clones", async (_name, make) => {
    const keyPair = await make();
    const seed = Uint8Array.from(keyPair.privateKey);
    const forms = [
      toBase64url(seed),
      Buffer.from(seed).toString("hex"),
      Buffer.from(seed).toString("base64"),
      Array.from(seed).join(","),
      Array.from(seed.subarray(0, 8)).join(", "),
      `"0":${seed[0]},"1":${seed[1]},"2":${seed[2]}`,
    ];
    for (const text of printed(keyPair)) {
      for (const form of forms) expect(text).not.toContain(form);
      // What is shown names the key, so that logs stay useful.
      if (text !== "kid,publicKey") expect(text).toContain(keyPair.kid);
    }
    expect(Object.keys(keyPair)).toEqual(["kid", "publicKey"]);
    expect(JSON.parse(JSON.stringify(keyPair))).toEqual({ kid: keyPair.kid });
    expect(inspect(keyPair)).toBe(`KeyPair { kid: "${keyPair.kid}" }`);
  });

  it("is still read by name: it signs, mints and exports as before", async () => {
    const keyPair = await keyPairFromSeed(seedOf(50));
    expect(keyPair.privateKey).toEqual(seedOf(50));
    expect(Object.isFrozen(keyPair)).toBe(true);
    expect(() => {
      (keyPair as { privateKey: Uint8Array }).privateKey = new Uint8Array(32);
    }).toThrow(TypeError);
    expect(exportPrivateJwk(keyPair).d).toBe(toBase64url(seedOf(50)));
    const holder = await keyPairFromSeed(seedOf(51));
    expect(() =>
      mint({ rootKey: keyPair, holder: publicKeyOf(holder), grant: { exp: 2e9 } }),
    ).not.toThrow();
    // A spread copy carries no seed: it is refused as a key pair, never signs with garbage.
    expectMisuse(
      () => mint({ rootKey: { ...keyPair }, holder: publicKeyOf(holder), grant: { exp: 2e9 } }),
      '"rootKey"',
      TypeError,
    );
  });
});

describe("regressions: key objects and backends given by hand", () => {
  it("exporting a key of the wrong length or without a kid is refused, never a JWK importers refuse", async () => {
    const a = await keyPairFromSeed(seedOf(20));
    // A 3-byte `bytes` used to export as a JWK with x "AAAA".
    expectMisuse(() => exportPublicJwk({ kid: a.kid, bytes: new Uint8Array(3) }), '"key.bytes"');
    expectMisuse(() => exportPublicJwk(null as never), '"key"', TypeError);
    expectMisuse(() => exportPublicJwk({ ...a, kid: 5 } as never), '"key.kid"', TypeError);
    expectMisuse(
      () => exportPrivateJwk({ kid: a.kid, publicKey: a.publicKey } as never),
      '"keyPair.privateKey"',
    );
    expectMisuse(() => exportJwks(null as never), '"keys"', TypeError);
    expectMisuse(() => publicKeyOf({ kid: a.kid, bytes: a.publicKey } as never), "publicKey");
    // The real thing still exports.
    expect(exportPrivateJwk(a).d).toBe(toBase64url(a.privateKey));
  });

  it("trustedRoots refuses what is not a list of keys, naming the entry", async () => {
    const a = await keyPairFromSeed(seedOf(21));
    expectMisuse(() => trustedRoots(null as never), '"keys"', TypeError);
    expectMisuse(() => trustedRoots(new Set([a]) as never), '"keys"', TypeError);
    expectMisuse(() => trustedRoots([a, { kid: 5, bytes: "x" }] as never), '"keys[1].kid"');
    expectMisuse(() => trustedRoots([{ kid: a.kid, bytes: a.privateKey.subarray(1) }]), "keys[0]");
    expect([...trustedRoots([a, publicKeyOf(a)]).keys()]).toEqual([a.kid]);
  });

  it("a null or partial backend is a TypeError, not the default and not a crash on later calls", async () => {
    await expectMisuseAsync(() => keyPairFromSeed(seedOf(22), null as never), '"backend"');
    await expectMisuseAsync(() => keyPairFromSeed(seedOf(22), {} as never), '"backend"');
    const before = getDefaultBackend();
    for (const backend of [null, undefined, {}, { ...nobleBackend, sign: undefined }])
      expectMisuse(() => setDefaultBackend(backend as never), '"backend"', TypeError);
    // Nothing was changed by the refused calls.
    expect(getDefaultBackend()).toBe(before);
  });
});
