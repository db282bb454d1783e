/**
 * Hostile time, amount and limit arguments (spec/format.md §8, spec/presentation.md §4, §5.4, §6.3,
 * §8.1). The law for every entry point: a hostile value never produces an acceptance that the same
 * call with a valid value would refuse; it throws a TypeError or RangeError that names the argument.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  formatToken,
  generateKeyPair,
  mint,
  publicKeyOf,
  trustedRoots,
  type KeyPair,
  type Token,
} from "@allowance/core";
import {
  LruPrefixCache,
  MemoryReplayCache,
  MemoryRevocationStore,
  allowanceMiddleware,
  createAuthorizer,
  createVerifier,
  present,
  safeVerify,
  verify,
  verifyPresentation,
  withAllowance,
  type AllowanceContext,
} from "@allowance/verifier";
import { FileRevocationStore } from "@allowance/verifier/file";
import { fetchListener, listen } from "../../../test/support/http.js";
import { expectMisuse, expectMisuseAsync } from "../../../test/support/misuse.js";
import { outcome, outcomeAsync } from "../../../test/support/outcome.js";

const NOW = 1_800_000_000;
const AUD = "https://tools.example/search";
const MAX_SKEW = 3600;
const MAX_AGE = 3600;
/** The smallest clock reading accepted, in ms (spec/format.md §8): below it is a clock in seconds. */
const MIN_CLOCK_MS = 100_000_000_000;
const clockAt = (seconds: number) => () => seconds * 1000;

let holder: KeyPair;
let roots: ReturnType<typeof trustedRoots>;
/** Tokens that a valid `now` of NOW refuses, and one it accepts. */
const tokens = {} as Record<"expired" | "notYetValid" | "valid", Token>;
const scenarios = ["expired", "notYetValid", "valid"] as const;
const tmp = mkdtempSync(join(tmpdir(), "allowance-hostile-"));

beforeAll(async () => {
  const rootKey = await generateKeyPair();
  holder = await generateKeyPair();
  roots = trustedRoots([rootKey]);
  const make = (exp: number, nbf?: number) =>
    mint({
      rootKey,
      holder: publicKeyOf(holder),
      grant: { exp, ...(nbf === undefined ? {} : { nbf }), aud: [AUD], usdMicros: 1_000_000 },
    });
  tokens.expired = make(NOW - 1000);
  tokens.notYetValid = make(NOW + 7200, NOW + 1000);
  tokens.valid = make(NOW + 3600);
});

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// ---- hostile values ----

/** Values of the wrong type for any number or time argument. */
const wrongTypes = fc.oneof(
  fc.string(),
  fc.constantFrom<unknown>(
    null,
    true,
    false,
    10n,
    [],
    {},
    [NOW],
    String(NOW),
    { valueOf: () => NOW },
    () => NOW,
  ),
  fc.object(),
);

/**
 * What a clock may answer that is not epoch milliseconds, an integer from 10^11 to 2^53 − 1
 * (spec/format.md §8): NaN, infinities, fractions, negatives, 1970, a clock in seconds, past
 * 2^53 − 1, and anything that is not a number (a Date, a numeric string, a bigint).
 */
const hostileReading = fc.oneof(
  fc.constantFrom<unknown>(
    Number.NaN,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    -1,
    0,
    0.5,
    NOW,
    NOW * 1000 + 0.5,
    MIN_CLOCK_MS - 1,
    2 ** 53,
    2 ** 64,
    new Date(NOW * 1000),
    undefined,
    String(NOW * 1000),
    BigInt(NOW * 1000),
  ),
  fc.double().filter((d) => !(Number.isSafeInteger(d) && d >= MIN_CLOCK_MS)),
  fc.integer({ min: 0, max: MIN_CLOCK_MS - 1 }),
  wrongTypes,
);

/** Clocks answering a hostile reading. */
const hostileClock: fc.Arbitrary<() => number> = hostileReading.map(
  (reading) => () => reading as number,
);

/** Hostile `now` options: a clock answering a hostile reading, or anything that is no function. */
const hostileNow: fc.Arbitrary<() => number> = fc.oneof(
  hostileReading.filter((v) => typeof v !== "function" && v !== undefined) as fc.Arbitrary<
    () => number
  >,
  hostileClock,
);

