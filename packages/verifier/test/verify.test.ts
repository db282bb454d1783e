/**
 * Offline chain verification (spec/format.md §8). Chains that `attenuate` would never produce are
 * built by hand — encodePayload, signingInput and the holder key's own signature — because a
 * verifier must not rely on the minting side having checked anything.
 */
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import {
  attenuate,
  formatToken,
  keyPairFromSeed,
  kidOf,
  linkIds,
  mint,
  nobleBackend,
  parseToken,
  trustedRoots,
  type ErrorCode,
  type GrantFields,
  type KeyPair,
  type Link,
  type LinkGrant,
  type Token,
} from "@allowance/core";
import {
  TOKEN_PREFIX,
  concatBytes,
  encodeCanonical,
  encodePayload,
  encodeToken,
  fromBase64url,
  parentDigest,
  signingInput,
  toBase64url,
} from "@allowance/core/format";
import { nodeBackend } from "@allowance/core/node";
import { AllowanceError, safeVerify, verify, type VerifyOptions } from "@allowance/verifier";

const NOW = 1_700_000_000;
const HOUR = 3600;

let root: KeyPair;
let otherRoot: KeyPair;
let k: KeyPair[] = [];
beforeAll(async () => {
  root = await keyPairFromSeed(new Uint8Array(32).fill(0xa0));
  otherRoot = await keyPairFromSeed(new Uint8Array(32).fill(0xa1));
  k = await Promise.all(
    Array.from({ length: 8 }, (_, i) => keyPairFromSeed(new Uint8Array(32).fill(i + 1))),
  );
});
const holder = (i: number): KeyPair => k[i] as KeyPair;
const options = (extra: Partial<VerifyOptions> = {}): VerifyOptions => ({
  roots: trustedRoots([root]),
  now: () => NOW * 1000,
  ...extra,
});
const nonce = (i: number): Uint8Array => new Uint8Array(8).fill(i);
const L = 2n ** 252n + 27742317777372353535851937790883648493n;

/** The AllowanceError that verify raises; fails the test on success or on any other exception. */
function rejection(
  token: string | Uint8Array | Token,
  opts: VerifyOptions = options(),
): AllowanceError {
  const result = safeVerify(token, opts);
  if (result.ok) throw new Error("expected verify to reject the token");
  return result.error;
}
function expectRejection(
  token: string | Uint8Array | Token,
  code: ErrorCode,
  linkIndex: number | undefined,
  opts?: VerifyOptions,
): AllowanceError {
  const error = rejection(token, opts);
  expect({ code: error.code, linkIndex: error.linkIndex }).toEqual({ code, linkIndex });
  return error;
}

const mintFor = (grant: GrantFields, to = 1, n = 0): Token =>
  mint({ rootKey: root, holder: holder(to).publicKey, grant, nonce: nonce(n) });
const extend = (token: Token, from: number, to: number, grant: GrantFields = {}, n = 0): Token =>
  attenuate(token, {
    holderKey: holder(from),
    holder: holder(to).publicKey,
    grant,
    nonce: nonce(n),
  });

/** A link signed by `signer` over `payload`, bound to the token's last link — no checks at all. */
function appendByHand(token: Token, signer: KeyPair, payload: Uint8Array | LinkGrant): Token {
  const bytes = payload instanceof Uint8Array ? payload : encodePayload(payload);
  const last = token.links[token.links.length - 1] as Link;
  const signature = nodeBackend.sign(signer.privateKey, signingInput(parentDigest(last), bytes));
  return { rootKid: token.rootKid, links: [...token.links, { payload: bytes, signature }] };
}
/** A one-link token whose root link is `payload`, signed by `signer` under the root's kid. */
function rootByHand(payload: Uint8Array | LinkGrant, signer: KeyPair = root): Token {
  const bytes = payload instanceof Uint8Array ? payload : encodePayload(payload);
  const rootKid = fromBase64url(root.kid) as Uint8Array;
  return {
    rootKid,
    links: [
      {
        payload: bytes,
        signature: nodeBackend.sign(signer.privateKey, signingInput(rootKid, bytes)),
      },
    ],
  };
}
const withLinks = (token: Token, links: readonly Link[]): Token => ({
  rootKid: token.rootKid,
  links,
});
const linkAt = (token: Token, i: number): Link => token.links[i] as Link;

/** root → holder 1 → holder 2 → holder 3, all valid now. */
function chain3(rootGrant: GrantFields = { exp: NOW + HOUR }): Token {
  return extend(extend(mintFor(rootGrant), 1, 2, {}, 1), 2, 3, {}, 2);
}

