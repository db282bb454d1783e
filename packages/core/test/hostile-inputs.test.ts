/**
 * Hostile limit and amount arguments of @allowance/core (spec/format.md §7, §10). The law for every
 * public function that takes limits or grant numbers: a hostile value is a TypeError or RangeError
 * naming the argument, never a check that silently passes, a default silently kept, or bytes encoded.
 */
import { runInNewContext } from "node:vm";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import {
  DEFAULT_LIMITS,
  attenuate,
  formatToken,
  generateKeyPair,
  mint,
  nobleBackend,
  parseToken,
  publicKeyOf,
  readUnverifiedGrants,
  trustedRoots,
  type EffectiveGrant,
  type GrantFields,
  type KeyPair,
  type Limits,
  type Token,
} from "@allowance/core";
import {
  MAX_DEPTH,
  MAX_RATE_SECONDS,
  checkGrantLimits,
  decodePayload,
  encodePayload,
  narrow,
  resolveLimits,
  rootEffective,
} from "@allowance/core/format";
import { verify } from "@allowance/verifier";
import { expectMisuse } from "../../../test/support/misuse.js";

const EXP = 1_800_000_000;
const RUNS = { numRuns: 150 };
const LIMIT_NAMES = Object.keys(DEFAULT_LIMITS) as (keyof Limits)[];

let root: KeyPair;
let holder: KeyPair;
let child: KeyPair;
let token: Token;

beforeAll(async () => {
  [root, holder, child] = (await Promise.all([
    generateKeyPair(),
    generateKeyPair(),
    generateKeyPair(),
  ])) as [KeyPair, KeyPair, KeyPair];
  token = mint({
    rootKey: root,
    holder: publicKeyOf(holder),
    grant: { exp: EXP, tools: ["search"], label: "run" },
  });
});

/** Values of the wrong type for a number. */
const wrongTypes = fc.oneof(
  fc.string(),
  fc.constantFrom<unknown>(
    null,
    true,
    false,
    10n,
    [],
    {},
    [5],
    "5",
    { valueOf: () => 5 },
    () => 5,
    new Date(EXP * 1000),
  ),
  fc.object(),
);

/** Numbers outside [min, max] or not integers. */
function badNumbers(min: number, max: number): fc.Arbitrary<number> {
  return fc.oneof(
    fc.constantFrom(
      Number.NaN,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      min - 1,
      min + 0.5,
      max + 1,
      2 ** 53,
      2 ** 64,
      -0.5,
    ),
    fc.double().filter((d) => !(Number.isInteger(d) && d >= min && d <= max)),
  );
}

function limitTakers(limits: unknown): [string, () => unknown][] {
  const l = limits as Limits;
  const text = formatToken(token);
  const payload = token.links[0]!.payload;
  return [
    ["resolveLimits", () => resolveLimits(l)],
    [
      "mint",
      () => mint({ rootKey: root, holder: publicKeyOf(holder), grant: { exp: EXP }, limits: l }),
    ],
    [
      "attenuate",
      () =>
        attenuate(token, { holderKey: holder, holder: publicKeyOf(child), grant: {}, limits: l }),
    ],
    ["parseToken (string)", () => parseToken(text, l)],
    ["parseToken (bytes)", () => parseToken(Buffer.from(text.slice(5), "base64url"), l)],
    ["readUnverifiedGrants", () => readUnverifiedGrants(token, l)],
    ["decodePayload", () => decodePayload(payload, l)],
    ["checkGrantLimits", () => checkGrantLimits({ tools: ["search"] }, l)],
  ];
}

