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

/** Hostile values for `now` (a non-integer is fine there: it is rounded down, spec/format.md §8). */
const hostileNow = fc.oneof(
  fc.constantFrom<unknown>(
    Number.NaN,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    -1,
    -0.5,
    2 ** 53,
    2 ** 64,
    new Date(Number.NaN),
    new Date(-1000),
  ),
  fc.double({ max: -Number.MIN_VALUE }),
  fc.double({ min: 2 ** 53 }),
  fc.date({ noInvalidDate: false }).filter((d) => Number.isNaN(d.getTime()) || d.getTime() < 0),
  wrongTypes,
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
  it("an expired token is not accepted when now is an invalid Date", () => {
    expect(outcome(() => verify(tokens.expired, { roots, now: new Date(NOW * 1000) }))).toBe(
      "ERR_EXPIRED",
    );
    expectMisuse(() => verify(tokens.expired, { roots, now: new Date(Number.NaN) }), '"now"');
    expectMisuse(() => safeVerify(tokens.expired, { roots, now: new Date(Number.NaN) }), '"now"');
    expectMisuse(
      () => createVerifier({ roots }).verify(tokens.expired, { now: new Date(Number.NaN) }),
      '"now"',
    );
  });

  it("a not-yet-valid token is not accepted when now is an invalid Date", () => {
    expect(outcome(() => verify(tokens.notYetValid, { roots, now: NOW }))).toBe(
      "ERR_NOT_YET_VALID",
    );
    expectMisuse(() => verify(tokens.notYetValid, { roots, now: new Date("not a date") }), '"now"');
  });

  it("a presentation is not accepted again and again when now is NaN", async () => {
    const replay = new MemoryReplayCache();
    const presentation = present(tokens.valid, holder, { aud: AUD, now: NOW });
    for (let use = 0; use < 3; use++) {
      await expectMisuseAsync(
        () => verifyPresentation(presentation, { roots, audience: AUD, now: Number.NaN, replay }),
        '"now"',
      );
    }
    // Refused before the id was claimed: the holder's one use is still there, and only one.
    expect(replay.size).toBe(0);
    expect(
      await outcomeAsync(() =>
        verifyPresentation(presentation, { roots, audience: AUD, now: NOW, replay }),
      ),
    ).toBe("accepted");
    expect(
      await outcomeAsync(() =>
        verifyPresentation(presentation, { roots, audience: AUD, now: NOW, replay }),
      ),
    ).toBe("ERR_REPLAY");
  });

  it("a replay cache given a NaN now refuses to answer instead of calling every id expired", () => {
    const cache = new MemoryReplayCache();
    expect(cache.claim("holder.jti", NOW + 120, NOW)).toBe(true);
    expectMisuse(() => cache.claim("holder.jti", NOW + 120, Number.NaN), '"now"');
    expect(cache.claim("holder.jti", NOW + 120, NOW + 1)).toBe(false);
  });

  it("an asynchronous revocation store is refused, not read as 'nothing is revoked'", () => {
    const chain = verify(tokens.valid, { roots, now: NOW });
    const revoked = chain.linkIds[0] as string;
    const asyncStore = { has: async (id: string) => id === revoked };
    expect(
      outcome(() => verify(tokens.valid, { roots, now: NOW, revocations: new Set([revoked]) })),
    ).toBe("ERR_REVOKED");
    expectMisuse(
      () => verify(tokens.valid, { roots, now: NOW, revocations: asyncStore as never }),
      "revocations.has",
    );
    expectMisuse(
      () =>
        createVerifier({ roots }).verify(tokens.valid, {
          now: NOW,
          revocations: { has: () => 1 } as never,
        }),
      "revocations.has",
    );
  });

  it("a replay cache answering anything but a boolean is refused, not trusted", async () => {
    const presentation = present(tokens.valid, holder, { aud: AUD, now: NOW });
    const replay = { claim: () => "OK" as unknown as boolean };
    await expectMisuseAsync(
      () => verifyPresentation(presentation, { roots, audience: AUD, now: NOW, replay }),
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
      () => verify(tokens.valid, { roots, now: NOW, limits: { maxLink: 1 } as never }),
      "maxLink",
    );
    expect(outcome(() => verify(tokens.valid, { roots, now: NOW, limits: { maxLinks: 1 } }))).toBe(
      "accepted",
    );
  });

  it("a per-call skew given to a verifier's verify is refused, not silently unused", () => {
    const verifier = createVerifier({ roots, skew: 0 });
    // The skew that would have made it valid is the verifier's, fixed at creation: per call it did nothing.
    expect(outcome(() => verifier.verify(tokens.expired, { now: NOW - 1000 + 1 }))).toBe(
      "ERR_EXPIRED",
    );
    expectMisuse(
      () => verifier.verify(tokens.expired, { now: NOW - 1000 + 1, skew: 3600 } as never),
      '"skew"',
    );
    expectMisuse(
      () => verifier.verify(tokens.valid, { now: NOW, limits: { maxLinks: 1 } } as never),
      '"limits"',
    );
    expectMisuse(() => verifier.verify(tokens.valid, { now: NOW, roots } as never), '"roots"');
  });

  it("a misspelt option of verify, verifyPresentation or present is refused, not left at its default", async () => {
    expectMisuse(
      () =>
        verify(tokens.valid, { roots, now: NOW, audiance: "https://elsewhere.example" } as never),
      '"audiance"',
    );
    expectMisuse(() => createVerifier({ roots, cachesize: 1 } as never), '"cachesize"');
    const presentation = present(tokens.valid, holder, { aud: AUD, path: "/search", now: NOW });
    await expectMisuseAsync(
      () =>
        verifyPresentation(presentation, {
          roots,
          audience: AUD,
          now: NOW,
          pathname: "/search",
          replay: new MemoryReplayCache(),
        } as never),
      '"pathname"',
    );
    // A misspelt `path` would have left the presentation bound to no path at all.
    expectMisuse(
      () => present(tokens.valid, holder, { aud: AUD, pathname: "/search", now: NOW } as never),
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
      skew: 0,
      now: () => NOW,
      replay: new MemoryReplayCache(),
    });
    const presentation = present(tokens.valid, holder, {
      aud: AUD,
      method: "GET",
      path: "/search",
      now: NOW,
    });
    expect(await authorizer.authorize(`Allowance ${presentation}`, "GET", "/search")).toMatchObject(
      { ok: true },
    );
    expect(
      await authorizer.authorize(
        `Allowance ${present(tokens.expired, holder, { aud: AUD, now: NOW })}`,
        "GET",
        "/search",
      ),
    ).toMatchObject({ ok: false, rejection: { error: { code: "ERR_EXPIRED" } } });
  });

  it("null is not the default: a null skew or maxAge is a TypeError", async () => {
    expectMisuse(() => verify(tokens.valid, { roots, now: NOW, skew: null as never }), '"skew"');
    const presentation = present(tokens.valid, holder, { aud: AUD, now: NOW });
    await expectMisuseAsync(
      () =>
        verifyPresentation(presentation, {
          roots,
          audience: AUD,
          now: NOW,
          maxAge: null as never,
          replay: new MemoryReplayCache(),
        }),
      '"maxAge"',
    );
  });

  it("a presentation whose replay expiry would pass 2^53 - 1 is stale, not rounded", async () => {
    const rootKey = await generateKeyPair();
    const late = Number.MAX_SAFE_INTEGER - 10;
    const token = mint({
      rootKey,
      holder: publicKeyOf(holder),
      grant: { exp: Number.MAX_SAFE_INTEGER },
    });
    const presentation = present(token, holder, { aud: AUD, now: late });
    expect(
      await outcomeAsync(() =>
        verifyPresentation(presentation, {
          roots: trustedRoots([rootKey]),
          audience: AUD,
          now: late,
          replay: new MemoryReplayCache(),
        }),
      ),
    ).toBe("ERR_STALE");
  });
});