describe("round trip", () => {
  // Every list already in canonical order (shorter first, then bytewise), as verify returns it.
  const FULL: GrantFields = {
    exp: NOW + HOUR,
    nbf: NOW - HOUR,
    depth: 4,
    tokens: 1_000_000,
    usdMicros: 5_000_000_000,
    providers: [
      { name: "video", usdMicros: 50_000_000 },
      { name: "openai", tokens: 500_000, usdMicros: 4_294_967_297 },
      { name: "search" },
    ],
    models: ["o3", "gpt-4o", "claude-sonnet-4"],
    tools: ["*"],
    risk: 25,
    rate: [
      { seconds: 60, requests: 60 },
      { seconds: 3600, tokens: 100_000, usdMicros: 2_000_000, requests: 1000 },
    ],
    aud: ["api.a", "https://tools.example/mcp"],
    label: "run 42 — orchestrator",
  };

  it("returns every field a root states, unchanged", () => {
    const chain = verify(formatToken(mintFor(FULL, 1, 7)), options());
    expect(chain.links[0]?.grant).toEqual({ ...FULL, sub: holder(1).publicKey, nonce: nonce(7) });
    expect(chain.grant).toEqual({ ...FULL, holder: holder(1).publicKey });
    expect(chain.rootKid).toBe(root.kid);
    expect(chain.holder).toEqual(holder(1).publicKey);
  });

  it("returns every field an attenuated child states, and folds the parent's into its effective grant", () => {
    const narrower: GrantFields = {
      exp: NOW + 60,
      nbf: NOW - 60,
      depth: 2,
      tokens: 10,
      usdMicros: 4_294_967_296,
      providers: [{ name: "openai", tokens: 1 }],
      models: ["o3"],
      tools: ["search.web"],
      risk: 1,
      rate: [{ seconds: 1, requests: 1 }],
      aud: ["api.a"],
      label: "sub-agent",
    };
    const chain = verify(extend(mintFor(FULL), 1, 2, narrower, 3), options());
    expect(chain.links[1]?.grant).toEqual({
      ...narrower,
      sub: holder(2).publicKey,
      nonce: nonce(3),
    });
    expect(chain.grant).toEqual({
      ...narrower,
      providers: [{ name: "openai", tokens: 1, usdMicros: 4_294_967_297 }],
      rate: [...(FULL.rate ?? []), { seconds: 1, requests: 1 }],
      holder: holder(2).publicKey,
    });
  });

  it("verifies the string, binary and parsed forms to the same chain", () => {
    const token = chain3();
    const fromString = verify(formatToken(token), options());
    expect(verify(encodeToken(token), options())).toEqual(fromString);
    expect(verify(parseToken(formatToken(token)), options())).toEqual(fromString);
    expect(fromString.linkIds).toEqual(linkIds(token));
    expect(fromString.links.map((l) => l.index)).toEqual([0, 1, 2]);
    expect(fromString.holder).toEqual(holder(3).publicKey);
  });

  it("verifies the same chain with the noble backend", () => {
    const token = chain3();
    expect(verify(token, options({ backend: nobleBackend }))).toEqual(verify(token, options()));
  });

  it("returns a result value from safeVerify instead of throwing", () => {
    expect(safeVerify(chain3(), options()).ok).toBe(true);
    const result = safeVerify("alw1_", options());
    expect(result.ok).toBe(false);
  });
});