describe("regressions", () => {
  it("a misspelt limit given to mint or attenuate is a TypeError, not left at its default", () => {
    for (const [, call] of limitTakers({ maxLink: 1 })) expectMisuse(call, '"maxLink"', TypeError);
    // The same call spelt right takes effect: one link is all a chain may have.
    expect(() =>
      attenuate(token, {
        holderKey: holder,
        holder: publicKeyOf(child),
        grant: {},
        limits: { maxLinks: 1 },
      }),
    ).toThrow(expect.objectContaining({ code: "ERR_LIMIT" }));
  });

  it("a limit of the wrong type is a TypeError, not a RangeError", () => {
    expectMisuse(() => resolveLimits({ maxLinks: "5" } as never), '"limits.maxLinks"', TypeError);
    expectMisuse(() => resolveLimits({ maxLinks: null } as never), '"limits.maxLinks"', TypeError);
    expectMisuse(() => resolveLimits("maxLinks" as never), '"limits"', TypeError);
    expectMisuse(() => resolveLimits([] as never), '"limits"', TypeError);
    expectMisuse(() => resolveLimits({ maxLinks: 0 }), '"limits.maxLinks"', RangeError);
  });

  it("parseToken with a NaN limit refuses, instead of passing the size check that NaN fails", () => {
    const big = attenuate(token, { holderKey: holder, holder: publicKeyOf(child), grant: {} });
    // Two links against a limit of one is ERR_LIMIT; a NaN limit used to let them through.
    expect(() => parseToken(formatToken(big), { ...DEFAULT_LIMITS, maxLinks: 1 })).toThrow(
      expect.objectContaining({ code: "ERR_LIMIT" }),
    );
    expectMisuse(
      () => parseToken(formatToken(big), { ...DEFAULT_LIMITS, maxLinks: Number.NaN }),
      '"limits.maxLinks"',
      RangeError,
    );
    expectMisuse(
      () =>
        checkGrantLimits({ tools: ["a", "b"] }, { ...DEFAULT_LIMITS, maxListLength: Number.NaN }),
      '"limits.maxListLength"',
      RangeError,
    );
  });

  it("mint and attenuate refuse NaN, Infinity, negative, non-integer and 2^53 grant numbers with a TypeError, encoding nothing", () => {
    for (const value of [Number.NaN, Number.POSITIVE_INFINITY, -1, 0.5, 2 ** 53]) {
      expectMisuse(
        () =>
          mint({
            rootKey: root,
            holder: publicKeyOf(holder),
            grant: { exp: EXP, usdMicros: value },
          }),
        "usdMicros",
        TypeError,
      );
      expectMisuse(
        () => mint({ rootKey: root, holder: publicKeyOf(holder), grant: { exp: value } }),
        "exp",
        TypeError,
      );
      expectMisuse(
        () =>
          attenuate(token, {
            holderKey: holder,
            holder: publicKeyOf(child),
            grant: { tokens: value },
          }),
        "tokens",
        TypeError,
      );
    }
    // 2^53 − 1 is the largest amount, and it is encoded exactly.
    const max = mint({
      rootKey: root,
      holder: publicKeyOf(holder),
      grant: { exp: EXP, usdMicros: Number.MAX_SAFE_INTEGER },
    });
    expect(readUnverifiedGrants(max)[0]?.usdMicros).toBe(Number.MAX_SAFE_INTEGER);
  });
});

