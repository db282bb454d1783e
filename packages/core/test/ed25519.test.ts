/**
 * The two signing backends against each other and against the verification rule of
 * spec/format.md §5: RFC 8032 §5.1.7, cofactorless, S < L, public keys canonical and not of small
 * order. Upstream vectors live untouched in ./vectors (see its README).
 */
import { generateKeyPairSync, sign as nodeSign } from "node:crypto";
import { readFileSync } from "node:fs";
import * as ed from "@noble/ed25519";
import { sha512 } from "@noble/hashes/sha2.js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { nobleBackend, type Ed25519Backend } from "@allowance/core";
import { checkPublicKey, isCanonicalScalar, verifySignature } from "@allowance/core/format";
import { nodeBackend } from "@allowance/core/node";

const backends: readonly Ed25519Backend[] = [nodeBackend, nobleBackend];
const hex = (text: string): Uint8Array => Uint8Array.from(Buffer.from(text, "hex"));
const toHex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");

// RFC 8032 §5.1: the group order L and the field prime p.
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const P = 2n ** 255n - 19n;

function fromLittleEndian(bytes: Uint8Array): bigint {
  let value = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i] as number);
  return value;
}
function toLittleEndian(value: bigint, length = 32): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    out[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  return out;
}
const modL = (value: bigint): bigint => ((value % L) + L) % L;
const hashToScalar = (...parts: Uint8Array[]): bigint => {
  const hash = sha512.create();
  for (const part of parts) hash.update(part);
  return modL(fromLittleEndian(hash.digest()));
};