describe("a child that widens, signed by hand", () => {
  const PARENT: GrantFields = {
    exp: NOW + HOUR,
    nbf: NOW - HOUR,
    depth: 3,
    tokens: 1000,
    usdMicros: 5_000_000_000,
    providers: [{ name: "openai", tokens: 500, usdMicros: 100 }, { name: "search" }],
    models: ["gpt-4o", "claude"],
    tools: ["search.*", "fs.read"],
    risk: 10,
    aud: ["https://a.example", "https://b.example"],
  };
  it.each<[string, GrantFields]>([
    ["exp", { exp: NOW + HOUR + 1 }],
    ["nbf", { nbf: NOW - HOUR - 1 }],
    ["depth", { depth: 3 }],
    ["tokens", { tokens: 1001 }],
    ["usdMicros", { usdMicros: 5_000_000_001 }],
    ["risk", { risk: 11 }],
    ["providers", { providers: [{ name: "video" }] }],
    ["providers.openai.tokens", { providers: [{ name: "openai", tokens: 501 }] }],
    ["providers.openai.usdMicros", { providers: [{ name: "openai", usdMicros: 101 }] }],
    ["models", { models: ["gpt-5"] }],
    ["tools", { tools: ["fs.*"] }],
    ["aud", { aud: ["https://c.example"] }],
  ])("is rejected with ERR_WIDENED naming %s", (field, wider) => {
    const token = appendByHand(mintFor(PARENT), holder(1), {
      ...wider,
      sub: holder(2).publicKey,
      nonce: nonce(1),
    });
    const error = expectRejection(token, "ERR_WIDENED", 1);
    expect(error.field).toBe(field);
    expect(error.violations.map((v) => v.field)).toEqual([field]);
  });

  it("is rejected at its own index deeper in the chain", () => {
    const token = appendByHand(extend(mintFor(PARENT), 1, 2, { tokens: 5 }), holder(2), {
      tokens: 6,
      sub: holder(3).publicKey,
      nonce: nonce(2),
    });
    expect(expectRejection(token, "ERR_WIDENED", 2).field).toBe("tokens");
  });
});

describe("signatures", () => {
  it("rejects a link signed by a key other than its parent's holder", () => {
    const token = appendByHand(mintFor({ exp: NOW + HOUR }), root, {
      sub: holder(2).publicKey,
      nonce: nonce(1),
    });
    expectRejection(token, "ERR_SIGNATURE", 1);
  });

  it("rejects a link signed by its grandparent's holder", () => {
    const token = appendByHand(extend(mintFor({ exp: NOW + HOUR }), 1, 2), holder(1), {
      sub: holder(3).publicKey,
      nonce: nonce(1),
    });
    expectRejection(token, "ERR_SIGNATURE", 2);
  });

  it("rejects a root link signed by a key other than the trusted root its kid names", () => {
    expectRejection(
      rootByHand({ exp: NOW + HOUR, sub: holder(1).publicKey, nonce: nonce(1) }, holder(1)),
      "ERR_SIGNATURE",
      0,
    );
  });

  it("rejects a token whose root kid is swapped for another trusted root's", () => {
    const token = {
      ...mintFor({ exp: NOW + HOUR }),
      rootKid: fromBase64url(otherRoot.kid) as Uint8Array,
    };
    expectRejection(token, "ERR_SIGNATURE", 0, options({ roots: trustedRoots([root, otherRoot]) }));
  });

  it("rejects reordered links at the first link out of place", () => {
    const token = chain3();
    expectRejection(
      withLinks(token, [linkAt(token, 0), linkAt(token, 2), linkAt(token, 1)]),
      "ERR_SIGNATURE",
      1,
    );
  });

  it("rejects a chain with its middle link dropped", () => {
    const token = chain3();
    expectRejection(withLinks(token, [linkAt(token, 0), linkAt(token, 2)]), "ERR_SIGNATURE", 1);
  });

  it("rejects a chain with a link duplicated", () => {
    const token = chain3();
    expectRejection(
      withLinks(token, [linkAt(token, 0), linkAt(token, 1), linkAt(token, 1), linkAt(token, 2)]),
      "ERR_SIGNATURE",
      2,
    );
    expectRejection(
      withLinks(token, [linkAt(token, 0), linkAt(token, 0), linkAt(token, 1)]),
      "ERR_SIGNATURE",
      1,
    );
  });

  it("rejects a link spliced under another parent with the same holder", () => {
    const a = extend(mintFor({ exp: NOW + HOUR }, 1, 1), 1, 2);
    const b = extend(mintFor({ exp: NOW + HOUR }, 1, 2), 1, 2);
    expectRejection(withLinks(a, [linkAt(a, 0), linkAt(b, 1)]), "ERR_SIGNATURE", 1);
  });

  it.each([0, 1, 2])("rejects the S + L malleation of link %i's signature", (index) => {
    const token = chain3();
    const links = token.links.map((link, i) => {
      if (i !== index) return link;
      const signature = Uint8Array.from(link.signature);
      let s = 0n;
      for (let j = 63; j >= 32; j--) s = (s << 8n) | BigInt(signature[j] as number);
      s += L;
      for (let j = 32; j < 64; j++) {
        signature[j] = Number(s & 0xffn);
        s >>= 8n;
      }
      return { payload: link.payload, signature };
    });
    expectRejection(withLinks(token, links), "ERR_SIGNATURE", index);
  });

  it("checks the signature before reading the payload", () => {
    const token = chain3();
    const garbage = withLinks(token, [
      linkAt(token, 0),
      { payload: Uint8Array.of(0xf5, 0xff), signature: linkAt(token, 1).signature },
    ]);
    expectRejection(garbage, "ERR_SIGNATURE", 1);
  });
});