describe("regressions: the options of mint and attenuate, and Token objects", () => {
  const mintWith = (extra: Record<string, unknown>) => () =>
    mint({ rootKey: root, holder: publicKeyOf(holder), grant: { exp: EXP }, ...extra } as never);
  const attenuateWith = (extra: Record<string, unknown>) => () =>
    attenuate(token, {
      holderKey: holder,
      holder: publicKeyOf(child),
      grant: {},
      ...extra,
    } as never);

  it("a misspelt option is a TypeError naming it, not ignored (a fixed nonce left random)", () => {
    for (const call of [mintWith({ nonse: new Uint8Array(8) }), attenuateWith({ limit: {} })])
      expectMisuse(call, "has no option named", TypeError);
  });

  it("a nonce that is not bytes is a TypeError: a string was read as zeros, null as the default", () => {
    // `Uint8Array.from("abcdefgh")` is eight zero bytes: the nonce given was lost without a word.
    for (const nonce of [null, "abcdefgh", [1, 2, 3, 4, 5, 6, 7, 8], { length: 8 }]) {
      expectMisuse(mintWith({ nonce }), '"nonce"', TypeError);
      expectMisuse(attenuateWith({ nonce }), '"nonce"', TypeError);
    }
    // Bytes are taken as given.
    const nonce = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
    const minted = mintWith({ nonce })() as Token;
    expect(readUnverifiedGrants(minted)[0]?.nonce).toEqual(nonce);
  });

  it("a missing options object, key pair or backend is a TypeError naming it, not a crash inside", () => {
    expectMisuse(() => mint(null as never), '"options"', TypeError);
    expectMisuse(() => attenuate(token, undefined as never), '"options"', TypeError);
    expectMisuse(mintWith({ rootKey: null }), '"rootKey"', TypeError);
    expectMisuse(mintWith({ rootKey: { kid: root.kid } }), '"rootKey"', TypeError);
    expectMisuse(attenuateWith({ holderKey: null }), '"holderKey"', TypeError);
    for (const backend of [null, {}, { sign: "yes" }]) {
      expectMisuse(mintWith({ backend }), '"backend"', TypeError);
      expectMisuse(attenuateWith({ backend }), '"backend"', TypeError);
    }
  });

  it("a key pair whose halves do not match is a TypeError naming it, not a token no one can verify", async () => {
    const other = await generateKeyPair();
    // Hand-built: one key's seed under another's public key and kid.
    const mixed = { kid: root.kid, publicKey: root.publicKey, privateKey: other.privateKey };
    expectMisuse(
      mintWith({ rootKey: mixed }),
      '"rootKey.publicKey" is not the public key',
      TypeError,
    );
    const mixedHolder = {
      kid: holder.kid,
      publicKey: holder.publicKey,
      privateKey: other.privateKey,
    };
    expectMisuse(attenuateWith({ holderKey: mixedHolder }), '"holderKey.publicKey"', TypeError);
    // Hand-built with matching halves signs as the pair it copies.
    const copy = { kid: root.kid, publicKey: root.publicKey, privateKey: root.privateKey };
    expect(formatToken(mintWith({ rootKey: copy, nonce: new Uint8Array(8) })() as Token)).toBe(
      formatToken(mintWith({ nonce: new Uint8Array(8) })() as Token),
    );
    // Bytes changed in place after a check are checked again.
    const changed = {
      kid: root.kid,
      publicKey: root.publicKey,
      privateKey: Uint8Array.from(root.privateKey),
    };
    expect(() => mintWith({ rootKey: changed })()).not.toThrow();
    changed.privateKey.set(other.privateKey);
    expectMisuse(mintWith({ rootKey: changed }), '"rootKey.publicKey"', TypeError);
  });

  it("an option inherited or not enumerable is read as a property read finds it, not dropped", () => {
    const strict = { maxLinks: 1 };
    const inherited = Object.create({ limits: strict }) as Record<string, unknown>;
    Object.assign(inherited, { holderKey: holder, holder: publicKeyOf(child), grant: {} });
    expect(() => attenuate(token, inherited as never)).toThrow(/the limit is 1/);
    const hidden: Record<string, unknown> = {
      holderKey: holder,
      holder: publicKeyOf(child),
      grant: {},
    };
    Object.defineProperty(hidden, "limits", { value: strict, enumerable: false });
    expect(() => attenuate(token, hidden as never)).toThrow(/the limit is 1/);
    // A class whose members are getters on its prototype.
    class Options {
      get rootKey() {
        return root;
      }
      get holder() {
        return publicKeyOf(holder);
      }
      get grant() {
        return { exp: EXP };
      }
    }
    expect(readUnverifiedGrants(mint(new Options() as never))[0]?.exp).toBe(EXP);
  });

  it("a limit inherited or not enumerable counts, and options only Object.prototype holds are no options", () => {
    const holderOptions = { holderKey: holder, holder: publicKeyOf(child), grant: {} };
    for (const limits of [
      Object.create({ maxLinks: 1 }) as object,
      Object.defineProperty({}, "maxLinks", { value: 1, enumerable: false }),
      new (class {
        get maxLinks() {
          return 1;
        }
      })(),
    ])
      expect(() => attenuate(token, { ...holderOptions, limits } as never)).toThrow(
        /the limit is 1/,
      );
    const proto = Object.prototype as Record<string, unknown>;
    const stolen: Uint8Array[] = [];
    const evil = {
      sign: (seed: Uint8Array, message: Uint8Array) => {
        stolen.push(seed);
        return nobleBackend.sign(seed, message);
      },
    };
    try {
      proto["backend"] = evil;
      proto["nonce"] = new Uint8Array(8);
      proto["allowFarFuture"] = true;
      proto["limits"] = { maxLinks: 1 };
      const a = mintWith({})() as Token;
      const b = mintWith({})() as Token;
      expect(stolen).toHaveLength(0);
      expect(formatToken(a)).not.toBe(formatToken(b));
      expect(() => mintWith({ grant: { exp: Date.now() + 60_000 } })()).toThrow(RangeError);
      expect(() => attenuate(a, holderOptions)).not.toThrow();
    } finally {
      for (const name of ["backend", "nonce", "allowFarFuture", "limits"]) delete proto[name];
    }
  });

  it("options and limits: a prototype chain without end is a TypeError, another realm's Object.prototype is no option, a misspelt inherited member is refused", () => {
    const endless: object = new Proxy({}, { getPrototypeOf: () => endless });
    expectMisuse(() => resolveLimits(endless), "more than 64 prototypes", TypeError);
    expectMisuse(() => mint(endless as never), "more than 64 prototypes", TypeError);
    // Options made in another realm, whose Object.prototype is polluted there.
    const realm = runInNewContext(
      "Object.prototype.backend = { sign: () => { throw new Error('stolen') } }; Object.prototype.maxStringBytes = 5; ({ limits: {}, options: {} })",
    ) as { limits: object; options: Record<string, unknown> };
    expect(resolveLimits(realm.limits).maxStringBytes).toBe(DEFAULT_LIMITS.maxStringBytes);
    Object.assign(realm.options, {
      rootKey: root,
      holder: publicKeyOf(holder),
      grant: { exp: EXP },
    });
    expect(() => mint(realm.options as never)).not.toThrow();
    // A getter on a class's prototype, spelt wrong: refused, as an own member is.
    class Misspelt {
      get maxStringByte() {
        return 10;
      }
    }
    expectMisuse(() => resolveLimits(new Misspelt() as never), "has no limit named", TypeError);
    class Spelt {
      get maxStringBytes() {
        return 10;
      }
    }
    expect(resolveLimits(new Spelt() as never).maxStringBytes).toBe(10);
  });

  it("a backend other than the library's own is given a copy of the seed, never the one kept for the next call", () => {
    const roots = trustedRoots([root]);
    let kept: Uint8Array | undefined;
    const keeping = {
      sign: (seed: Uint8Array, message: Uint8Array) => {
        kept = seed;
        return nobleBackend.sign(seed, message);
      },
    };
    mintWith({ backend: keeping })();
    const other = holder.privateKey;
    // The next mint, with the default backend: the kept array is changed while its grant is read.
    const grant = { exp: EXP } as Record<string, unknown>;
    Object.defineProperty(grant, "usdMicros", {
      get: () => {
        kept?.set(other);
        return 5;
      },
      enumerable: true,
    });
    const token = mintWith({ grant })() as Token;
    expect(() => verify(token, { roots, now: () => (EXP - 10) * 1000 })).not.toThrow();
  });

  it("a key pair is read once: what answers otherwise later (getters, bytes changed mid-call) signs nothing it was not checked as", async () => {
    const other = await generateKeyPair();
    const roots = trustedRoots([root]);
    /** Either refused with a TypeError, or a token that verifies under the root. */
    const outcome = (call: () => Token): string => {
      let token: Token;
      try {
        token = call();
      } catch (error) {
        return error instanceof TypeError ? "refused" : `threw ${String(error)}`;
      }
      try {
        verify(token, { roots, now: () => (EXP - 10) * 1000 });
        return "verifies";
      } catch (error) {
        return `signed, but ${error instanceof Error ? error.message : String(error)}`;
      }
    };
    let reads = 0;
    // The options' key answers the root's pair once, then another's.
    const options = { holder: publicKeyOf(holder), grant: { exp: EXP } } as Record<string, unknown>;
    Object.defineProperty(options, "rootKey", {
      get: () => (reads++ === 0 ? root : { ...other, privateKey: other.privateKey }),
      enumerable: true,
    });
    expect(outcome(() => mint(options as never))).toBe("verifies");
    // A privateKey that answers the root's seed once, then another's.
    let seedReads = 0;
    const flipping = { kid: root.kid, publicKey: root.publicKey } as Record<string, unknown>;
    Object.defineProperty(flipping, "privateKey", {
      get: () => (seedReads++ === 0 ? root.privateKey : other.privateKey),
    });
    expect(outcome(() => mintWith({ rootKey: flipping })() as Token)).toBe("verifies");
    // And again, after that first call: what was remembered is what was checked.
    expect(outcome(() => mintWith({ rootKey: flipping })() as Token)).toBe("refused");
    // The seed changed in place while the grant is read, after the key was checked.
    const copy = {
      kid: root.kid,
      publicKey: root.publicKey,
      privateKey: Uint8Array.from(root.privateKey),
    };
    const grant = { exp: EXP } as Record<string, unknown>;
    Object.defineProperty(grant, "usdMicros", {
      get: () => {
        copy.privateKey.set(other.privateKey);
        return 5;
      },
      enumerable: true,
    });
    expect(outcome(() => mintWith({ rootKey: copy, grant })() as Token)).toBe("verifies");
    expect(outcome(() => mintWith({ rootKey: copy })() as Token)).toBe("refused");
  });

  it("an exp or nbf in milliseconds (10^11 s or later) is a RangeError unless allowFarFuture says it is meant", () => {
    const ms = Date.now() + 3_600_000;
    expectMisuse(
      () => mint({ rootKey: root, holder: publicKeyOf(holder), grant: { exp: ms } }),
      "is it milliseconds?",
      RangeError,
    );
    expectMisuse(
      () => mint({ rootKey: root, holder: publicKeyOf(holder), grant: { exp: EXP, nbf: ms } }),
      '"nbf"',
      RangeError,
    );
    // The edge: 10^11 − 1 is a time in seconds, 10^11 is not.
    expect(() => mintWith({ grant: { exp: 99_999_999_999 } })()).not.toThrow();
    expectMisuse(mintWith({ grant: { exp: 100_000_000_000 } }), '"exp"', RangeError);
    // Under a far root, a child that states a far time needs the option too.
    const far = mint({
      rootKey: root,
      holder: publicKeyOf(holder),
      grant: { exp: Number.MAX_SAFE_INTEGER },
      allowFarFuture: true,
    });
    expect(readUnverifiedGrants(far)[0]?.exp).toBe(Number.MAX_SAFE_INTEGER);
    const under = { holderKey: holder, holder: publicKeyOf(child), grant: { exp: ms } };
    expectMisuse(() => attenuate(far, under), "is it milliseconds?", RangeError);
    expect(readUnverifiedGrants(attenuate(far, { ...under, allowFarFuture: true }))[1]?.exp).toBe(
      ms,
    );
    // A child that states no time inherits the far one without the option.
    expect(() => attenuate(far, { ...under, grant: {} })).not.toThrow();
    for (const allowFarFuture of [null, 1, "yes"]) {
      expectMisuse(mintWith({ allowFarFuture }), '"allowFarFuture"', TypeError);
      expectMisuse(attenuateWith({ allowFarFuture }), '"allowFarFuture"', TypeError);
    }
  });

  it("a Token object that is not one is a TypeError naming the token, wherever it is encoded", () => {
    for (const bad of [null, undefined, {}, { rootKid: token.rootKid }, { links: token.links }]) {
      const t = bad as unknown as Token;
      expectMisuse(() => formatToken(t), '"token"', TypeError);
      expectMisuse(() => readUnverifiedGrants(t), '"token"', TypeError);
      expectMisuse(
        () => attenuate(t, { holderKey: holder, holder: publicKeyOf(child), grant: {} }),
        '"token"',
        TypeError,
      );
    }
    const noSignature = { rootKid: token.rootKid, links: [{ payload: token.links[0]!.payload }] };
    expectMisuse(() => formatToken(noSignature as unknown as Token), '"token"', TypeError);
  });
});

