/**
 * The attack suite: for valid tokens and presentations, every mutation an attacker can make is
 * refused with a typed error. Counts are printed so the closing notes can report them.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  formatToken,
  parseToken,
  publicKeyOf,
  readUnverifiedGrants,
  type ErrorCode,
  type KeyPair,
  type Link,
  type Token,
} from "@allowance/core";
import {
  decodeCanonical,
  encodeCanonical,
  encodePayload,
  encodeToken,
  fromBase64url,
  parentDigest,
  signingInput,
  toBase64url,
} from "@allowance/core/format";
import { nodeBackend } from "@allowance/core/node";
import {
  MemoryReplayCache,
  createVerifier,
  present,
  verify,
  verifyPresentation,
  withAllowance,
} from "@allowance/verifier";
import { buildChain, fiveLinkGrants, NOW, type Fixture } from "./support/chain.js";
import { outcome, outcomeAsync } from "./support/outcome.js";

const AUD = "https://tools.example/search";
let fx: Fixture;
let other: Fixture;
let bytes: Uint8Array;
const counts: Record<string, { tried: number; rejected: number }> = {};

function tally(kind: string, result: ErrorCode | "accepted"): void {
  const entry = (counts[kind] ??= { tried: 0, rejected: 0 });
  entry.tried++;
  if (result !== "accepted") entry.rejected++;
}

const check = (token: Token | Uint8Array | string) =>
  outcome(() => verify(token, { roots: fx.roots, now: () => NOW * 1000, audience: AUD }));

function relink(token: Token, links: readonly Link[]): Token {
  return { rootKid: token.rootKid, links };
}

/** A link appended by hand: any payload, signed with `signer` over the correct parent digest. */
function appendSigned(token: Token, signer: KeyPair, payload: Uint8Array): Token {
  const last = token.links[token.links.length - 1] as Link;
  return relink(token, [
    ...token.links,
    {
      payload,
      signature: nodeBackend.sign(signer.privateKey, signingInput(parentDigest(last), payload)),
    },
  ]);
}

beforeAll(async () => {
  fx = await buildChain(fiveLinkGrants());
  other = await buildChain(fiveLinkGrants());
  bytes = encodeToken(fx.token);
  expect(check(fx.token)).toBe("accepted");
});

afterAll(() => {
  const total = Object.values(counts).reduce((sum, c) => sum + c.tried, 0);
  const lines = Object.entries(counts).map(
    ([kind, c]) =>
      `  ${kind.padEnd(34)} ${String(c.tried).padStart(6)} tried, ${String(c.rejected).padStart(6)} rejected`,
  );
  console.log(`attack suite: ${total} mutations\n${lines.join("\n")}`);
});

const STRUCTURAL: readonly (ErrorCode | "accepted")[] = [
  "ERR_MALFORMED",
  "ERR_NON_CANONICAL",
  "ERR_LIMIT",
  "ERR_UNKNOWN_ROOT",
  "ERR_SIGNATURE",
  "ERR_KEY",
];