describe("validity window", () => {
  const EXP = [NOW + 3000, NOW + 2000, NOW + 1000] as const;
  const NBF = [NOW - 3000, NOW - 2000, NOW - 1000] as const;
  const timed = (): Token =>
    extend(
      extend(mintFor({ exp: EXP[0], nbf: NBF[0] }), 1, 2, { exp: EXP[1], nbf: NBF[1] }),
      2,
      3,
      { exp: EXP[2], nbf: NBF[2] },
    );

  it.each([0, 1, 2] as const)(
    "rejects a chain whose link %i has expired with ERR_EXPIRED at that link",
    (index) => {
      const error = expectRejection(
        timed(),
        "ERR_EXPIRED",
        index,
        options({ now: () => (EXP[index] + 60) * 1000 }),
      );
      expect(error.field).toBe("exp");
    },
  );

  it.each([0, 1, 2] as const)(
    "rejects a chain whose link %i is not yet valid with ERR_NOT_YET_VALID at that link",
    (index) => {
      const error = expectRejection(
        timed(),
        "ERR_NOT_YET_VALID",
        index,
        options({ now: () => (NBF[index] - 61) * 1000 }),
      );
      expect(error.field).toBe("nbf");
    },
  );

  it("honours the default skew of 60 seconds on exp", () => {
    expect(safeVerify(timed(), options({ now: () => (EXP[2] + 59) * 1000 })).ok).toBe(true);
    expectRejection(timed(), "ERR_EXPIRED", 2, options({ now: () => (EXP[2] + 60) * 1000 }));
  });

  it("honours the default skew of 60 seconds on nbf", () => {
    expect(safeVerify(timed(), options({ now: () => (NBF[2] - 60) * 1000 })).ok).toBe(true);
    expectRejection(timed(), "ERR_NOT_YET_VALID", 2, options({ now: () => (NBF[2] - 61) * 1000 }));
  });

  it("honours a skew of zero: expired at exp, valid from nbf", () => {
    expectRejection(
      timed(),
      "ERR_EXPIRED",
      2,
      options({ now: () => EXP[2] * 1000, skewSeconds: 0 }),
    );
    expect(
      safeVerify(timed(), options({ now: () => (EXP[2] - 1) * 1000, skewSeconds: 0 })).ok,
    ).toBe(true);
    expect(safeVerify(timed(), options({ now: () => NBF[2] * 1000, skewSeconds: 0 })).ok).toBe(
      true,
    );
    expectRejection(
      timed(),
      "ERR_NOT_YET_VALID",
      2,
      options({ now: () => (NBF[2] - 1) * 1000, skewSeconds: 0 }),
    );
  });

  it("honours a larger skew", () => {
    expect(
      safeVerify(timed(), options({ now: () => (EXP[2] + 299) * 1000, skewSeconds: 300 })).ok,
    ).toBe(true);
    expectRejection(
      timed(),
      "ERR_EXPIRED",
      2,
      options({ now: () => (EXP[2] + 300) * 1000, skewSeconds: 300 }),
    );
  });

  it("takes the clock as a Date", () => {
    expect(safeVerify(timed(), options({ now: () => new Date(NOW * 1000).getTime() })).ok).toBe(
      true,
    );
    expectRejection(
      timed(),
      "ERR_EXPIRED",
      0,
      options({ now: () => new Date((EXP[0] + 60) * 1000).getTime() }),
    );
  });

  it("refuses a negative skew or a clock that is not a number with a RangeError", () => {
    expect(() => verify(timed(), options({ skewSeconds: -1 }))).toThrow(RangeError);
    expect(() => verify(timed(), options({ now: () => Number.NaN * 1000 }))).toThrow(RangeError);
  });
});

describe("depth", () => {
  it("rejects a hand-built child of a root with depth 0 with ERR_DEPTH", () => {
    const token = appendByHand(mintFor({ exp: NOW + HOUR, depth: 0 }), holder(1), {
      sub: holder(2).publicKey,
      nonce: nonce(1),
    });
    expect(expectRejection(token, "ERR_DEPTH", 1).field).toBe("depth");
  });

  it("rejects a hand-built link below the last one the depth allows with ERR_DEPTH", () => {
    const token = appendByHand(extend(mintFor({ exp: NOW + HOUR, depth: 1 }), 1, 2), holder(2), {
      sub: holder(3).publicKey,
      nonce: nonce(1),
    });
    expectRejection(token, "ERR_DEPTH", 2);
  });
});