describe("law: a hostile limit is a TypeError or RangeError naming it, in every function that takes limits", () => {
  it("out-of-range and non-integer values are a RangeError", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...LIMIT_NAMES),
        badNumbers(1, Number.MAX_SAFE_INTEGER),
        (name, value) => {
          for (const [, call] of limitTakers({ [name]: value }))
            expectMisuse(call, `"limits.${name}"`, RangeError);
        },
      ),
      RUNS,
    );
  });

  it("values of another type are a TypeError", () => {
    fc.assert(
      fc.property(fc.constantFrom(...LIMIT_NAMES), wrongTypes, (name, value) => {
        for (const [, call] of limitTakers({ [name]: value }))
          expectMisuse(call, `"limits.${name}"`, TypeError);
      }),
      RUNS,
    );
  });

  it("unknown names are a TypeError", () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1 }).filter((n) => !Object.hasOwn(DEFAULT_LIMITS, n)),
        fc.integer({ min: 1, max: 100 }),
        (name, value) => {
          for (const [, call] of limitTakers({ [name]: value }))
            expectMisuse(call, JSON.stringify(name), TypeError);
        },
      ),
      RUNS,
    );
  });

  it("the edges stay valid: 1 and 2^53 - 1", () => {
    for (const name of LIMIT_NAMES) {
      expect(resolveLimits({ [name]: Number.MAX_SAFE_INTEGER })[name]).toBe(
        Number.MAX_SAFE_INTEGER,
      );
      expect(resolveLimits({ [name]: 1 })[name]).toBe(1);
    }
    const loose = {
      maxTokenChars: Number.MAX_SAFE_INTEGER,
      maxTokenBytes: Number.MAX_SAFE_INTEGER,
      maxLinks: Number.MAX_SAFE_INTEGER,
    };
    expect(parseToken(formatToken(token), loose as Limits).links).toHaveLength(1);
  });
});