/** Hostile values for an integer argument whose valid range is [min, max]. */
function hostileInteger(min: number, max: number): fc.Arbitrary<unknown> {
  return fc.oneof(
    fc.constantFrom<unknown>(
      Number.NaN,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      min - 1,
      min + 0.5,
      max + 1,
      2 ** 53,
      new Date(NOW * 1000),
    ),
    fc.double().filter((d) => !(Number.isInteger(d) && d >= min && d <= max)),
    wrongTypes,
  );
}

const RUNS = { numRuns: 150 };

// ---- regressions: what broke ----

describe("regressions", () => {
  it("an expired token is not accepted when the clock answers NaN (an invalid Date's time)", () => {
    expect(outcome(() => verify(tokens.expired, { roots, now: clockAt(NOW) }))).toBe("ERR_EXPIRED");
    expectMisuse(
      () => verify(tokens.expired, { roots, now: () => new Date(Number.NaN).getTime() }),
      '"now"',
    );
    expectMisuse(
      () => safeVerify(tokens.expired, { roots, now: () => new Date(Number.NaN).getTime() }),
      '"now"',
    );
    expectMisuse(
      () =>
        createVerifier({ roots }).verify(tokens.expired, {
          now: () => new Date(Number.NaN).getTime(),
        }),
      '"now"',
    );
  });

  it("a not-yet-valid token is not accepted when the clock answers NaN", () => {
    expect(outcome(() => verify(tokens.notYetValid, { roots, now: () => NOW * 1000 }))).toBe(
      "ERR_NOT_YET_VALID",
    );
    expectMisuse(
      () => verify(tokens.notYetValid, { roots, now: () => new Date("not a date").getTime() }),
      '"now"',
    );
  });

  it("a presentation is not accepted again and again when now is NaN", async () => {
    const replay = new MemoryReplayCache();
    const presentation = present(tokens.valid, holder, { aud: AUD, now: () => NOW * 1000 });
    for (let use = 0; use < 3; use++) {
      await expectMisuseAsync(
        () =>
          verifyPresentation(presentation, {
            roots,
            audience: AUD,
            now: () => Number.NaN,
            replay,
          }),
        '"now"',
      );
    }
    // Refused before the id was claimed: the holder's one use is still there, and only one.
    expect(replay.size).toBe(0);
    expect(
      await outcomeAsync(() =>
        verifyPresentation(presentation, { roots, audience: AUD, now: () => NOW * 1000, replay }),
      ),
    ).toBe("accepted");
    expect(
      await outcomeAsync(() =>
        verifyPresentation(presentation, { roots, audience: AUD, now: () => NOW * 1000, replay }),
      ),
    ).toBe("ERR_REPLAY");
  });

  it("a replay cache given a NaN now refuses to answer instead of calling every id expired", () => {
    const cache = new MemoryReplayCache();
    expect(cache.claim("holder.jti", NOW + 120, NOW)).toBe(true);
    expectMisuse(() => cache.claim("holder.jti", NOW + 120, Number.NaN), '"nowSeconds"');
    expect(cache.claim("holder.jti", NOW + 120, NOW + 1)).toBe(false);
    // An empty id is no one-time id, here as in the Redis cache.
    expectMisuse(() => cache.claim("", NOW + 120, NOW), '"id"');
  });

  it("an asynchronous revocation store is refused, not read as 'nothing is revoked'", () => {
    const chain = verify(tokens.valid, { roots, now: () => NOW * 1000 });
    const revoked = chain.linkIds[0] as string;
    const asyncStore = { has: async (id: string) => id === revoked };
    expect(
      outcome(() =>
        verify(tokens.valid, { roots, now: () => NOW * 1000, revocations: new Set([revoked]) }),
      ),
    ).toBe("ERR_REVOKED");
    expectMisuse(
      () =>
        verify(tokens.valid, { roots, now: () => NOW * 1000, revocations: asyncStore as never }),
      "revocations.has",
    );
    expectMisuse(
      () =>
        createVerifier({ roots }).verify(tokens.valid, {
          now: () => NOW * 1000,
          revocations: { has: () => 1 } as never,
        }),
      "revocations.has",
    );
  });

  it("a replay cache answering anything but a boolean is refused, not trusted", async () => {
    const presentation = present(tokens.valid, holder, { aud: AUD, now: () => NOW * 1000 });
    const replay = { claim: () => "OK" as unknown as boolean };
    await expectMisuseAsync(
      () =>
        verifyPresentation(presentation, { roots, audience: AUD, now: () => NOW * 1000, replay }),
      "replay.claim",
    );
  });

  it("a file revocation store refuses a NaN check interval, which would never reload the file", () => {
    expectMisuse(
      () => new FileRevocationStore(join(tmp, "revoked.json"), { checkIntervalMs: Number.NaN }),
      '"checkIntervalMs"',
    );
  });

  it("a misspelt limit is refused, not left at its default", () => {
    expectMisuse(
      () => verify(tokens.valid, { roots, now: () => NOW * 1000, limits: { maxLink: 1 } as never }),
      "maxLink",
    );
    expect(
      outcome(() =>
        verify(tokens.valid, { roots, now: () => NOW * 1000, limits: { maxLinks: 1 } }),
      ),
    ).toBe("accepted");
  });

  it("a per-call skew given to a verifier's verify is refused, not silently unused", () => {
    const verifier = createVerifier({ roots, skewSeconds: 0 });
    // The skew that would have made it valid is the verifier's, fixed at creation: per call it did nothing.
    expect(
      outcome(() => verifier.verify(tokens.expired, { now: () => (NOW - 1000 + 1) * 1000 })),
    ).toBe("ERR_EXPIRED");
    expectMisuse(
      () =>
        verifier.verify(tokens.expired, {
          now: clockAt(NOW - 1000 + 1),
          skewSeconds: 3600,
        } as never),
      '"skewSeconds"',
    );
    expectMisuse(
      () => verifier.verify(tokens.valid, { now: clockAt(NOW), limits: { maxLinks: 1 } } as never),
      '"limits"',
    );
    expectMisuse(
      () => verifier.verify(tokens.valid, { now: clockAt(NOW), roots } as never),
      '"roots"',
    );
  });

  it("the options' names before units were in them, skew and maxAge, are refused, not ignored", async () => {
    expectMisuse(() => verify(tokens.expired, { roots, skew: 3600 } as never), '"skew"', TypeError);
    expectMisuse(() => createVerifier({ roots, skew: 3600 } as never), '"skew"', TypeError);
    expectMisuse(
      () => createAuthorizer({ roots, audience: AUD, maxAge: 5 } as never),
      '"maxAge"',
      TypeError,
    );
    const presentation = present(tokens.valid, holder, { aud: AUD, now: clockAt(NOW) });
    await expectMisuseAsync(
      () =>
        verifyPresentation(presentation, {
          roots,
          audience: AUD,
          now: clockAt(NOW),
          maxAge: 3600,
          replay: new MemoryReplayCache(),
        } as never),
      '"maxAge"',
      TypeError,
    );
  });

  it("a misspelt option of verify, verifyPresentation or present is refused, not left at its default", async () => {
    expectMisuse(
      () =>
        verify(tokens.valid, {
          roots,
          now: clockAt(NOW),
          audiance: "https://elsewhere.example",
        } as never),
      '"audiance"',
    );
    expectMisuse(() => createVerifier({ roots, cachesize: 1 } as never), '"cachesize"');
    const presentation = present(tokens.valid, holder, {
      aud: AUD,
      path: "/search",
      now: () => NOW * 1000,
    });
    await expectMisuseAsync(
      () =>
        verifyPresentation(presentation, {
          roots,
          audience: AUD,
          now: clockAt(NOW),
          pathname: "/search",
          replay: new MemoryReplayCache(),
        } as never),
      '"pathname"',
    );
    // A misspelt `path` would have left the presentation bound to no path at all.
    expectMisuse(
      () =>
        present(tokens.valid, holder, {
          aud: AUD,
          pathname: "/search",
          now: clockAt(NOW),
        } as never),
      '"pathname"',
    );
    expectMisuse(() => createAuthorizer({ roots, audience: AUD, maxage: 5 } as never), '"maxage"');
  });

  it("a misspelt store option is refused, not left at its default", () => {
    expectMisuse(() => new MemoryReplayCache({ maxentries: 1 } as never), '"maxentries"');
    // checkIntervalMS would have left the 250 ms default in force.
    expectMisuse(
      () => new FileRevocationStore(join(tmp, "revoked.json"), { checkIntervalMS: 0 } as never),
      '"checkIntervalMS"',
    );
  });

  it("an authorizer with a cacheSize still verifies presentations: the cache options stay the verifier's", async () => {
    const authorizer = createAuthorizer({
      roots,
      audience: AUD,
      cacheSize: 4,
      skewSeconds: 0,
      now: () => NOW * 1000,
      replay: new MemoryReplayCache(),
    });
    const presentation = present(tokens.valid, holder, {
      aud: AUD,
      method: "GET",
      path: "/search",
      now: () => NOW * 1000,
    });
    expect(await authorizer.authorize(`Allowance ${presentation}`, "GET", "/search")).toMatchObject(
      { ok: true },
    );
    expect(
      await authorizer.authorize(
        `Allowance ${present(tokens.expired, holder, { aud: AUD, now: () => NOW * 1000 })}`,
        "GET",
        "/search",
      ),
    ).toMatchObject({ ok: false, rejection: { error: { code: "ERR_EXPIRED" } } });
  });

  it("null is not the default: a null skewSeconds or maxAgeSeconds is a TypeError", async () => {
    expectMisuse(
      () => verify(tokens.valid, { roots, now: () => NOW * 1000, skewSeconds: null as never }),
      '"skewSeconds"',
    );
    const presentation = present(tokens.valid, holder, { aud: AUD, now: () => NOW * 1000 });
    await expectMisuseAsync(
      () =>
        verifyPresentation(presentation, {
          roots,
          audience: AUD,
          now: () => NOW * 1000,
          maxAgeSeconds: null as never,
          replay: new MemoryReplayCache(),
        }),
      '"maxAgeSeconds"',
    );
  });

  it("a clock that answers seconds is refused, not read as January 1970, where nothing has expired", () => {
    // The middleware's clock answered seconds before clocks were milliseconds everywhere.
    expect(outcome(() => verify(tokens.expired, { roots, now: clockAt(NOW) }))).toBe("ERR_EXPIRED");
    expectMisuse(() => verify(tokens.expired, { roots, now: () => NOW }), '"now"', RangeError);
    expect(() => verify(tokens.expired, { roots, now: () => NOW })).toThrow(/clock in seconds/);
    expectMisuse(
      () => createVerifier({ roots, now: () => NOW }).verify(tokens.expired),
      '"now"',
      RangeError,
    );
    expectMisuse(() => present(tokens.valid, holder, { aud: AUD, now: () => NOW }), '"now"');
  });

  it("null is not the default: a null requireBodyBinding, backend or jti is a TypeError", async () => {
    const at = () => NOW * 1000;
    const presentation = present(tokens.valid, holder, { aud: AUD, now: at });
    const replay = new MemoryReplayCache();
    for (const [name, value] of [
      ["requireBodyBinding", null],
      ["backend", null],
    ] as const)
      await expectMisuseAsync(
        () =>
          verifyPresentation(presentation, {
            roots,
            audience: AUD,
            now: at,
            replay,
            [name]: value as never,
          }),
        `"${name}"`,
        TypeError,
      );
    expect(replay.size).toBe(0);
    for (const [name, value] of [
      ["jti", null],
      ["backend", null],
      ["backend", {}],
    ] as const)
      expectMisuse(
        () => present(tokens.valid, holder, { aud: AUD, now: at, [name]: value as never }),
        name,
        TypeError,
      );
  });

  it("present refuses a missing key pair and a Token object that is no token, rather than crash or sign one", () => {
    const at = () => NOW * 1000;
    for (const key of [null, undefined, {}, { privateKey: "seed" }])
      expectMisuse(
        () => present(tokens.valid, key as never, { aud: AUD, now: at }),
        '"holderKey"',
        TypeError,
      );
    expectMisuse(() => present(null as never, holder, { aud: AUD, now: at }), '"token"', TypeError);
    // A Token object with no link used to be signed into a presentation.
    const empty = { rootKid: tokens.valid.rootKid, links: [] } as Token;
    expect(outcome(() => present(empty, holder, { aud: AUD, now: at }))).toBe("ERR_MALFORMED");
  });

  it("verifyPresentation trusts the holder key only from a chain verify made, not from whatever verifyToken answers", async () => {
    const at = () => NOW * 1000;
    const replay = new MemoryReplayCache();
    const real = verify(tokens.valid, { roots, now: at, audience: AUD });
    // An expired token, presented by its holder: a verifyToken that answers a copy of another
    // chain (or anything that is not a verified chain) used to make it pass.
    const presentation = present(tokens.expired, holder, { aud: AUD, now: at });
    for (const answer of [{ ...real }, { holder: holder.publicKey }, { ok: true, chain: real }])
      await expectMisuseAsync(
        () =>
          verifyPresentation(presentation, {
            roots,
            audience: AUD,
            now: at,
            replay,
            verifyToken: () => answer as never,
          }),
        '"verifyToken"',
        TypeError,
      );
    expect(replay.size).toBe(0);
    // A verifyToken that answers verify's own chain is still accepted.
    const fresh = present(tokens.valid, holder, { aud: AUD, now: at });
    const ok = await verifyPresentation(fresh, {
      roots,
      audience: AUD,
      now: at,
      replay,
      verifyToken: (token, options) => verify(token, options),
    });
    expect(ok.chain.linkIds).toEqual(real.linkIds);
  });

  it("withAllowance refuses a handler that is no function when it is made, not on the first request", () => {
    for (const handler of [null, undefined, {}, "handler"])
      expectMisuse(
        () => withAllowance(handler as never, { roots, audience: AUD }),
        '"handler"',
        TypeError,
      );
  });

  it("a clock given as a number or a Date, as before it was a function, is a TypeError", () => {
    for (const now of [NOW, NOW * 1000, new Date(NOW * 1000)]) {
      expectMisuse(() => verify(tokens.valid, { roots, now: now as never }), '"now"', TypeError);
      expectMisuse(() => createVerifier({ roots, now: now as never }), '"now"', TypeError);
      expectMisuse(
        () => present(tokens.valid, holder, { aud: AUD, now: now as never }),
        '"now"',
        TypeError,
      );
    }
  });
});