// ---- the edges that stay valid ----

describe("valid edges", () => {
  it("keeps the rule that a non-integer now is rounded down, and takes a Date", () => {
    const exp = NOW + 3600;
    // Expired when now − skew ≥ exp: exp − 0.5 rounds down to exp − 1, which is still valid.
    expect(outcome(() => verify(tokens.valid, { roots, now: exp - 0.5, skew: 0 }))).toBe(
      "accepted",
    );
    expect(outcome(() => verify(tokens.valid, { roots, now: exp + 0.999, skew: 0 }))).toBe(
      "ERR_EXPIRED",
    );
    expect(
      outcome(() =>
        verify(tokens.valid, { roots, now: new Date((exp - 1) * 1000 + 999), skew: 0 }),
      ),
    ).toBe("accepted");
    expect(outcome(() => verify(tokens.valid, { roots, now: new Date(exp * 1000), skew: 0 }))).toBe(
      "ERR_EXPIRED",
    );
    // The epoch itself is a valid clock.
    expect(outcome(() => verify(tokens.expired, { roots, now: 0 }))).toBe("accepted");
  });

  it("accepts a skew and maxAge of up to an hour, and refuses one second more", async () => {
    expect(outcome(() => verify(tokens.expired, { roots, now: NOW, skew: MAX_SKEW }))).toBe(
      "accepted",
    );
    expectMisuse(() => verify(tokens.expired, { roots, now: NOW, skew: MAX_SKEW + 1 }), '"skew"');
    const presentation = present(tokens.valid, holder, { aud: AUD, now: NOW - MAX_AGE - 60 + 1 });
    expect(
      await outcomeAsync(() =>
        verifyPresentation(presentation, {
          roots,
          audience: AUD,
          now: NOW,
          maxAge: MAX_AGE,
          replay: new MemoryReplayCache(),
        }),
      ),
    ).toBe("accepted");
    await expectMisuseAsync(
      () =>
        verifyPresentation(presentation, {
          roots,
          audience: AUD,
          now: NOW,
          maxAge: MAX_AGE + 1,
          replay: new MemoryReplayCache(),
        }),
      '"maxAge"',
    );
  });
});