describe("the attack suite", () => {
  it("rejects every single-byte flip of a valid 5-link token", () => {
    for (let i = 0; i < bytes.length; i++) {
      for (const mask of [0x01, 0x80, 0xff]) {
        const mutated = Uint8Array.from(bytes);
        mutated[i] = (mutated[i] as number) ^ mask;
        const result = check(mutated);
        tally("byte flip", result);
        expect(STRUCTURAL, `byte ${i} ^ ${mask}`).toContain(result);
      }
    }
  });

  it("rejects every truncation of the binary and the string form", () => {
    const text = formatToken(fx.token);
    for (let n = 0; n < bytes.length; n++) {
      const result = check(bytes.subarray(0, n));
      tally("truncation (binary)", result);
      expect(STRUCTURAL).toContain(result);
    }
    for (let n = 0; n < text.length; n++) {
      const result = check(text.slice(0, n));
      tally("truncation (string)", result);
      expect(STRUCTURAL).toContain(result);
    }
  });

  it("rejects every reordering, removal and duplication of links", () => {
    const links = fx.token.links;
    const permutations = (items: readonly number[]): number[][] =>
      items.length <= 1
        ? [[...items]]
        : items.flatMap((x, i) =>
            permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [x, ...rest]),
          );
    for (const order of permutations([0, 1, 2, 3, 4])) {
      if (order.join() === "0,1,2,3,4") continue;
      const result = check(
        relink(
          fx.token,
          order.map((i) => links[i] as Link),
        ),
      );
      tally("reordering", result);
      expect(result).toBe("ERR_SIGNATURE");
    }
    for (let i = 0; i < links.length; i++) {
      const removed = links.filter((_, j) => j !== i);
      const result = check(relink(fx.token, removed));
      tally("removal", result);
      // Removing the leaf leaves a valid, shorter chain held by the leaf's parent: that is the
      // parent's own token, not a forgery. Every other removal breaks a signature.
      expect(result).toBe(i === links.length - 1 ? "accepted" : "ERR_SIGNATURE");
      for (let at = 0; at <= links.length; at++) {
        const duplicated = [...links.slice(0, at), links[i] as Link, ...links.slice(at)];
        const dup = check(relink(fx.token, duplicated));
        tally("duplication", dup);
        expect(dup).toBe("ERR_SIGNATURE");
      }
    }
  });

  it("rejects a link that widens its parent even when signed with the right holder key", () => {
    const grants = readUnverifiedGrants(fx.token);
    const fields = [
      { usdMicros: 200_000_000 },
      { providers: [{ name: "video" }] },
      { tools: ["*"] },
      { exp: NOW + 30 * 86400 },
      { aud: ["https://evil.example"] },
    ];
    for (const widened of fields) {
      const payload = encodePayload({
        ...widened,
        sub: publicKeyOf(fx.root).bytes,
        nonce: new Uint8Array(8),
      });
      const result = check(appendSigned(fx.token, fx.leaf, payload));
      tally("widened and re-signed", result);
      expect(result).toBe("ERR_WIDENED");
    }
    expect(grants).toHaveLength(5);
  });

  it("rejects a valid chain from another root, and one whose root kid was swapped to a trusted one", () => {
    expect(check(other.token)).toBe("ERR_UNKNOWN_ROOT");
    expect(check(relink({ rootKid: fx.token.rootKid, links: [] }, other.token.links))).toBe(
      "ERR_SIGNATURE",
    );
    tally("foreign root", "ERR_UNKNOWN_ROOT");
    tally("foreign root", "ERR_SIGNATURE");
  });

  it("rejects a malleated signature (S + L) on every link", () => {
    const L = 2n ** 252n + 27742317777372353535851937790883648493n;
    fx.token.links.forEach((link, index) => {
      let s = 0n;
      for (let j = 63; j >= 32; j--) s = (s << 8n) | BigInt(link.signature[j] as number);
      s += L;
      const signature = Uint8Array.from(link.signature);
      for (let j = 32; j < 64; j++, s >>= 8n) signature[j] = Number(s & 0xffn);
      const links = fx.token.links.map((l, i) =>
        i === index ? { payload: l.payload, signature } : l,
      );
      const result = outcome(() =>
        verify(relink(fx.token, links), { roots: fx.roots, now: () => NOW * 1000 }),
      );
      tally("malleated signature", result);
      expect(result).toBe("ERR_SIGNATURE");
    });
  });

  it("rejects a link that names a small-order holder key", () => {
    const smallOrder = [
      "0100000000000000000000000000000000000000000000000000000000000000",
      "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
      "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    ];
    for (const hex of smallOrder) {
      const payload = encodePayload({
        sub: Uint8Array.from(Buffer.from(hex, "hex")),
        nonce: new Uint8Array(8),
      });
      const result = check(appendSigned(fx.token, fx.leaf, payload));
      tally("small-order holder", result);
      expect(result).toBe("ERR_KEY");
    }
  });

  it("rejects replayed presentations, presentations for another audience, and flipped presentations", async () => {
    const replay = new MemoryReplayCache();
    const options = { roots: fx.roots, audience: AUD, now: () => NOW * 1000, replay };
    const p = present(fx.token, fx.leaf, { aud: AUD, now: () => NOW * 1000 });
    expect(await outcomeAsync(() => verifyPresentation(p, options))).toBe("accepted");
    const replayed = await outcomeAsync(() => verifyPresentation(p, options));
    tally("replayed presentation", replayed);
    expect(replayed).toBe("ERR_REPLAY");
    const elsewhere = await outcomeAsync(() =>
      verifyPresentation(
        present(fx.token, fx.leaf, { aud: "https://tools.example/email", now: () => NOW * 1000 }),
        options,
      ),
    );
    tally("presentation for another audience", elsewhere);
    expect(elsewhere).toBe("ERR_AUDIENCE");
    const stolen = await outcomeAsync(() =>
      verifyPresentation(
        present(fx.token, fx.holders[3] as KeyPair, { aud: AUD, now: () => NOW * 1000 }),
        options,
      ),
    );
    tally("presentation by an ancestor", stolen);
    expect(stolen).toBe("ERR_PRESENTATION");

    const fresh = present(fx.token, fx.leaf, { aud: AUD, now: () => NOW * 1000 });
    const body = fromBase64url(fresh.slice(6)) as Uint8Array;
    for (let i = 0; i < body.length; i++) {
      const mutated = Uint8Array.from(body);
      mutated[i] = (mutated[i] as number) ^ 0x01;
      const result = await outcomeAsync(() =>
        verifyPresentation("alwp1_" + toBase64url(mutated), {
          ...options,
          replay: new MemoryReplayCache(),
        }),
      );
      tally("presentation byte flip", result);
      expect(result).not.toBe("accepted");
    }
  });

  it("a cached verifier rejects every byte flip too", () => {
    const verifier = createVerifier({ roots: fx.roots });
    verifier.verify(fx.token, { now: () => NOW * 1000 });
    for (let i = 0; i < bytes.length; i += 1) {
      const mutated = Uint8Array.from(bytes);
      mutated[i] = (mutated[i] as number) ^ 0x01;
      const result = outcome(() => verifier.verify(mutated, { now: () => NOW * 1000 }));
      tally("byte flip (warm prefix cache)", result);
      expect(result).not.toBe("accepted");
    }
  });
});