// ---- the edges that stay valid ----

describe("valid edges", () => {
  it("rounds the clock's milliseconds down to the second", () => {
    const exp = NOW + 3600;
    // Expired when now − skew ≥ exp: exp s − 1 ms rounds down to exp − 1, which is still valid.
    expect(
      outcome(() => verify(tokens.valid, { roots, now: () => exp * 1000 - 1, skewSeconds: 0 })),
    ).toBe("accepted");
    expect(
      outcome(() => verify(tokens.valid, { roots, now: () => exp * 1000, skewSeconds: 0 })),
    ).toBe("ERR_EXPIRED");
    // Date.now is the default, and Date#getTime is a clock like any other.
    expect(outcome(() => verify(tokens.valid, { roots }))).toBe("accepted");
    const date = new Date((exp - 1) * 1000 + 999);
    expect(
      outcome(() => verify(tokens.valid, { roots, now: () => date.getTime(), skewSeconds: 0 })),
    ).toBe("accepted");
  });

  it("accepts the smallest and the largest reading, 10^11 and 2^53 − 1 ms", async () => {
    expect(outcome(() => verify(tokens.expired, { roots, now: () => MIN_CLOCK_MS }))).toBe(
      "accepted",
    );
    const rootKey = await generateKeyPair();
    const token = mint({
      rootKey,
      holder: publicKeyOf(holder),
      grant: { exp: Number.MAX_SAFE_INTEGER },
      allowFarFuture: true,
    });
    const last = () => Number.MAX_SAFE_INTEGER;
    const presentation = present(token, holder, { aud: AUD, now: last });
    expect(
      await outcomeAsync(() =>
        verifyPresentation(presentation, {
          roots: trustedRoots([rootKey]),
          audience: AUD,
          now: last,
          replay: new MemoryReplayCache(),
        }),
      ),
    ).toBe("accepted");
  });

  it("accepts a skewSeconds and maxAgeSeconds of up to an hour, and refuses one second more", async () => {
    expect(
      outcome(() =>
        verify(tokens.expired, { roots, now: () => NOW * 1000, skewSeconds: MAX_SKEW }),
      ),
    ).toBe("accepted");
    expectMisuse(
      () => verify(tokens.expired, { roots, now: () => NOW * 1000, skewSeconds: MAX_SKEW + 1 }),
      '"skewSeconds"',
    );
    const presentation = present(tokens.valid, holder, {
      aud: AUD,
      now: () => (NOW - MAX_AGE - 60 + 1) * 1000,
    });
    expect(
      await outcomeAsync(() =>
        verifyPresentation(presentation, {
          roots,
          audience: AUD,
          now: () => NOW * 1000,
          maxAgeSeconds: MAX_AGE,
          replay: new MemoryReplayCache(),
        }),
      ),
    ).toBe("accepted");
    await expectMisuseAsync(
      () =>
        verifyPresentation(presentation, {
          roots,
          audience: AUD,
          now: () => NOW * 1000,
          maxAgeSeconds: MAX_AGE + 1,
          replay: new MemoryReplayCache(),
        }),
      '"maxAgeSeconds"',
    );
  });
});