describe("law: a hostile grant number is refused by mint and attenuate with a TypeError, never encoded", () => {
  type Place = { field: string; max: number; min: number; grant: (v: unknown) => GrantFields };
  const places: Place[] = [
    ...(["exp", "nbf", "tokens", "usdMicros", "risk"] as const).map((field) => ({
      field,
      min: 0,
      max: Number.MAX_SAFE_INTEGER,
      grant: (v: unknown) => ({ [field]: v }) as GrantFields,
    })),
    { field: "depth", min: 0, max: MAX_DEPTH, grant: (v) => ({ depth: v }) as GrantFields },
    {
      field: "providers.0.usdMicros",
      min: 0,
      max: Number.MAX_SAFE_INTEGER,
      grant: (v) => ({ providers: [{ name: "openai", usdMicros: v }] }) as GrantFields,
    },
    {
      field: "providers.0.tokens",
      min: 0,
      max: Number.MAX_SAFE_INTEGER,
      grant: (v) => ({ providers: [{ name: "openai", tokens: v }] }) as GrantFields,
    },
    {
      field: "rate.0.seconds",
      min: 1,
      max: MAX_RATE_SECONDS,
      grant: (v) => ({ rate: [{ seconds: v, requests: 5 }] }) as GrantFields,
    },
    ...(["tokens", "usdMicros", "requests"] as const).map((kind) => ({
      field: `rate.0.${kind}`,
      min: 0,
      max: Number.MAX_SAFE_INTEGER,
      grant: (v: unknown) => ({ rate: [{ seconds: 60, [kind]: v }] }) as GrantFields,
    })),
  ];

  it("in every numeric field, at every position", () => {
    fc.assert(
      fc.property(
        fc
          .constantFrom(...places)
          .chain((place) =>
            fc.tuple(fc.constant(place), fc.oneof(badNumbers(place.min, place.max), wrongTypes)),
          ),
        ([place, value]) => {
          const grant = place.grant(value);
          expectMisuse(
            () =>
              mint({ rootKey: root, holder: publicKeyOf(holder), grant: { exp: EXP, ...grant } }),
            place.field,
            TypeError,
          );
          expectMisuse(
            () => attenuate(token, { holderKey: holder, holder: publicKeyOf(child), grant }),
            place.field,
            TypeError,
          );
          // The same call with a valid value is not refused for that field.
          const valid = place.grant(place.field === "exp" ? EXP - 1 : place.min);
          expect(() =>
            attenuate(token, { holderKey: holder, holder: publicKeyOf(child), grant: valid }),
          ).not.toThrow();
        },
      ),
      RUNS,
    );
  });

  it("encodePayload, which signs nothing, still refuses a number that is not a safe non-negative integer", () => {
    const grant = readUnverifiedGrants(token)[0]!;
    for (const value of [Number.NaN, Number.POSITIVE_INFINITY, -1, 0.5, 2 ** 53]) {
      expect(() => encodePayload({ ...grant, usdMicros: value })).toThrow(RangeError);
    }
  });
});

