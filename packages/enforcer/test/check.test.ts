/**
 * Enforcer.check: a dry run of reserve (spec/enforcement.md §2). The law: for any chain, history
 * and request, check answers exactly what reserve then decides, and holds nothing.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AllowanceError,
  type GrantFields,
  type ProviderGrant,
  type RateWindow,
} from "@allowance/core";
import {
  Enforcer,
  MemoryLedger,
  type CheckResult,
  type Decision,
  type Ledger,
  type ReserveRequest,
} from "@allowance/enforcer";
import { SqliteLedger } from "@allowance/enforcer/sqlite";
import { RedisLedger } from "@allowance/enforcer/redis";
import type { VerifiedChain } from "@allowance/verifier";
import { Clock, clockOption, family } from "../../../test/support/ledger-suite.js";
import { deleteKeys, freshPrefix, redisUrl } from "./redis-support.js";

const dir = mkdtempSync(join(tmpdir(), "allowance-check-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

let redis: Redis | undefined;
beforeAll(async () => {
  if (redisUrl === "") return;
  redis = new Redis(redisUrl);
  await redis.ping();
});
afterAll(async () => {
  await redis?.quit();
});

/** A Redis ledger on a key prefix of its own; closing it deletes its keys. */
function freshRedis(now?: () => number): Ledger {
  if (redis === undefined) throw new Error("no Redis");
  const connection = redis;
  const prefix = freshPrefix();
  return Object.assign(new RedisLedger(connection, { keyPrefix: prefix, ...clockOption(now) }), {
    close: () => deleteKeys(connection, prefix),
  });
}

/** Each ledger, whether it has checkSync, and how many random cases it is given. */
const ledgers: readonly (readonly [string, (now?: () => number) => Ledger, boolean, number])[] = [
  ["memory", (now) => new MemoryLedger(clockOption(now)), true, 300],
  [
    "sqlite",
    (now) => SqliteLedger.open(join(dir, `ledger-${files++}.db`), clockOption(now)),
    true,
    300,
  ],
  ...(redisUrl === "" ? [] : [["redis", freshRedis, false, 100] as const]),
];

const policy = { tools: { send_email: 10, "search.*": 0 }, default: 1 };
const PROVIDERS = ["openai", "anthropic"] as const;
const MODELS = ["m1", "m2"] as const;
const TOOLS = ["search.*", "send_email", "deploy"] as const;

const cap = (max: number) => fc.option(fc.nat({ max }), { nil: undefined });
const subset = <T>(values: readonly T[]) => fc.option(fc.subarray([...values]), { nil: undefined });
/** The object without its undefined fields (exactOptionalPropertyTypes: absent, not undefined). */
const defined = <T extends object>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]?: Exclude<T[K], undefined>;
  };

const providerGrants = fc.option(
  fc
    .subarray([...PROVIDERS], { minLength: 1 })
    .chain((names) =>
      fc.tuple(
        ...names.map((name) =>
          fc.record({ name: fc.constant(name), tokens: cap(400), usdMicros: cap(400) }),
        ),
      ),
    ),
  { nil: undefined },
);
const rateWindows = fc.option(
  fc.array(
    fc.record({
      seconds: fc.constantFrom(60, 3600),
      tokens: cap(400),
      usdMicros: cap(400),
      requests: fc.option(fc.integer({ min: 1, max: 6 }), { nil: undefined }),
    }),
    { maxLength: 2 },
  ),
  { nil: undefined },
);

const parentArbitrary = fc.record({
  tokens: cap(600),
  usdMicros: cap(600),
  risk: cap(40),
  providers: providerGrants,
  models: subset(MODELS),
  tools: subset(TOOLS),
  rate: rateWindows,
});
/** Drawn from numbers, then narrowed below the parent where the parent states a field. */
const childArbitrary = fc.record({
  tokens: cap(600),
  usdMicros: cap(600),
  risk: cap(40),
  providers: providerGrants,
  models: subset(MODELS),
  tools: subset(TOOLS),
  rate: rateWindows,
  keepProviders: fc.boolean(),
});