describe("roots", () => {
  it("rejects a token from a root that is not trusted with ERR_UNKNOWN_ROOT", () => {
    expectRejection(chain3(), "ERR_UNKNOWN_ROOT", 0, options({ roots: trustedRoots([otherRoot]) }));
    expectRejection(chain3(), "ERR_UNKNOWN_ROOT", 0, options({ roots: new Map() }));
  });

  it("rejects a trusted root whose key has small order with ERR_KEY", async () => {
    const identity = Uint8Array.from([1, ...new Array<number>(31).fill(0)]);
    // Named by its own thumbprint, so that it passes the root lookup (spec/format.md §8.2).
    const kid = await kidOf(identity);
    const roots = new Map([[kid, { kid, bytes: identity }]]);
    const token = { ...chain3(), rootKid: fromBase64url(kid) as Uint8Array };
    expectRejection(token, "ERR_KEY", 0, options({ roots }));
  });

  it("refuses roots that are not a Map with a TypeError", () => {
    expect(() => verify(chain3(), { roots: {} as unknown as VerifyOptions["roots"] })).toThrow(
      TypeError,
    );
  });
});

/** Just enough CBOR to write non-canonical payloads by hand. */
const cbor = {
  head(major: number, n: number): Uint8Array {
    if (n < 24) return Uint8Array.of((major << 5) | n);
    if (n < 0x100) return Uint8Array.of((major << 5) | 24, n);
    if (n < 0x10000) return Uint8Array.of((major << 5) | 25, n >> 8, n & 0xff);
    return Uint8Array.of(
      (major << 5) | 26,
      n >>> 24,
      (n >>> 16) & 0xff,
      (n >>> 8) & 0xff,
      n & 0xff,
    );
  },
  uint: (n: number): Uint8Array => cbor.head(0, n),
  bytes: (b: Uint8Array): Uint8Array => concatBytes(cbor.head(2, b.length), b),
  text: (s: string): Uint8Array => {
    const b = new TextEncoder().encode(s);
    return concatBytes(cbor.head(3, b.length), b);
  },
  array: (...items: Uint8Array[]): Uint8Array => concatBytes(cbor.head(4, items.length), ...items),
  map: (...entries: [Uint8Array, Uint8Array][]): Uint8Array =>
    concatBytes(cbor.head(5, entries.length), ...entries.flat()),
};