describe("fuzzing", () => {
  it("verify gives only typed errors for arbitrary bytes and strings, and accepts none", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 2048 }),
          fc.string({ maxLength: 3000 }),
          fc.string({ maxLength: 3000 }).map((s) => "alw1_" + s),
        ),
        (input) => {
          const result = check(input);
          tally("fuzz: random input", result);
          expect(result).not.toBe("accepted");
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("verify gives only typed errors for mutated tokens, and accepts only the original bytes", () => {
    const mutation = fc.array(
      fc.tuple(fc.nat({ max: bytes.length - 1 }), fc.integer({ min: 1, max: 255 })),
      { minLength: 1, maxLength: 8 },
    );
    fc.assert(
      fc.property(mutation, fc.nat({ max: bytes.length }), (flips, cut) => {
        const mutated = Uint8Array.from(bytes.subarray(0, Math.max(cut, bytes.length - 4)));
        for (const [at, value] of flips)
          if (at < mutated.length) mutated[at] = (mutated[at] as number) ^ value;
        const result = check(mutated);
        tally("fuzz: mutated token", result);
        if (result === "accepted")
          expect(Buffer.compare(Buffer.from(mutated), Buffer.from(bytes))).toBe(0);
      }),
      { numRuns: 1500 },
    );
  });

  it("re-encoded CBOR structures with valid signatures are typed errors or exact originals", () => {
    const decoded = decodeCanonical(bytes) as unknown[];
    fc.assert(
      fc.property(
        fc.nat({ max: decoded.length }),
        fc.uint8Array({ minLength: 0, maxLength: 64 }),
        (index, junk) => {
          const parts = [...decoded] as Uint8Array[];
          parts.splice(index, 0, junk);
          const result = check(encodeCanonical(parts));
          tally("fuzz: inserted element", result);
          expect(result).not.toBe("accepted");
        },
      ),
      { numRuns: 300 },
    );
  });

  it("the middleware answers every arbitrary Authorization header with 401 or 403 and a typed code", async () => {
    const handler = withAllowance(() => new Response("ok"), {
      roots: fx.roots,
      audience: AUD,
      now: () => NOW * 1000,
      replay: new MemoryReplayCache(),
    });
    const token = formatToken(fx.token);
    const headers = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.string({ maxLength: 500 }).map((s) => `Allowance ${s}`),
      fc.string({ maxLength: 500 }).map((s) => `Allowance alwp1_${s}`),
      fc
        .tuple(fc.nat({ max: token.length - 1 }), fc.constantFrom(..."ABCxyz019_-"))
        .map(([i, c]) => `Allowance ${token.slice(0, i)}${c}${token.slice(i + 1)}`),
    );
    await fc.assert(
      fc.asyncProperty(headers, async (header) => {
        let request: Request;
        try {
          request = new Request("http://127.0.0.1/search", {
            method: "POST",
            headers: { authorization: header },
          });
        } catch {
          return; // not a header value HTTP can carry
        }
        const response = await handler(request);
        tally("fuzz: middleware header", response.status === 200 ? "accepted" : "ERR_MALFORMED");
        expect([401, 403]).toContain(response.status);
        const body = (await response.json()) as { code: string };
        expect(body.code).toMatch(/^ERR_[A-Z_]+$/);
      }),
      { numRuns: 800 },
    );
  });
});

describe("parseToken", () => {
  it("accepts the untouched token", () => {
    expect(parseToken(bytes).links).toHaveLength(5);
  });
});