// ---- the law, per entry point ----

describe("law: a hostile value never turns a refusal into an acceptance; it is a TypeError or RangeError", () => {
  it("verify and safeVerify: now and skew", () => {
    for (const scenario of scenarios)
      expect(outcome(() => verify(tokens[scenario], { roots, now: NOW }))).toBe(
        scenario === "valid"
          ? "accepted"
          : scenario === "expired"
            ? "ERR_EXPIRED"
            : "ERR_NOT_YET_VALID",
      );
    fc.assert(
      fc.property(fc.constantFrom(...scenarios), hostileNow, (scenario, now) => {
        expectMisuse(() => verify(tokens[scenario], { roots, now: now as number }), '"now"');
        expectMisuse(() => safeVerify(tokens[scenario], { roots, now: now as number }), '"now"');
      }),
      RUNS,
    );
    fc.assert(
      fc.property(fc.constantFrom(...scenarios), hostileInteger(0, MAX_SKEW), (scenario, skew) => {
        expectMisuse(
          () => verify(tokens[scenario], { roots, now: NOW, skew: skew as number }),
          '"skew"',
        );
        expectMisuse(
          () => safeVerify(tokens[scenario], { roots, now: NOW, skew: skew as number }),
          '"skew"',
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
            () => verify(tokens.valid, { roots, now: NOW, limits: { [name]: value } }),
            `limits.${name}`,
          );
        },
      ),
      RUNS,
    );
  });

  it("createVerifier: skew and cacheSize at creation, now on every call", () => {
    fc.assert(
      fc.property(
        hostileInteger(0, MAX_SKEW),
        hostileInteger(1, Number.MAX_SAFE_INTEGER),
        (skew, cacheSize) => {
          expectMisuse(() => createVerifier({ roots, skew: skew as number }), '"skew"');
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
        expectMisuse(() => verifier.verify(tokens[scenario], { now: now as number }), '"now"');
      }),
      RUNS,
    );
  });

  it("verifyPresentation: now, skew and maxAge, refused before the one-time id is used", async () => {
    const cases = fc.oneof(
      hostileNow.map((value) => ({ name: "now", value })),
      hostileInteger(0, MAX_SKEW).map((value) => ({ name: "skew", value })),
      hostileInteger(0, MAX_AGE).map((value) => ({ name: "maxAge", value })),
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
            now: iat,
            jti: new Uint8Array(16).fill(iat % 256),
          });
          await expectMisuseAsync(
            () =>
              verifyPresentation(presentation, {
                roots,
                audience: AUD,
                now: NOW,
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
    const presentation = present(tokens.valid, holder, { aud: AUD, now: NOW });
    const verifier = createVerifier({ roots });
    const unknownName = fc
      .string({ minLength: 1 })
      .filter(
        (n) =>
          ![
            "roots",
            "now",
            "skew",
            "audience",
            "revocations",
            "limits",
            "backend",
            "cacheSize",
            "cache",
            "method",
            "path",
            "maxAge",
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
      "skew",
      "limits",
      "roots",
      "backend",
      "cacheSize",
      "cache",
      "maxAge",
      "replay",
    );
    await fc.assert(
      fc.asyncProperty(
        unknownName,
        fc.oneof(fc.integer(), fc.constant(undefined), wrongTypes),
        async (name, value) => {
          const extra = { [name]: value };
          expectMisuse(
            () => verify(tokens.expired, { roots, now: NOW, ...extra }),
            JSON.stringify(name),
          );
          expectMisuse(
            () => safeVerify(tokens.expired, { roots, now: NOW, ...extra }),
            JSON.stringify(name),
          );
          expectMisuse(() => createVerifier({ roots, ...extra }), JSON.stringify(name));
          expectMisuse(
            () => verifier.verify(tokens.expired, { now: NOW, ...extra }),
            JSON.stringify(name),
          );
          expectMisuse(
            () => present(tokens.valid, holder, { aud: AUD, now: NOW, ...extra }),
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
                now: NOW,
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
              now: NOW,
              [name]: name === "skew" ? MAX_SKEW : {},
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
        expectMisuse(
          () => present(tokens.valid, holder, { aud: AUD, now: now as number }),
          '"now"',
        );
      }),
      RUNS,
    );
  });

  it("createAuthorizer, withAllowance, allowanceMiddleware: skew, maxAge and cacheSize at creation", () => {
    const makers = [
      createAuthorizer,
      (o: Parameters<typeof createAuthorizer>[0]) => withAllowance(() => new Response("served"), o),
      allowanceMiddleware,
    ];
    fc.assert(
      fc.property(
        fc.constantFrom(...makers),
        fc.oneof(
          hostileInteger(0, MAX_SKEW).map((value) => ({ name: "skew", value })),
          hostileInteger(0, MAX_AGE).map((value) => ({ name: "maxAge", value })),
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
    const presentation = present(tokens.expired, holder, { aud: AUD, now: NOW - 1000 });
    const good = createAuthorizer({
      roots,
      audience: AUD,
      now: () => NOW,
      replay: new MemoryReplayCache(),
    });
    expect(await good.authorize(`Allowance ${presentation}`, "GET", "/")).toMatchObject({
      ok: false,
    });
    await fc.assert(
      fc.asyncProperty(
        hostileNow,
        fc.constantFrom(
          `Allowance ${presentation}`,
          `Allowance ${formatToken(tokens.expired)}`,
          undefined,
        ),
        async (now, authorization) => {
          const authorizer = createAuthorizer({
            roots,
            audience: AUD,
            now: () => now as number,
            requirePresentation: false,
            replay: new MemoryReplayCache(),
          });
          await expectMisuseAsync(() => authorizer.authorize(authorization, "GET", "/"), '"now()"');
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
      now: NOW - 1000,
    });
    await fc.assert(
      fc.asyncProperty(hostileNow, async (now) => {
        const serve = withAllowance(handler, {
          roots,
          audience: AUD,
          now: () => now as number,
          replay: new MemoryReplayCache(),
        });
        await expectMisuseAsync(
          () =>
            serve(
              new Request("http://127.0.0.1/search", {
                headers: { authorization: `Allowance ${presentation}` },
              }),
            ),
          '"now()"',
        );
      }),
      RUNS,
    );
    expect(served).toBe(0);
  });

  it("MemoryReplayCache: maxEntries, expiresAt and now; a hostile clock never claims an id twice", () => {
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
          expectMisuse(() => cache.claim("id", NOW + 60, now as number), '"now"');
          expectMisuse(() => cache.claim("other", expiresAt as number, NOW), '"expiresAt"');
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
          now: NOW - 1000,
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