describe("non-canonical payloads, correctly signed", () => {
  const sub = (): [Uint8Array, Uint8Array] => [cbor.uint(1), cbor.bytes(holder(1).publicKey)];
  const nonceEntry = (): [Uint8Array, Uint8Array] => [cbor.uint(2), cbor.bytes(nonce(1))];
  const exp = (): [Uint8Array, Uint8Array] => [cbor.uint(3), cbor.uint(NOW + HOUR)];

  it("are told apart from the canonical payload, which the hand-written CBOR reproduces exactly", () => {
    const canonical = cbor.map(sub(), nonceEntry(), exp());
    expect(canonical).toEqual(
      encodePayload({ exp: NOW + HOUR, sub: holder(1).publicKey, nonce: nonce(1) }),
    );
    expect(safeVerify(rootByHand(canonical), options()).ok).toBe(true);
  });

  it.each<[string, () => Uint8Array]>([
    ["map keys out of order", () => cbor.map(nonceEntry(), sub(), exp())],
    ["a duplicate map key", () => cbor.map(sub(), nonceEntry(), exp(), exp())],
    [
      "exp in eight bytes",
      () =>
        cbor.map(sub(), nonceEntry(), [
          cbor.uint(3),
          concatBytes(Uint8Array.of(0x1b, 0, 0, 0, 0), cbor.uint(NOW + HOUR).subarray(1)),
        ]),
    ],
    [
      "exp as a float",
      () =>
        cbor.map(sub(), nonceEntry(), [
          cbor.uint(3),
          Uint8Array.of(0xfb, ...new Uint8Array(new Float64Array([NOW + HOUR]).buffer).reverse()),
        ]),
    ],
    [
      "an indefinite-length map",
      () =>
        concatBytes(Uint8Array.of(0xbf), ...sub(), ...nonceEntry(), ...exp(), Uint8Array.of(0xff)),
    ],
    [
      "models out of canonical order",
      () =>
        cbor.map(sub(), nonceEntry(), exp(), [
          cbor.uint(9),
          cbor.array(cbor.text("bb"), cbor.text("a")),
        ]),
    ],
    [
      "rate windows out of canonical order",
      () =>
        cbor.map(sub(), nonceEntry(), exp(), [
          cbor.uint(12),
          cbor.array(
            cbor.map([cbor.uint(1), cbor.uint(60)], [cbor.uint(4), cbor.uint(2)]),
            cbor.map([cbor.uint(1), cbor.uint(1)], [cbor.uint(4), cbor.uint(2)]),
          ),
        ]),
    ],
    [
      "provider names out of canonical order",
      () =>
        cbor.map(sub(), nonceEntry(), exp(), [
          cbor.uint(8),
          cbor.map([cbor.text("openai"), cbor.map()], [cbor.text("video"), cbor.map()]),
        ]),
    ],
  ])("are rejected with ERR_NON_CANONICAL: %s", (_name, payload) => {
    expectRejection(rootByHand(payload()), "ERR_NON_CANONICAL", 0);
  });

  it("are rejected with ERR_NON_CANONICAL at the index of the link that carries them", () => {
    const payload = cbor.map(
      [cbor.uint(2), cbor.bytes(nonce(2))],
      [cbor.uint(1), cbor.bytes(holder(3).publicKey)],
    );
    expectRejection(
      appendByHand(extend(mintFor({ exp: NOW + HOUR }), 1, 2), holder(2), payload),
      "ERR_NON_CANONICAL",
      2,
    );
  });

  it.each<[string, () => Uint8Array]>([
    [
      "an unknown payload key",
      () => cbor.map(sub(), nonceEntry(), exp(), [cbor.uint(15), cbor.uint(0)]),
    ],
    ["no holder key", () => cbor.map(nonceEntry(), exp())],
    ["a root without exp", () => cbor.map(sub(), nonceEntry())],
    ["a payload that is not a map", () => cbor.array(cbor.uint(1))],
  ])("are rejected with ERR_MALFORMED when canonical but not a grant: %s", (_name, payload) => {
    expectRejection(rootByHand(payload()), "ERR_MALFORMED", 0);
  });
});

describe("limits", () => {
  it("rejects a string form longer than maxTokenChars before decoding it", () => {
    const error = expectRejection(TOKEN_PREFIX + "A".repeat(24_000), "ERR_LIMIT", undefined);
    expect({ limit: error.limit, actual: error.actual }).toEqual({ limit: 24_000, actual: 24_005 });
    const token = formatToken(chain3());
    expect(
      expectRejection(token, "ERR_LIMIT", undefined, options({ limits: { maxTokenChars: 100 } }))
        .actual,
    ).toBe(token.length);
  });

  it("rejects a binary form longer than maxTokenBytes before decoding it", () => {
    expect(expectRejection(new Uint8Array(16_385).fill(0xff), "ERR_LIMIT", undefined).limit).toBe(
      16_384,
    );
    const bytes = encodeToken(chain3());
    expect(
      expectRejection(bytes, "ERR_LIMIT", undefined, options({ limits: { maxTokenBytes: 100 } }))
        .actual,
    ).toBe(bytes.length);
  });

  it("rejects more links than maxLinks before checking any signature", () => {
    const token = chain3();
    const error = expectRejection(
      token,
      "ERR_LIMIT",
      undefined,
      options({ limits: { maxLinks: 2 } }),
    );
    expect({ limit: error.limit, actual: error.actual }).toEqual({ limit: 2, actual: 3 });
    const long = withLinks(token, new Array<Link>(33).fill(linkAt(token, 0)));
    expect(expectRejection(encodeToken(long), "ERR_LIMIT", undefined).actual).toBe(33);
  });

  it("rejects a payload longer than maxPayloadBytes", () => {
    const token = chain3();
    const error = expectRejection(
      encodeToken(token),
      "ERR_LIMIT",
      0,
      options({ limits: { maxPayloadBytes: 40 } }),
    );
    expect(error.actual).toBe(linkAt(token, 0).payload.length);
  });

  it("rejects a list longer than maxListLength, signed by hand past mint's own check", () => {
    const models = Array.from({ length: 65 }, (_, i) => `m${i}`);
    const error = expectRejection(
      rootByHand({ exp: NOW + HOUR, models, sub: holder(1).publicKey, nonce: nonce(1) }),
      "ERR_LIMIT",
      0,
    );
    expect({ field: error.field, limit: error.limit, actual: error.actual }).toEqual({
      field: "models",
      limit: 64,
      actual: 65,
    });
    const aud = expectRejection(
      chain3({ exp: NOW + HOUR, aud: ["a", "b", "c"] }),
      "ERR_LIMIT",
      0,
      options({ limits: { maxListLength: 2 } }),
    );
    expect(aud.field).toBe("aud");
  });

  it("rejects a string of more than maxStringBytes UTF-8 bytes, however few characters", () => {
    const label = "é".repeat(129);
    const error = expectRejection(
      rootByHand({ exp: NOW + HOUR, label, sub: holder(1).publicKey, nonce: nonce(1) }),
      "ERR_LIMIT",
      0,
    );
    expect({ field: error.field, limit: error.limit, actual: error.actual }).toEqual({
      field: "label",
      limit: 256,
      actual: 258,
    });
    const tool = expectRejection(
      chain3({ exp: NOW + HOUR, tools: ["search.web"] }),
      "ERR_LIMIT",
      0,
      options({ limits: { maxStringBytes: 5 } }),
    );
    expect(tool.field).toBe("tools");
  });

  it("refuses limits that are not positive integers with a RangeError", () => {
    expect(() => verify(chain3(), options({ limits: { maxLinks: 0 } }))).toThrow(RangeError);
  });
});

