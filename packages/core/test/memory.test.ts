/**
 * What a parsed token hands out shares memory with nothing else. Node's Buffer keeps small
 * allocations in one shared 8 KB slab, and a Uint8Array viewing part of it reaches all of it
 * through `.buffer` (and `structuredClone` copies all of it): other requests' tokens, and any seed
 * that passed through a pooled Buffer. So token parts must live in memory of their token's own,
 * and secret bytes must never pass through the pool.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  attenuate,
  exportPrivateJwk,
  formatToken,
  generateKeyPair,
  importPrivateJwk,
  mint,
  parseToken,
  publicKeyOf,
  readUnverifiedGrants,
  type KeyPair,
  type Token,
} from "@allowance/core";
import { encodeToken, fromBase64url, toBase64url } from "@allowance/core/format";
import { platform as nodePlatform } from "../src/platform/node.js";
import { platform as portablePlatform } from "../src/platform/portable.js";

const EXP = 2_000_000_000;

/** Whether `needle` occurs in `haystack`; plain loops, so the search itself copies nothing. */
function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

/** All the memory a byte array reaches: its whole buffer. */
const reach = (bytes: Uint8Array): Uint8Array => new Uint8Array(bytes.buffer);

/** Every Uint8Array a parsed token exposes, its decoded grants' included. */
function exposed(token: Token): Uint8Array[] {
  const arrays: Uint8Array[] = [token.rootKid];
  for (const link of token.links) arrays.push(link.payload, link.signature);
  for (const grant of readUnverifiedGrants(token)) arrays.push(grant.sub, grant.nonce);
  return arrays;
}

/** The memory is the array's alone, or exactly the binary form of its own token. */
function expectOwnMemory(bytes: Uint8Array, binary: Uint8Array): void {
  const whole = reach(bytes);
  if (bytes.byteOffset === 0 && whole.byteLength === bytes.byteLength) return;
  expect(whole).toEqual(binary);
}

async function chain(label: string, links: number): Promise<string> {
  const keys: KeyPair[] = [];
  for (let i = 0; i <= links; i++) keys.push(await generateKeyPair());
  let token = mint({
    rootKey: keys[0] as KeyPair,
    holder: publicKeyOf(keys[1] as KeyPair),
    grant: { exp: EXP, label },
  });
  for (let i = 1; i < links; i++)
    token = attenuate(token, {
      holderKey: keys[i] as KeyPair,
      holder: publicKeyOf(keys[i + 1] as KeyPair),
      grant: { tokens: 1000 - i },
    });
  return formatToken(token);
}

describe("a parsed token's byte strings", () => {
  it("reach only their own token's bytes, never another token parsed before", async () => {
    const alice = await chain("alice-secret-bearer", 3);
    const bob = await chain("bob", 2);
    parseToken(alice);
    const parsed = parseToken(bob);
    const binary = encodeToken(parsed);
    const aliceBinary = encodeToken(parseToken(alice));
    expect(formatToken(parsed)).toBe(bob);
    for (const bytes of exposed(parsed)) {
      expectOwnMemory(bytes, binary);
      expect(contains(reach(bytes), aliceBinary.subarray(0, 48))).toBe(false);
      // A copy for another thread or a cache takes the token, not a slab of other requests.
      expect(structuredClone(bytes).buffer.byteLength).toBeLessThanOrEqual(binary.length);
    }
  });

  it("from the binary form are as well", async () => {
    const text = await chain("binary", 2);
    const given = encodeToken(parseToken(text));
    const parsed = parseToken(given);
    for (const bytes of exposed(parsed)) expectOwnMemory(bytes, given);
  });

  it("never reach a private seed that was imported or exported before", async () => {
    const text = await chain("after-a-secret", 2);
    const secret = await generateKeyPair();
    const seed = Uint8Array.from(secret.privateKey);
    const jwk = exportPrivateJwk(secret);
    const imported = await importPrivateJwk(jwk);
    expect(imported.privateKey).toEqual(seed);
    const parsed = parseToken(text);
    const reached = [...exposed(parsed), fromBase64url("AAAA") as Uint8Array];
    // Whatever Buffer's pool holds now is what the next pooled allocation anywhere would expose.
    reached.push(Buffer.from("x"), Buffer.from([1, 2, 3]), Buffer.from("AAAA", "base64url"));
    for (const bytes of reached) expect(contains(reach(bytes), seed)).toBe(false);
  });

  it("encoding a seed leaves it in no pooled Buffer", async () => {
    for (let i = 0; i < 20; i++) {
      const secret = await generateKeyPair();
      const seed = Uint8Array.from(secret.privateKey);
      expect(toBase64url(secret.privateKey)).toBe(exportPrivateJwk(secret).d);
      expect(contains(reach(Buffer.from("y")), seed)).toBe(false);
    }
  });
});

describe.each([nodePlatform, portablePlatform].map((p) => [p.name, p] as const))(
  "fromBase64url on the %s platform",
  (_name, platform) => {
    it("returns an array that owns exactly its bytes, for any length", () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
          const decoded = platform.fromBase64url(platform.toBase64url(bytes)) as Uint8Array;
          expect(decoded).toEqual(bytes);
          expect(decoded.byteOffset).toBe(0);
          expect(decoded.buffer.byteLength).toBe(bytes.length);
        }),
        { numRuns: 500 },
      );
    });

    it.each(["A", "AAAAA", "AA==", "AB", "A+/A", "AA A", "é", "AAA\u0000"])(
      "still refuses the non-canonical text %j",
      (text) => {
        expect(platform.fromBase64url(text)).toBeUndefined();
      },
    );
  },
);