type Drawn = {
  tokens?: number | undefined;
  usdMicros?: number | undefined;
  risk?: number | undefined;
  providers?:
    { name: string; tokens?: number | undefined; usdMicros?: number | undefined }[] | undefined;
  models?: string[] | undefined;
  tools?: string[] | undefined;
  rate?:
    | {
        seconds: number;
        tokens?: number | undefined;
        usdMicros?: number | undefined;
        requests?: number | undefined;
      }[]
    | undefined;
};

function grantOf(drawn: Drawn): GrantFields {
  const rate = drawn.rate
    ?.map((w) => defined(w))
    .filter(
      (w) => w.tokens !== undefined || w.usdMicros !== undefined || w.requests !== undefined,
    ) as RateWindow[] | undefined;
  return defined({
    tokens: drawn.tokens,
    usdMicros: drawn.usdMicros,
    risk: drawn.risk,
    providers: drawn.providers?.map((p) => defined(p) as ProviderGrant),
    models: drawn.models,
    tools: drawn.tools,
    rate: rate === undefined || rate.length === 0 ? undefined : rate,
  });
}

function narrowed(parent: GrantFields, child: Drawn & { keepProviders: boolean }): GrantFields {
  const min = (a: number | undefined, b: number | undefined) =>
    a === undefined ? b : b === undefined ? a : Math.min(a, b);
  const providers =
    parent.providers === undefined
      ? child.providers
      : child.keepProviders
        ? undefined
        : parent.providers.map((p) => {
            const own = child.providers?.find((c) => c.name === p.name);
            return {
              name: p.name,
              tokens: min(p.tokens, own?.tokens),
              usdMicros: min(p.usdMicros, own?.usdMicros),
            };
          });
  return grantOf({
    tokens: min(parent.tokens, child.tokens),
    usdMicros: min(parent.usdMicros, child.usdMicros),
    risk: min(parent.risk, child.risk),
    providers,
    models:
      parent.models === undefined
        ? child.models
        : child.models?.filter((m) => parent.models?.includes(m)),
    tools:
      parent.tools === undefined
        ? child.tools
        : child.tools?.filter((t) => parent.tools?.includes(t)),
    rate: child.rate,
  });
}

const requestArbitrary = fc.record({
  provider: fc.constantFrom(undefined, "openai", "anthropic", "google"),
  model: fc.constantFrom(undefined, "m1", "m2", "m3"),
  tool: fc.constantFrom(undefined, "search.web", "send_email", "deploy"),
  tokens: fc.option(fc.nat({ max: 300 }), { nil: undefined }),
  usdMicros: fc.option(fc.nat({ max: 300 }), { nil: undefined }),
  risk: fc.option(fc.nat({ max: 20 }), { nil: undefined }),
  acceptCaps: fc.constantFrom(undefined, false, true, { minTokens: 50 }, { minUsdMicros: 100 }),
});

/** Spending before the question: reserves by either chain, some committed, some left held, and time passing. */
const stepArbitrary = fc.record({
  parent: fc.boolean(),
  request: fc.oneof(
    requestArbitrary,
    fc.record({
      provider: fc.constantFrom(undefined, "openai", "anthropic"),
      tokens: fc.nat({ max: 200 }),
      usdMicros: fc.nat({ max: 200 }),
      risk: fc.nat({ max: 10 }),
    }),
  ),
  then: fc.constantFrom("commit", "hold", "hold", "release"),
  spend: fc.nat({ max: 200 }),
  // Past the 600 s hold now and then, and rarely past the chain's one-day expiry.
  advance: fc.constantFrom(0, 0, 0, 1, 30, 61, 700, 3000, 90_000),
});

/** Everything but `fits`: the part of check's answer that reserve also gives. */
function comparable(result: CheckResult): unknown {
  const { fits: _fits, ...rest } = result;
  return rest;
}