/** What each backend says about one signature, through the full policy. */
function verdicts(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): string[] {
  return backends.map((backend) => verifySignature(publicKey, message, signature, backend));
}
function rawVerdicts(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean[] {
  return backends.map((backend) => backend.verifyEquation(publicKey, message, signature));
}

const seed = fc.uint8Array({ minLength: 32, maxLength: 32 });
const message = fc.uint8Array({ maxLength: 300 });

describe("node and noble backends", () => {
  it("derive byte-identical public keys from any seed", () => {
    fc.assert(
      fc.property(seed, (s) => {
        expect(toHex(nobleBackend.publicKey(s))).toBe(toHex(nodeBackend.publicKey(s)));
      }),
      { numRuns: 300 },
    );
  });

  it("produce byte-identical signatures for any seed and message", () => {
    fc.assert(
      fc.property(seed, message, (s, m) => {
        expect(toHex(nobleBackend.sign(s, m))).toBe(toHex(nodeBackend.sign(s, m)));
      }),
      { numRuns: 300 },
    );
  });

  it("both accept every valid signature", () => {
    fc.assert(
      fc.property(seed, message, (s, m) => {
        expect(verdicts(nodeBackend.publicKey(s), m, nodeBackend.sign(s, m))).toEqual(["ok", "ok"]);
      }),
      { numRuns: 200 },
    );
  });

  it("both reject a signature after any single bit of the message or the signature is flipped", () => {
    fc.assert(
      fc.property(
        seed,
        message,
        fc.boolean(),
        fc.nat(),
        fc.integer({ min: 0, max: 7 }),
        (s, m, inSignature, at, bit) => {
          const publicKey = nodeBackend.publicKey(s);
          const signature = nodeBackend.sign(s, m);
          const target = inSignature || m.length === 0 ? signature : m;
          target[at % target.length] = (target[at % target.length] as number) ^ (1 << bit);
          const [node, noble] = verdicts(publicKey, m, signature);
          expect(node).not.toBe("ok");
          expect(noble).toBe(node);
          expect(rawVerdicts(publicKey, m, signature)).toEqual([false, false]);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("both reject the S + L malleation of a valid signature, in the policy and in the raw equation", () => {
    fc.assert(
      fc.property(seed, message, (s, m) => {
        const publicKey = nodeBackend.publicKey(s);
        const signature = nodeBackend.sign(s, m);
        const malleated = Uint8Array.from(signature);
        malleated.set(toLittleEndian(fromLittleEndian(signature.subarray(32)) + L), 32);
        expect(verdicts(publicKey, m, malleated)).toEqual(["non-canonical-s", "non-canonical-s"]);
        expect(rawVerdicts(publicKey, m, malleated)).toEqual([false, false]);
      }),
      { numRuns: 200 },
    );
  });

  it("both reject a signature whose R is a non-canonical encoding (y >= p)", () => {
    fc.assert(
      fc.property(
        seed,
        message,
        fc.integer({ min: 0, max: 18 }),
        fc.boolean(),
        (s, m, offset, sign) => {
          const publicKey = nodeBackend.publicKey(s);
          const signature = nodeBackend.sign(s, m);
          const r = toLittleEndian(P + BigInt(offset));
          if (sign) r[31] = (r[31] as number) | 0x80;
          signature.set(r, 0);
          expect(verdicts(publicKey, m, signature)).toEqual(["invalid", "invalid"]);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("both reject random 64-byte signatures, and agree", () => {
    fc.assert(
      fc.property(
        seed,
        message,
        fc.uint8Array({ minLength: 64, maxLength: 64 }),
        (s, m, signature) => {
          const [node, noble] = verdicts(nodeBackend.publicKey(s), m, signature);
          expect(node).not.toBe("ok");
          expect(noble).toBe(node);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("node answers alike for a key's first, second and later uses (verified from its JWK, imported, cached)", () => {
    fc.assert(
      fc.property(seed, message, fc.uint8Array({ minLength: 32, maxLength: 32 }), (s, m, other) => {
        const publicKey = nodeBackend.publicKey(s);
        const good = nodeBackend.sign(s, m);
        const bad = Uint8Array.from(good);
        bad[0] = (bad[0] as number) ^ 1;
        // Each key of the three is used five times, good and bad signatures interleaved.
        for (let use = 0; use < 5; use++) {
          expect(nodeBackend.verifyEquation(publicKey, m, good)).toBe(true);
          expect(nodeBackend.verifyEquation(publicKey, m, bad)).toBe(false);
          // Random bytes (most are not a curve point) never verify another key's signature.
          expect(nodeBackend.verifyEquation(other, m, good)).toBe(false);
          expect(nobleBackend.verifyEquation(other, m, good)).toBe(false);
        }
      }),
      { numRuns: 100 },
    );
  });

  it("node answers alike while more keys than its caches hold come and go", () => {
    // 4,608 keys, more than the 4,096 each cache keeps: both the keys seen once and the cached key
    // objects wrap around, and keys evicted from the cache come back. A key answered under another
    // key's name (a wrong eviction) would accept a signature of the wrong key.
    const keys = Array.from({ length: 4608 }, (_, i) => {
      const { privateKey, publicKey } = generateKeyPairSync("ed25519");
      const message = Uint8Array.of(i & 0xff, i >> 8);
      const x = publicKey.export({ format: "jwk" }).x as string;
      return {
        publicKey: Uint8Array.from(Buffer.from(x, "base64url")),
        message,
        signature: Uint8Array.from(nodeSign(null, message, privateKey)),
      };
    });
    const answers: boolean[] = [];
    // All keys, then the first 1,024 again, which the cache has let go of by then.
    for (const i of [...keys.keys(), ...keys.keys()].slice(0, 4608 + 1024)) {
      const key = keys[i]!;
      const other = keys[(i + 1) % keys.length]!;
      // First use (verified from its JWK), second (imported and cached), then from the cache.
      answers.push(nodeBackend.verifyEquation(key.publicKey, key.message, key.signature));
      answers.push(!nodeBackend.verifyEquation(key.publicKey, other.message, other.signature));
      answers.push(nodeBackend.verifyEquation(key.publicKey, key.message, key.signature));
    }
    expect(answers.filter((answer) => !answer)).toEqual([]);
    expect(answers).toHaveLength((4608 + 1024) * 3);
  });

  it("both reject random 32-byte public keys with a valid signature of another key, and agree", () => {
    fc.assert(
      fc.property(
        seed,
        message,
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        (s, m, publicKey) => {
          const [node, noble] = verdicts(publicKey, m, nodeBackend.sign(s, m));
          expect(node).not.toBe("ok");
          expect(noble).toBe(node);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("both apply the cofactorless equation to a key with a torsion component (accept iff 8 divides k)", () => {
    // A' = A + T, T of order 8: [S]B - [k]A' = R - [k]T, which equals R exactly when 8 | k. A
    // cofactored verifier would accept every such signature; spec/format.md §5 picks cofactorless.
    const torsion = ed.Point.fromBytes(
      hex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
      true,
    );
    let accepted = 0;
    fc.assert(
      fc.property(seed, message, (s, m) => {
        const { scalar, prefix, point } = ed.utils.getExtendedPublicKey(s);
        const publicKey = point.add(torsion).toBytes();
        expect(checkPublicKey(publicKey)).toBe("ok");
        const r = hashToScalar(prefix, m);
        const R = ed.Point.BASE.multiply(r).toBytes();
        const k = hashToScalar(R, publicKey, m);
        const signature = new Uint8Array(64);
        signature.set(R, 0);
        signature.set(toLittleEndian(modL(r + k * scalar)), 32);
        const expected = k % 8n === 0n ? "ok" : "invalid";
        if (expected === "ok") accepted++;
        expect(verdicts(publicKey, m, signature)).toEqual([expected, expected]);
      }),
      { numRuns: 200 },
    );
    expect(accepted).toBeGreaterThan(0);
  });

  it("both reject a signature whose R carries a torsion component", () => {
    const torsion = ed.Point.fromBytes(
      hex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
      true,
    );
    fc.assert(
      fc.property(seed, message, (s, m) => {
        const { scalar, prefix, pointBytes } = ed.utils.getExtendedPublicKey(s);
        const r = hashToScalar(prefix, m);
        const R = ed.Point.BASE.multiply(r).add(torsion).toBytes();
        const k = hashToScalar(R, pointBytes, m);
        const signature = new Uint8Array(64);
        signature.set(R, 0);
        signature.set(toLittleEndian(modL(r + k * scalar)), 32);
        expect(verdicts(pointBytes, m, signature)).toEqual(["invalid", "invalid"]);
      }),
      { numRuns: 100 },
    );
  });
});

describe("the policy", () => {
  it.each([
    ["0", 0n, true],
    ["L - 1", L - 1n, true],
    ["L", L, false],
    ["L + 1", L + 1n, false],
    ["2^253", 2n ** 253n, false],
    ["2^256 - 1", 2n ** 256n - 1n, false],
  ])("judges S = %s canonical: %s", (_name, s, canonical) => {
    expect(isCanonicalScalar(toLittleEndian(s))).toBe(canonical);
  });

  it("rejects a signature with S = L before the equation runs", () => {
    const s = new Uint8Array(32).fill(7);
    const publicKey = nodeBackend.publicKey(s);
    const signature = nodeBackend.sign(s, new Uint8Array());
    signature.set(toLittleEndian(L), 32);
    expect(verdicts(publicKey, new Uint8Array(), signature)).toEqual([
      "non-canonical-s",
      "non-canonical-s",
    ]);
  });

  /** Every 32-byte string that decodes, leniently, to a point of small order. */
  function smallOrderEncodings(): {
    canonical: string[];
    signFlipped: string[];
    nonCanonical: string[];
  } {
    const generator = ed.Point.fromBytes(
      hex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
      true,
    );
    const points: ed.Point[] = [];
    let point = ed.Point.ZERO;
    for (let i = 0; i < 8; i++) {
      points.push(point);
      point = point.add(generator);
    }
    expect(point.equals(ed.Point.ZERO)).toBe(true);
    const canonical = points.map((p) => toHex(p.toBytes()));
    // x = 0 (y = 1 and y = -1): the encoding with the sign bit set names the same point.
    const signFlipped = points
      .filter((p) => p.x === 0n)
      .map((p) => toHex(toLittleEndian(p.y | (1n << 255n))));
    // y < 19 (y = 0 and y = 1): y + p still fits in 255 bits, with either sign bit.
    const nonCanonical = points
      .filter((p) => p.y < 19n)
      .flatMap((p) => [
        toHex(toLittleEndian(p.y + P)),
        toHex(toLittleEndian((p.y + P) | (1n << 255n))),
      ]);
    return { canonical, signFlipped, nonCanonical: [...new Set(nonCanonical)] };
  }

  it("knows all fourteen encodings of the eight small-order points", () => {
    const { canonical, signFlipped, nonCanonical } = smallOrderEncodings();
    expect(new Set(canonical).size).toBe(8);
    expect(signFlipped).toHaveLength(2);
    expect(nonCanonical).toHaveLength(4);
    for (const encoding of canonical)
      expect(ed.Point.fromBytes(hex(encoding), true).isSmallOrder()).toBe(true);
  });

  it("rejects every small-order public key encoding, in both backends", () => {
    const { canonical, signFlipped, nonCanonical } = smallOrderEncodings();
    const signature = nodeBackend.sign(new Uint8Array(32), new Uint8Array([1]));
    for (const encoding of [...canonical, ...signFlipped, ...nonCanonical]) {
      expect(checkPublicKey(hex(encoding))).not.toBe("ok");
      expect(verdicts(hex(encoding), new Uint8Array([1]), signature)).toEqual([
        "bad-key",
        "bad-key",
      ]);
    }
    for (const encoding of [...canonical, ...signFlipped])
      expect(checkPublicKey(hex(encoding))).toBe("small-order");
    for (const encoding of nonCanonical)
      expect(checkPublicKey(hex(encoding))).toBe("non-canonical");
  });

  it("rejects the identity key although both raw equations accept a signature that verifies for every message", () => {
    // With A = identity, [S]B - [k]A = [S]B: one (R, S) pair verifies for any message.
    const identity = hex("0100000000000000000000000000000000000000000000000000000000000000");
    const s = 12345n;
    const signature = new Uint8Array(64);
    signature.set(ed.Point.BASE.multiply(s).toBytes(), 0);
    signature.set(toLittleEndian(s), 32);
    for (const m of [new Uint8Array(), new Uint8Array([1, 2, 3])]) {
      expect(rawVerdicts(identity, m, signature)).toEqual([true, true]);
      expect(verdicts(identity, m, signature)).toEqual(["bad-key", "bad-key"]);
    }
  });

  it("rejects every non-canonical public key encoding (y >= p, either sign bit)", () => {
    const signature = nodeBackend.sign(new Uint8Array(32), new Uint8Array());
    for (let offset = 0n; offset < 19n; offset++) {
      for (const sign of [0n, 1n << 255n]) {
        const key = toLittleEndian((P + offset) | sign);
        expect(checkPublicKey(key)).toBe("non-canonical");
        expect(verdicts(key, new Uint8Array(), signature)).toEqual(["bad-key", "bad-key"]);
      }
    }
  });

  it("leaves y = p - 2, canonical and not small-order, to the equation", () => {
    expect(checkPublicKey(toLittleEndian(P - 2n))).toBe("ok");
  });

  it.each([0, 31, 33, 64])("rejects a %d-byte public key", (length) => {
    expect(checkPublicKey(new Uint8Array(length))).toBe("length");
    expect(verdicts(new Uint8Array(length), new Uint8Array(), new Uint8Array(64))).toEqual([
      "bad-key",
      "bad-key",
    ]);
  });

  it.each([0, 63, 65, 128])("rejects a %d-byte signature", (length) => {
    const publicKey = nodeBackend.publicKey(new Uint8Array(32));
    expect(verdicts(publicKey, new Uint8Array(), new Uint8Array(length))).toEqual([
      "invalid",
      "invalid",
    ]);
  });
});

interface Rfc8032Vector {
  name: string;
  secretKey: string;
  publicKey: string;
  message: string;
  signature: string;
}
const rfc8032 = JSON.parse(
  readFileSync(new URL("./vectors/rfc8032.json", import.meta.url), "utf8"),
) as { tests: Rfc8032Vector[] };

describe("RFC 8032 §7.1 test vectors", () => {
  it.each(rfc8032.tests.map((v) => [v.name, v] as const))(
    "%s: both backends derive the key, sign and verify as the RFC says",
    (_name, v) => {
      for (const backend of backends) {
        expect(toHex(backend.publicKey(hex(v.secretKey)))).toBe(v.publicKey);
        expect(toHex(backend.sign(hex(v.secretKey), hex(v.message)))).toBe(v.signature);
        expect(verifySignature(hex(v.publicKey), hex(v.message), hex(v.signature), backend)).toBe(
          "ok",
        );
      }
    },
  );
});

interface WycheproofTest {
  tcId: number;
  comment: string;
  flags: string[];
  msg: string;
  sig: string;
  result: "valid" | "invalid" | "acceptable";
}
interface WycheproofFile {
  numberOfTests: number;
  testGroups: { publicKey: { pk: string }; tests: WycheproofTest[] }[];
}
const wycheproof = JSON.parse(
  readFileSync(new URL("./vectors/wycheproof-ed25519.json", import.meta.url), "utf8"),
) as WycheproofFile;
const wycheproofCases = wycheproof.testGroups.flatMap((group) =>
  group.tests.map((test) => ({ ...test, pk: group.publicKey.pk })),
);

/** `valid` tests that our key policy rejects on purpose (small-order or non-canonical key), by tcId. */
const POLICY_EXCEPTIONS: readonly number[] = []; // This file has no such keys (see vectors/README.md).

describe("Wycheproof ed25519_test.json", () => {
  it("holds every test the file announces", () => {
    expect(wycheproofCases).toHaveLength(wycheproof.numberOfTests);
  });

  it.each(
    wycheproofCases.map((c) => [c.tcId, c.result, c.comment || c.flags.join(", "), c] as const),
  )("tcId %i (%s, %s): both backends decide as the vector says", (_tcId, _result, _comment, c) => {
    const [node, noble] = verdicts(hex(c.pk), hex(c.msg), hex(c.sig));
    expect(noble).toBe(node);
    if (c.result === "invalid") expect(node).not.toBe("ok");
    if (c.result === "valid")
      expect(node).toBe(POLICY_EXCEPTIONS.includes(c.tcId) ? "bad-key" : "ok");
  });

  it("makes exactly the documented policy exceptions to valid tests, by tcId", () => {
    const rejectedValid = wycheproofCases
      .filter(
        (c) =>
          c.result === "valid" &&
          verdicts(hex(c.pk), hex(c.msg), hex(c.sig)).some((v) => v !== "ok"),
      )
      .map((c) => c.tcId);
    expect(rejectedValid).toEqual(POLICY_EXCEPTIONS);
    const policyRejected = wycheproofCases
      .filter((c) => checkPublicKey(hex(c.pk)) !== "ok")
      .map((c) => c.tcId);
    expect(policyRejected).toEqual([]);
  });
});