describe("holder keys", () => {
  const smallOrder = Uint8Array.from([1, ...new Array<number>(31).fill(0)]);
  const nonCanonical = Uint8Array.from([0xee, ...new Array<number>(30).fill(0xff), 0x7f]);

  it("rejects a small-order holder key in a hand-built root link with ERR_KEY", () => {
    const error = expectRejection(
      rootByHand({ exp: NOW + HOUR, sub: smallOrder, nonce: nonce(1) }),
      "ERR_KEY",
      0,
    );
    expect(error.field).toBe("sub");
  });

  it("rejects a small-order holder key in a hand-built middle link with ERR_KEY at that link", () => {
    const token = appendByHand(mintFor({ exp: NOW + HOUR }), holder(1), {
      sub: smallOrder,
      nonce: nonce(1),
    });
    expectRejection(token, "ERR_KEY", 1);
  });

  it("rejects a non-canonical holder key with ERR_KEY", () => {
    expectRejection(
      rootByHand({ exp: NOW + HOUR, sub: nonCanonical, nonce: nonce(1) }),
      "ERR_KEY",
      0,
    );
  });
});

describe("revocation", () => {
  it.each([0, 1, 2])(
    "rejects a chain whose link %i is revoked with ERR_REVOKED at that link",
    (index) => {
      const token = chain3();
      expectRejection(
        token,
        "ERR_REVOKED",
        index,
        options({ revocations: new Set([linkIds(token)[index] as string]) }),
      );
    },
  );

  it("revokes every descendant of a revoked link", () => {
    const token = chain3();
    const revocations = new Set([linkIds(token)[1] as string]);
    expectRejection(extend(token, 3, 4), "ERR_REVOKED", 1, options({ revocations }));
    const sibling = extend(withLinks(token, token.links.slice(0, 2)), 2, 5, {}, 9);
    expectRejection(sibling, "ERR_REVOKED", 1, options({ revocations }));
  });

  it("leaves ancestors and siblings of a revoked link valid", () => {
    const token = chain3();
    const revocations = new Set([linkIds(token)[2] as string]);
    expect(safeVerify(withLinks(token, token.links.slice(0, 2)), options({ revocations })).ok).toBe(
      true,
    );
    expect(
      safeVerify(
        extend(withLinks(token, token.links.slice(0, 2)), 2, 5, {}, 9),
        options({ revocations }),
      ).ok,
    ).toBe(true);
  });

  it("asks any object with has(linkId)", () => {
    const asked: string[] = [];
    const revocations = { has: (id: string) => (asked.push(id), false) };
    const token = chain3();
    expect(safeVerify(token, options({ revocations })).ok).toBe(true);
    expect(asked).toEqual(linkIds(token));
  });
});