function expected(decision: Decision): unknown {
  if (decision.decision === "DENY") return decision;
  const { reservationId: _id, expiresAt: _expires, ...rest } = decision;
  return rest;
}

describe.each(ledgers)("Enforcer.check on the %s ledger", (_name, make, sync, numRuns) => {
  it("law: for any chain, balances and request, check answers exactly what reserve then decides, and holds nothing", async () => {
    let chains = 0;
    await fc.assert(
      fc.asyncProperty(
        parentArbitrary,
        childArbitrary,
        fc.array(stepArbitrary, { maxLength: 10 }),
        requestArbitrary,
        async (parentDrawn, childDrawn, steps, drawnRequest) => {
          const parentGrant = grantOf(parentDrawn);
          let chain: VerifiedChain;
          let parent: VerifiedChain;
          try {
            const made = await family(parentGrant, [narrowed(parentGrant, childDrawn)]);
            chain = made.children[0] as VerifiedChain;
            parent = made.parent;
          } catch (error) {
            // A child the format finds wider than its parent: not this law's concern.
            if (error instanceof AllowanceError) return;
            throw error;
          }
          chains++;
          const clock = new Clock();
          const ledger = make(clock.now);
          const enforcer = new Enforcer({ ledger, policy, now: clock.now });
          try {
            for (const step of steps) {
              const d = await enforcer.reserve(
                { chain: step.parent ? parent : chain, ...defined(step.request) } as ReserveRequest,
                { ttl: 600 },
              );
              if (d.decision !== "DENY") {
                if (step.then === "commit")
                  await enforcer.commit(d.reservationId, {
                    tokens: step.spend,
                    usdMicros: step.spend,
                  });
                if (step.then === "release") await enforcer.release(d.reservationId);
              }
              clock.advance(step.advance);
            }
            const request = { chain, ...defined(drawnRequest) } as ReserveRequest;
            const before = await enforcer.remaining(chain);
            const checked = await enforcer.check(request);
            const again = sync ? enforcer.checkSync(request) : await enforcer.check(request);
            const after = await enforcer.remaining(chain);
            expect(after).toEqual(before);
            expect(again).toEqual(checked);
            const reserved = await enforcer.reserve(request);
            expect(comparable(checked)).toEqual(expected(reserved));
            // What fits is what the ledger would hold: an allowed amount never passes it.
            if (checked.decision !== "DENY") {
              for (const kind of ["tokens", "usdMicros", "risk"] as const) {
                const fits = checked.fits[kind];
                if (fits !== null && checked.amounts[kind] > 0)
                  expect(checked.amounts[kind]).toBeLessThanOrEqual(fits);
              }
            }
          } finally {
            await ledger.close();
          }
        },
      ),
      { numRuns },
    );
    // The law must have been exercised, not skipped on every draw.
    expect(chains).toBeGreaterThan(numRuns * 0.7);
  }, 120_000);

  it("denies with the same reason, field and link as reserve, and holds nothing however often it is asked", async () => {
    const { children } = await family({ usdMicros: 100, tools: ["search.*"] }, [
      { usdMicros: 60, rate: [{ seconds: 60, requests: 2 }] },
    ]);
    const chain = children[0] as VerifiedChain;
    const clock = new Clock();
    const ledger = make(clock.now);
    const enforcer = new Enforcer({ ledger, policy, now: clock.now });
    try {
      for (let i = 0; i < 20; i++)
        expect(await enforcer.check({ chain, usdMicros: 50 })).toMatchObject({
          decision: "ALLOW",
          fits: { usdMicros: 60, requests: 2 },
        });
      expect(await enforcer.check({ chain, tool: "send_email" })).toMatchObject({
        decision: "DENY",
        reason: "TOOL_NOT_ALLOWED",
        linkIndex: 0,
        field: "tools",
      });
      expect(await enforcer.check({ chain, usdMicros: 61 })).toMatchObject({
        decision: "DENY",
        reason: "BUDGET_USD",
        linkIndex: 1,
        field: "usdMicros",
        available: 60,
        limit: 60,
        requested: 61,
      });
      expect(await enforcer.check({ chain, usdMicros: 80, acceptCaps: true })).toMatchObject({
        decision: "ALLOW_WITH_CAPS",
        caps: { usdMicros: 60 },
      });
      const held = await enforcer.reserve({ chain, usdMicros: 50 });
      expect(held.decision).toBe("ALLOW");
      expect(await enforcer.check({ chain, usdMicros: 20 })).toMatchObject({
        decision: "DENY",
        reason: "BUDGET_USD",
        available: 10,
      });
      await enforcer.reserve({ chain });
      expect(await enforcer.check({ chain })).toMatchObject({
        decision: "DENY",
        reason: "RATE_LIMITED",
        field: "rate.60s.requests",
        retryAfter: 60,
      });
      // A check's answer carries no reservation: nothing to commit, nothing that expires.
      expect(await enforcer.check({ chain, usdMicros: 1 })).not.toHaveProperty("reservationId");
    } finally {
      await ledger.close();
    }
  });

  it("refuses what reserve refuses: hostile amounts and names, and a chain verify() did not return", async () => {
    const { children } = await family({ usdMicros: 100 }, [{}]);
    const chain = children[0] as VerifiedChain;
    const clock = new Clock();
    const ledger = make(clock.now);
    const enforcer = new Enforcer({ ledger, policy, now: clock.now });
    let denied = 0;
    enforcer.on("denied", () => denied++);
    try {
      const bad: [Partial<ReserveRequest>, ErrorConstructor][] = [
        [{ usdMicros: Number.NaN }, RangeError],
        [{ usdMicros: -1 }, RangeError],
        [{ tokens: 1.5 }, RangeError],
        [{ tokens: 2 ** 53 }, RangeError],
        [{ tokens: "5" as unknown as number }, TypeError],
        [{ tool: "" }, RangeError],
        [{ provider: 7 as unknown as string }, TypeError],
        [{ acceptCaps: { minTokens: -1 } }, RangeError],
        [{ acceptCaps: { bogus: 1 } as unknown as true }, TypeError],
        [{ chain: { ...chain } }, TypeError],
      ];
      for (const [fields, type] of bad) {
        const request = { chain, ...fields } as ReserveRequest;
        await expect(enforcer.check(request), JSON.stringify(Object.keys(fields))).rejects.toThrow(
          type,
        );
        if (sync) expect(() => enforcer.checkSync(request)).toThrow(type);
        await expect(enforcer.reserve(request)).rejects.toThrow(type);
      }
      await expect(enforcer.check(null as unknown as ReserveRequest)).rejects.toThrow(TypeError);
      // A question is not a refusal: check raises no `denied` event; reserve does.
      await enforcer.check({ chain, usdMicros: 101 });
      expect(denied).toBe(0);
      await enforcer.reserve({ chain, usdMicros: 101 });
      expect(denied).toBe(1);
    } finally {
      await ledger.close();
    }
  });
});

describe("Enforcer.checkSync", () => {
  it("refuses a ledger without synchronous balances instead of answering from nothing", async () => {
    const { children } = await family({ usdMicros: 100 }, [{}]);
    const memory = new MemoryLedger();
    const asyncOnly: Ledger = {
      name: "async-only",
      reserve: (op) => memory.reserve(op),
      commit: (...a) => memory.commit(...a),
      release: (...a) => memory.release(...a),
      extend: (...a) => memory.extend(...a),
      balances: (...a) => memory.balances(...a),
      close: async () => {},
    };
    const enforcer = new Enforcer({ ledger: asyncOnly });
    expect(() => enforcer.checkSync({ chain: children[0] as VerifiedChain })).toThrow(TypeError);
    expect(
      await enforcer.check({ chain: children[0] as VerifiedChain, usdMicros: 100 }),
    ).toMatchObject({ decision: "ALLOW" });
  });
});