// ---- the law, per entry point ----

describe("law: a hostile value never turns a refusal into an acceptance; it is a TypeError or RangeError", () => {
  it("verify and safeVerify: now and skewSeconds", () => {
    for (const scenario of scenarios)
      expect(outcome(() => verify(tokens[scenario], { roots, now: () => NOW * 1000 }))).toBe(
        scenario === "valid"
          ? "accepted"
          : scenario === "expired"
            ? "ERR_EXPIRED"
            : "ERR_NOT_YET_VALID",
      );
    fc.assert(
      fc.property(fc.constantFrom(...scenarios), hostileNow, (scenario, now) => {
        expectMisuse(() => verify(tokens[scenario], { roots, now }), '"now"');
        expectMisuse(() => safeVerify(tokens[scenario], { roots, now }), '"now"');
      }),
      RUNS,
    );
    fc.assert(
      fc.property(fc.constantFrom(...scenarios), hostileInteger(0, MAX_SKEW), (scenario, skew) => {
        expectMisuse(
          () =>
            verify(tokens[scenario], { roots, now: () => NOW * 1000, skewSeconds: skew as number }),
          '"skewSeconds"',
        );
        expectMisuse(
          () =>
            safeVerify(tokens[scenario], {
              roots,
              now: () => NOW * 1000,
              skewSeconds: skew as number,
            }),
          '"skewSeconds"',
        );
      }),
      RUNS,
    );
  });

  it("verify: limits", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(
          "maxLinks",
          "maxTokenBytes",
          "maxPayloadBytes",
          "maxListLength",
          "maxStringBytes",
          "maxTokenChars",
        ),
        hostileInteger(1, Number.MAX_SAFE_INTEGER),
        (name, value) => {
          expectMisuse(
            () => verify(tokens.valid, { roots, now: () => NOW * 1000, limits: { [name]: value } }),
            `limits.${name}`,
          );
        },
      ),
      RUNS,
    );
  });

  it("createVerifier: skewSeconds and cacheSize at creation, now there and on every call", () => {
    fc.assert(
      fc.property(
        hostileInteger(0, MAX_SKEW),
        hostileInteger(1, Number.MAX_SAFE_INTEGER),
        hostileNow,
        (skew, cacheSize, now) => {
          // A clock that is not a function is refused at creation; one answering garbage, per call.
          expectMisuse(() => createVerifier({ roots, now }).verify(tokens.expired), '"now"');
          expectMisuse(
            () => createVerifier({ roots, skewSeconds: skew as number }),
            '"skewSeconds"',
          );
          expectMisuse(
            () => createVerifier({ roots, cacheSize: cacheSize as number }),
            '"cacheSize"',
          );
        },
      ),
      RUNS,
    );
    const verifier = createVerifier({ roots });
    fc.assert(
      fc.property(fc.constantFrom(...scenarios), hostileNow, (scenario, now) => {
        expectMisuse(() => verifier.verify(tokens[scenario], { now }), '"now"');
      }),
      RUNS,
    );
  });

  it("verifyPresentation: now, skewSeconds and maxAgeSeconds, refused before the one-time id is used", async () => {
    const cases = fc.oneof(
      hostileNow.map((value): { name: string; value: unknown } => ({ name: "now", value })),
      hostileInteger(0, MAX_SKEW).map((value) => ({ name: "skewSeconds", value })),
      hostileInteger(0, MAX_AGE).map((value) => ({ name: "maxAgeSeconds", value })),
    );
    // Presentations that a valid clock refuses: stale, from the future, or for an expired token.
    const refused = [
      { token: tokens.valid, iat: NOW - 1000 },
      { token: tokens.valid, iat: NOW + 1000 },
      { token: tokens.expired, iat: NOW },
      { token: tokens.valid, iat: NOW },
    ];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...refused),
        cases,
        async ({ token, iat }, { name, value }) => {
          const replay = new MemoryReplayCache();
          const presentation = present(token, holder, {
            aud: AUD,
            now: () => iat * 1000,
            jti: new Uint8Array(16).fill(iat % 256),
          });
          await expectMisuseAsync(
            () =>
              verifyPresentation(presentation, {
                roots,
                audience: AUD,
                now: () => NOW * 1000,
                replay,
                [name]: value,
              }),
            `"${name}"`,
          );
          expect(replay.size).toBe(0);
        },
      ),
      RUNS,
    );
  });

  it("every options object: an unknown member is a TypeError naming it", async () => {
    const presentation = present(tokens.valid, holder, { aud: AUD, now: () => NOW * 1000 });
    const verifier = createVerifier({ roots });
    const unknownName = fc
      .string({ minLength: 1 })
      .filter(
        (n) =>
          ![
            "roots",
            "now",
            "skewSeconds",
            "audience",
            "revocations",
            "limits",
            "backend",
            "cacheSize",
            "cache",
            "method",
            "path",
            "maxAgeSeconds",
            "replay",
            "verifyToken",
            "aud",
            "jti",
            "requirePresentation",
            "__proto__",
          ].includes(n),
      );
    // Options each entry point does know, but not there: per call, a verifier's fixed settings.
    const misplaced = fc.constantFrom(
      "skewSeconds",
      "limits",
      "roots",
      "backend",
      "cacheSize",
      "cache",
      "maxAgeSeconds",
      "replay",
    );
    await fc.assert(
      fc.asyncProperty(
        unknownName,
        fc.oneof(fc.integer(), fc.constant(undefined), wrongTypes),
        async (name, value) => {
          const extra = { [name]: value };
          expectMisuse(
            () => verify(tokens.expired, { roots, now: () => NOW * 1000, ...extra }),
            JSON.stringify(name),
          );
          expectMisuse(
            () => safeVerify(tokens.expired, { roots, now: () => NOW * 1000, ...extra }),
            JSON.stringify(name),
          );
          expectMisuse(() => createVerifier({ roots, ...extra }), JSON.stringify(name));
          expectMisuse(
            () => verifier.verify(tokens.expired, { now: () => NOW * 1000, ...extra }),
            JSON.stringify(name),
          );
          expectMisuse(
            () => present(tokens.valid, holder, { aud: AUD, now: () => NOW * 1000, ...extra }),
            JSON.stringify(name),
          );
          expectMisuse(
            () => createAuthorizer({ roots, audience: AUD, ...extra }),
            JSON.stringify(name),
          );
          const replay = new MemoryReplayCache();
          await expectMisuseAsync(
            () =>
              verifyPresentation(presentation, {
                roots,
                audience: AUD,
                now: () => NOW * 1000,
                replay,
                ...extra,
              }),
            JSON.stringify(name),
          );
          expect(replay.size).toBe(0);
        },
      ),
      RUNS,
    );
    fc.assert(
      fc.property(misplaced, (name) => {
        expectMisuse(
          () =>
            verifier.verify(tokens.expired, {
              now: clockAt(NOW),
              [name]: name === "skewSeconds" ? MAX_SKEW : {},
            } as never),
          `"${name}"`,
        );
      }),
      { numRuns: 20 },
    );
  });

  it("present: now", () => {
    fc.assert(
      fc.property(hostileNow, (now) => {
        expectMisuse(() => present(tokens.valid, holder, { aud: AUD, now }), '"now"');
      }),
      RUNS,
    );
  });

  it("createAuthorizer, withAllowance, allowanceMiddleware: skewSeconds, maxAgeSeconds and cacheSize at creation", () => {
    const makers = [
      createAuthorizer,
      (o: Parameters<typeof createAuthorizer>[0]) => withAllowance(() => new Response("served"), o),
      allowanceMiddleware,
    ];
    fc.assert(
      fc.property(
        fc.constantFrom(...makers),
        fc.oneof(
          hostileInteger(0, MAX_SKEW).map((value) => ({ name: "skewSeconds", value })),
          hostileInteger(0, MAX_AGE).map((value) => ({ name: "maxAgeSeconds", value })),
          hostileInteger(1, Number.MAX_SAFE_INTEGER).map((value) => ({ name: "cacheSize", value })),
          wrongTypes
            .filter((v) => typeof v !== "function")
            .map((value) => ({ name: "now", value })),
        ),
        (make, { name, value }) => {
          expectMisuse(() => make({ roots, audience: AUD, [name]: value }), `"${name}"`);
        },
      ),
      RUNS,
    );
  });

  it("createAuthorizer: a clock answering a hostile value fails the request (a server error), never authorizes it", async () => {
    const presentation = present(tokens.expired, holder, {
      aud: AUD,
      now: () => (NOW - 1000) * 1000,
    });
    const good = createAuthorizer({
      roots,
      audience: AUD,
      now: () => NOW * 1000,
      replay: new MemoryReplayCache(),
    });
    expect(await good.authorize(`Allowance ${presentation}`, "GET", "/")).toMatchObject({
      ok: false,
    });
    await fc.assert(
      fc.asyncProperty(
        hostileClock,
        fc.constantFrom(
          `Allowance ${presentation}`,
          `Allowance ${formatToken(tokens.expired)}`,
          undefined,
        ),
        async (now, authorization) => {
          const authorizer = createAuthorizer({
            roots,
            audience: AUD,
            now,
            requirePresentation: false,
            replay: new MemoryReplayCache(),
          });
          await expectMisuseAsync(() => authorizer.authorize(authorization, "GET", "/"), '"now"');
        },
      ),
      RUNS,
    );
  });

  it("withAllowance: a clock answering a hostile value rejects the request's promise; the handler never runs", async () => {
    let served = 0;
    const handler = () => (served++, new Response("served"));
    const presentation = present(tokens.valid, holder, {
      aud: AUD,
      method: "GET",
      path: "/search",
      now: () => (NOW - 1000) * 1000,
    });
    await fc.assert(
      fc.asyncProperty(hostileClock, async (now) => {
        const serve = withAllowance(handler, {
          roots,
          audience: AUD,
          now,
          replay: new MemoryReplayCache(),
        });
        await expectMisuseAsync(
          () =>
            serve(
              new Request("http://127.0.0.1/search", {
                headers: { authorization: `Allowance ${presentation}` },
              }),
            ),
          '"now"',
        );
      }),
      RUNS,
    );
    expect(served).toBe(0);
  });

  it("MemoryReplayCache: maxEntries, expiresAtSeconds and nowSeconds; a hostile clock never claims an id twice", () => {
    fc.assert(
      fc.property(hostileInteger(1, Number.MAX_SAFE_INTEGER), (maxEntries) => {
        expectMisuse(
          () => new MemoryReplayCache({ maxEntries: maxEntries as number }),
          '"maxEntries"',
        );
      }),
      RUNS,
    );
    fc.assert(
      fc.property(
        hostileInteger(0, Number.MAX_SAFE_INTEGER),
        hostileInteger(0, Number.MAX_SAFE_INTEGER),
        (expiresAt, now) => {
          const cache = new MemoryReplayCache();
          expect(cache.claim("id", NOW + 60, NOW)).toBe(true);
          expectMisuse(() => cache.claim("id", NOW + 60, now as number), '"nowSeconds"');
          expectMisuse(() => cache.claim("other", expiresAt as number, NOW), '"expiresAtSeconds"');
          expect(cache.claim("id", NOW + 60, NOW)).toBe(false);
        },
      ),
      RUNS,
    );
  });

  it("LruPrefixCache and the revocation stores: sizes, intervals and lookups", () => {
    fc.assert(
      fc.property(
        hostileInteger(1, Number.MAX_SAFE_INTEGER),
        hostileInteger(0, 3_600_000),
        wrongTypes.filter((v) => typeof v !== "string"),
        (maxEntries, checkIntervalMs, linkId) => {
          expectMisuse(() => new LruPrefixCache(maxEntries as number), '"maxEntries"');
          expectMisuse(
            () =>
              new FileRevocationStore(join(tmp, "revoked.json"), {
                checkIntervalMs: checkIntervalMs as number,
              }),
            '"checkIntervalMs"',
          );
          expectMisuse(() => new MemoryRevocationStore().has(linkId as string), '"linkId"');
        },
      ),
      RUNS,
    );
  });
});

// ---- over HTTP: a broken clock is a 500, and the handler never runs ----

describe("middleware over HTTP with a clock answering NaN", () => {
  it.each(["node", "fetch"] as const)(
    "the %s middleware answers 500 and does not serve",
    async (kind) => {
      let served = 0;
      const options = {
        roots,
        audience: AUD,
        now: () => Number.NaN,
        replay: new MemoryReplayCache(),
      };
      const server =
        kind === "node"
          ? await listen((req, res) => {
              allowanceMiddleware(options)(req, res, (error?: unknown) => {
                res.writeHead(error === undefined ? 200 : 500);
                if (error === undefined) served++;
                res.end();
              });
            })
          : await listen(
              fetchListener(
                withAllowance(
                  (_r: Request, _c: AllowanceContext) => (served++, new Response("served")),
                  options,
                ),
              ),
            );
      try {
        const presentation = present(tokens.expired, holder, {
          aud: AUD,
          method: "GET",
          path: "/search",
          now: () => (NOW - 1000) * 1000,
        });
        const response = await fetch(`${server.url}/search`, {
          headers: { authorization: `Allowance ${presentation}` },
        });
        expect(response.status).toBe(500);
        expect(served).toBe(0);
      } finally {
        await server.close();
      }
    },
  );
});