describe("narrow and rootEffective, which take grants a caller may build by hand", () => {
  it("a NaN cap in a hand-built child is refused, not folded in as a cap that is never 'widened'", () => {
    const parent = rootEffective(readUnverifiedGrants(token)[0]!) as EffectiveGrant;
    const capped = { ...parent, usdMicros: 100 };
    const link = { sub: publicKeyOf(child).bytes, nonce: new Uint8Array(8) };
    expect(narrow(capped, { ...link, usdMicros: 101 })).toMatchObject({ ok: false });
    expectMisuse(
      () => narrow(capped, { ...link, usdMicros: Number.NaN }),
      '"child.usdMicros"',
      RangeError,
    );
    expectMisuse(
      () => narrow({ ...parent, usdMicros: Number.NaN }, { ...link, usdMicros: 101 }),
      '"parent.usdMicros"',
      RangeError,
    );
    expectMisuse(
      () => narrow({ ...parent, exp: undefined } as never, { ...link, exp: EXP + 10 }),
      '"parent.exp"',
      TypeError,
    );
  });

  it("law: every number of either grant, hostile, is a TypeError or RangeError naming it", () => {
    const parent = rootEffective(readUnverifiedGrants(token)[0]!) as EffectiveGrant;
    const link = { sub: publicKeyOf(child).bytes, nonce: new Uint8Array(8) };
    const fields = ["exp", "nbf", "depth", "tokens", "usdMicros", "risk"] as const;
    fc.assert(
      fc.property(
        fc.constantFrom(...fields),
        fc.oneof(
          badNumbers(0, Number.MAX_SAFE_INTEGER),
          wrongTypes.filter((v) => v !== undefined),
        ),
        fc.boolean(),
        (field, value, inParent) => {
          if (inParent)
            expectMisuse(
              () => narrow({ ...parent, [field]: value } as never, link),
              `"parent.${field}"`,
            );
          else
            expectMisuse(
              () => narrow(parent, { ...link, [field]: value } as never),
              `"child.${field}"`,
            );
          expectMisuse(
            () => rootEffective({ ...link, exp: EXP, [field]: value } as never),
            `"root.${field}"`,
          );
        },
      ),
      RUNS,
    );
  });

  it("providers or rate that is not an array is a TypeError naming it, in either grant or a root", () => {
    const parent = rootEffective(readUnverifiedGrants(token)[0]!) as EffectiveGrant;
    const link = { sub: publicKeyOf(child).bytes, nonce: new Uint8Array(8) };
    for (const list of ["providers", "rate"] as const) {
      for (const value of [
        "openai",
        new Map([["openai", {}]]),
        { 0: { name: "a" }, length: 1 },
        5,
      ]) {
        expectMisuse(
          () => narrow(parent, { ...link, [list]: value } as never),
          `"child.${list}"`,
          TypeError,
        );
        expectMisuse(
          () => narrow({ ...parent, [list]: value } as never, link),
          `"parent.${list}"`,
          TypeError,
        );
        expectMisuse(
          () => rootEffective({ ...link, exp: EXP, [list]: value } as never),
          `"root.${list}"`,
          TypeError,
        );
      }
    }
  });

  it("models, tools or aud that is not an array of strings is a TypeError naming it, never a substring test", () => {
    const parent = rootEffective(readUnverifiedGrants(token)[0]!) as EffectiveGrant;
    const link = { sub: publicKeyOf(child).bytes, nonce: new Uint8Array(8) };
    // The attack: a parent set given as a string, which `includes` searched for substrings.
    expectMisuse(
      () => narrow({ ...parent, models: "gpt-4o-mini" } as never, { ...link, models: ["gpt-4"] }),
      '"parent.models"',
      TypeError,
    );
    expectMisuse(
      () =>
        narrow({ ...parent, aud: "https://a.example" } as never, { ...link, aud: ["https://a"] }),
      '"parent.aud"',
      TypeError,
    );
    expectMisuse(
      () => narrow({ ...parent, tools: "search*" } as never, { ...link, tools: ["search"] }),
      '"parent.tools"',
      TypeError,
    );
    // The same sets as arrays narrow as they should.
    const strict = { ...parent, models: ["gpt-4o-mini"], aud: ["https://a.example"] };
    expect(narrow(strict, { ...link, models: ["gpt-4"] })).toMatchObject({ ok: false });
    expect(narrow(strict, { ...link, models: ["gpt-4o-mini"] })).toMatchObject({ ok: true });
    const sparse: unknown[] = [];
    sparse[1] = "gpt-4";
    for (const set of ["models", "tools", "aud"] as const) {
      for (const value of [
        "gpt-4o-mini",
        "",
        new Set(["a"]),
        { 0: "a", length: 1 },
        ["a", 1],
        [["a"]],
        [null],
        sparse,
        new String("a"),
        5,
        null,
      ]) {
        expectMisuse(
          () => narrow({ ...parent, [set]: value } as never, link),
          `"parent.${set}"`,
          TypeError,
        );
        expectMisuse(
          () => narrow(parent, { ...link, [set]: value } as never),
          `"child.${set}"`,
          TypeError,
        );
        expectMisuse(
          () => rootEffective({ ...link, exp: EXP, [set]: value } as never),
          `"root.${set}"`,
          TypeError,
        );
      }
    }
  });

  it("law: every number of a provider entry or rate window, hostile, is a TypeError or RangeError naming it", () => {
    const parent = rootEffective(readUnverifiedGrants(token)[0]!) as EffectiveGrant;
    const link = { sub: publicKeyOf(child).bytes, nonce: new Uint8Array(8) };
    const hostile = (min: number) =>
      fc.oneof(
        badNumbers(min, Number.MAX_SAFE_INTEGER),
        wrongTypes.filter((v) => v !== undefined),
      );
    const place = fc.oneof(
      ...(["tokens", "usdMicros"] as const).map((member) =>
        fc.tuple(fc.constant("providers" as const), fc.constant(member), hostile(0)),
      ),
      fc.tuple(fc.constant("rate" as const), fc.constant("seconds" as const), hostile(1)),
      ...(["tokens", "usdMicros", "requests"] as const).map((member) =>
        fc.tuple(fc.constant("rate" as const), fc.constant(member), hostile(0)),
      ),
    );
    fc.assert(
      fc.property(
        place,
        fc.nat(2),
        fc.constantFrom("parent", "child", "root"),
        ([list, member, value], at, side) => {
          // Valid entries around the hostile one, so that the one named is not simply the first.
          const entries = [0, 1, 2].map((i) => {
            const entry =
              list === "providers"
                ? { name: `p${i}`, tokens: 1, usdMicros: 1 }
                : { seconds: 60 + i, tokens: 1, usdMicros: 1, requests: 1 };
            return i === at ? { ...entry, [member]: value } : entry;
          });
          const call =
            side === "parent"
              ? () => narrow({ ...parent, [list]: entries } as never, link)
              : side === "child"
                ? () => narrow(parent, { ...link, [list]: entries } as never)
                : () => rootEffective({ ...link, exp: EXP, [list]: entries } as never);
          expectMisuse(call, `"${side}.${list}.${at}.${member}"`);
        },
      ),
      RUNS,
    );
  });
});