describe("audience", () => {
  const scoped = (): Token => mintFor({ exp: NOW + HOUR, aud: ["api.a", "api.b"] });

  it("accepts an audience the token names", () => {
    expect(safeVerify(scoped(), options({ audience: "api.a" })).ok).toBe(true);
  });

  it("rejects an audience the token does not name with ERR_AUDIENCE", () => {
    expect(expectRejection(scoped(), "ERR_AUDIENCE", 0, options({ audience: "api.c" })).field).toBe(
      "aud",
    );
  });

  it("names the link that last narrowed the audience", () => {
    const token = extend(extend(scoped(), 1, 2, { aud: ["api.b"] }), 2, 3);
    expectRejection(token, "ERR_AUDIENCE", 1, options({ audience: "api.a" }));
  });

  it("accepts any audience when the token states none", () => {
    expect(safeVerify(chain3(), options({ audience: "anything" })).ok).toBe(true);
  });

  it("accepts a scoped token when the verifier names no audience", () => {
    expect(safeVerify(scoped(), options()).ok).toBe(true);
  });
});

describe("arbitrary input", () => {
  /** verify must throw an AllowanceError, and nothing else, for this input. */
  function rejectedCleanly(input: string | Uint8Array): ErrorCode {
    try {
      verify(input, options());
    } catch (error) {
      expect(error).toBeInstanceOf(AllowanceError);
      return (error as AllowanceError).code;
    }
    throw new Error("verify accepted arbitrary input");
  }

  it("law: random bytes are never accepted and raise only AllowanceError", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => void rejectedCleanly(bytes)),
      { numRuns: 5000 },
    );
  });

  it("law: random strings are never accepted and raise only AllowanceError", () => {
    const base64url = fc.string({
      unit: fc.constantFrom(..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
      maxLength: 600,
    });
    const strings = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.string({ unit: "binary", maxLength: 200 }).map((s) => TOKEN_PREFIX + s),
      base64url.map((s) => TOKEN_PREFIX + s),
      fc.uint8Array({ maxLength: 400 }).map((b) => TOKEN_PREFIX + toBase64url(b)),
    );
    fc.assert(
      fc.property(strings, (text) => void rejectedCleanly(text)),
      { numRuns: 5000 },
    );
  });

  it("law: well-formed tokens from a trusted root with random payloads and signatures are rejected", () => {
    const rootKid = fromBase64url(root.kid) as Uint8Array;
    const links = fc.array(
      fc.tuple(fc.uint8Array({ maxLength: 120 }), fc.uint8Array({ minLength: 64, maxLength: 64 })),
      { minLength: 1, maxLength: 4 },
    );
    fc.assert(
      fc.property(links, (pairs) => {
        const bytes = encodeCanonical([
          rootKid,
          ...pairs.map(([payload, signature]) => [payload, signature]),
        ]);
        expect(rejectedCleanly(bytes)).toBe("ERR_SIGNATURE");
      }),
      { numRuns: 1000 },
    );
  });

  it("law: a valid token with random bytes overwritten is rejected with an AllowanceError", () => {
    const bytes = encodeToken(chain3());
    const edits = fc.array(fc.tuple(fc.nat(bytes.length - 1), fc.integer({ min: 1, max: 255 })), {
      minLength: 1,
      maxLength: 8,
    });
    fc.assert(
      fc.property(edits, (changes) => {
        const copy = Uint8Array.from(bytes);
        for (const [at, xor] of changes) copy[at] = (copy[at] as number) ^ xor;
        if (copy.every((b, i) => b === bytes[i])) return; // the edits cancelled out
        rejectedCleanly(copy);
      }),
      { numRuns: 3000 },
    );
  });

  it("rejects every single-bit flip, complement, zeroing and 0xff of every byte of a valid three-link token", () => {
    const bytes = encodeToken(
      chain3({ exp: NOW + HOUR, usdMicros: 5_000_000_000, tools: ["search.*"], label: "flip" }),
    );
    expect(safeVerify(bytes, options()).ok).toBe(true);
    const codes = new Map<ErrorCode, number>();
    let count = 0;
    for (let at = 0; at < bytes.length; at++) {
      const original = bytes[at] as number;
      const values = new Set([
        0x00,
        0xff,
        original ^ 0xff,
        ...[0, 1, 2, 3, 4, 5, 6, 7].map((bit) => original ^ (1 << bit)),
      ]);
      values.delete(original);
      for (const value of values) {
        const copy = Uint8Array.from(bytes);
        copy[at] = value;
        const code = rejectedCleanly(copy);
        codes.set(code, (codes.get(code) ?? 0) + 1);
        count++;
      }
    }
    console.log(
      `single-byte changes of a ${bytes.length}-byte token: ${count} tried, ${count} rejected`,
      Object.fromEntries(codes),
    );
    expect(count).toBeGreaterThanOrEqual(bytes.length * 9);
  });
});
