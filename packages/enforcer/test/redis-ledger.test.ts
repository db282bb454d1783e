import fc from "fast-check";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MemoryLedger, type Ledger } from "@allowance/enforcer";
import { RedisLedger } from "@allowance/enforcer/redis";
import {
  clockOption,
  concurrentCallsLaw,
  hostileArgumentsLaw,
  ledgerSuite,
  line,
  recording,
  storageLaws,
  storageOp,
  T0,
  thresholdLaw,
  traceEqualityLaw,
  ZERO,
} from "../../../test/support/ledger-suite.js";
import { deleteKeys, freshPrefix, redisUrl } from "./redis-support.js";
import { describeMultiProcess } from "./multi-process.js";

let redis: Redis;
beforeAll(async () => {
  if (redisUrl === "") return;
  redis = new Redis(redisUrl);
  await redis.ping();
});
afterAll(async () => {
  await redis?.quit();
});

/** A ledger on a key prefix of its own; closing it deletes its keys. */
async function fresh(now?: () => number): Promise<Ledger> {
  const prefix = freshPrefix();
  const ledger = new RedisLedger(redis, { keyPrefix: prefix, ...clockOption(now) });
  return Object.assign(ledger, { close: () => deleteKeys(redis, prefix) });
}

describe.skipIf(redisUrl === "")("the redis ledger", () => {
  ledgerSuite("redis", fresh);

  describe("the redis ledger's laws", () => {
    traceEqualityLaw("redis", fresh, 60);
    // Calls issued together go to Redis as batches; each must still act as if alone, in order.
    concurrentCallsLaw("redis", fresh, 60);
    thresholdLaw("redis", fresh, 20);
    hostileArgumentsLaw("redis", fresh, 40);
  });

  describe("the redis ledger's laws, on the Ledger interface itself", () => {
    // Ops straight on the ledger: several holds expiring at the same instant (so the sweep's
    // (expiresAt, id) order shows in `expired`), minimums of every size, and balances only now and
    // then (a balances call sweeps, and its sweep is not reported).
    type LedgerStep =
      | {
          readonly op: "reserve";
          readonly lines: number;
          readonly tokens: number;
          readonly usdMicros: number;
          readonly minTokens: number | null;
          readonly minUsd: number | null;
          readonly ttl: number;
        }
      | {
          readonly op: "commit";
          readonly pick: number;
          readonly tokens: number;
          readonly usdMicros: number;
        }
      | { readonly op: "release"; readonly pick: number }
      | { readonly op: "balances" }
      | { readonly op: "advance"; readonly ms: number };
    const ledgerStep: fc.Arbitrary<LedgerStep> = fc.oneof(
      {
        arbitrary: fc.record({
          op: fc.constant("reserve" as const),
          lines: fc.nat({ max: 3 }),
          tokens: fc.nat({ max: 60 }),
          usdMicros: fc.nat({ max: 60 }),
          minTokens: fc.option(fc.nat({ max: 40 })),
          minUsd: fc.option(fc.nat({ max: 40 })),
          ttl: fc.constantFrom(1, 2, 3),
        }),
        weight: 4,
      },
      {
        arbitrary: fc.record({
          op: fc.constant("commit" as const),
          pick: fc.nat(),
          tokens: fc.integer({ min: -1, max: 80 }),
          usdMicros: fc.integer({ min: -1, max: 80 }),
        }),
        weight: 2,
      },
      { arbitrary: fc.record({ op: fc.constant("release" as const), pick: fc.nat() }), weight: 1 },
      { arbitrary: fc.record({ op: fc.constant("balances" as const) }), weight: 1 },
      {
        arbitrary: fc.record({
          op: fc.constant("advance" as const),
          ms: fc.constantFrom(0, 1, 2, 3),
        }),
        weight: 2,
      },
    );
    const LINES = [
      line("a|tokens", "tokens", 100),
      line("a|usdMicros", "usdMicros", 90),
      line("a|requests", "requests", null),
      line("b|tokens", "tokens", 70, 1),
      line("b|usdMicros", "usdMicros", null, 1),
      line("b|risk", "risk", 5, 1),
    ];
    // Line sets of growing length, as a chain of one to four links would give.
    const lineSets = [LINES.slice(0, 2), LINES.slice(0, 3), LINES.slice(0, 5), LINES];

    async function run(ledger: Ledger, steps: readonly LedgerStep[]): Promise<unknown[]> {
      const log: unknown[] = [];
      const recorded = recording(ledger, log);
      const ids: string[] = [];
      let now = T0;
      try {
        for (const [i, step] of steps.entries()) {
          if (step.op === "reserve") {
            // Ids not in the order they were made, so ties in expiry are broken by id, not by age.
            const id = `root.${((i * 7919) % 1000).toString().padStart(3, "0")}`;
            const minimums = {
              ...(step.minTokens === null ? {} : { tokens: step.minTokens }),
              ...(step.minUsd === null ? {} : { usdMicros: step.minUsd }),
            };
            const outcome = await recorded.reserve({
              id,
              root: "root",
              lines: lineSets[step.lines] ?? LINES,
              amounts: { tokens: step.tokens, usdMicros: step.usdMicros, risk: 1, requests: 1 },
              minimums,
              ttlMs: step.ttl,
              now,
            });
            if (outcome.ok) ids.push(id);
          } else if (step.op === "commit" && ids.length > 0) {
            await recorded.commit(
              ids[step.pick % ids.length] as string,
              { tokens: step.tokens, usdMicros: step.usdMicros, risk: -1, requests: -1 },
              now,
            );
          } else if (step.op === "release" && ids.length > 0) {
            await recorded.release(ids[step.pick % ids.length] as string, now);
          } else if (step.op === "balances") {
            await recorded.balances(
              "root",
              LINES.map((l) => l.account),
              now,
            );
          } else if (step.op === "advance") {
            now += step.ms;
          }
        }
        await recorded.balances(
          "root",
          LINES.map((l) => l.account),
          now,
        );
      } finally {
        await recorded.close();
      }
      return log;
    }

    it("law: any sequence of ledger calls returns exactly what the memory ledger returns, expiry order included", async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(ledgerStep, { minLength: 1, maxLength: 60, size: "max" }),
          async (steps) => {
            expect(await run(await fresh(), steps)).toEqual(await run(new MemoryLedger(), steps));
          },
        ),
        { numRuns: 60 },
      );
    }, 120_000);
  });

  describe("the redis ledger's storage", () => {
    const op = storageOp;
    storageLaws(fresh);

    it('writes integers at 10^15 and beyond as integers, where Lua\'s "%.14g" would write 1e+15', async () => {
      const max = Number.MAX_SAFE_INTEGER;
      const ledger = await fresh();
      try {
        expect(
          await ledger.reserve({
            ...op("d", 10 ** 15 + 1, max),
            lines: [line("other", "usdMicros", 10 ** 15 + 1)],
          }),
        ).toMatchObject({ ok: true });
        expect((await ledger.balances("root", ["other"], T0)).balances).toEqual(
          new Map([["other", { spent: 0, held: 10 ** 15 + 1 }]]),
        );
      } finally {
        await ledger.close();
      }
    });

    it("refuses an option it does not have, and null for a default, before it touches the server", () => {
      for (const options of [
        { keyprefix: "x:" },
        { durabilty: "not-needed" },
        { keyPrefix: null },
        { retentionMs: null },
        // "false" is truthy: the ledger would quit a connection its caller still uses.
        { closeConnection: "false" },
        { closeConnection: null },
      ])
        expect(() => new RedisLedger(redis, options as never), JSON.stringify(options)).toThrow(
          /unknown option|expected|must not/,
        );
    });

    it("commits a hold of layout 2, whose line set has no link or field, reporting both read from its account names", async () => {
      const prefix = freshPrefix();
      const ledger = new RedisLedger(redis, { keyPrefix: prefix });
      try {
        // What the script of 0.1.0 stored for a two-link chain with a provider and a window: line
        // sets as [account, kind number, cap, …], a held record as its status (1), the four
        // amounts as doubles and the line set's digest.
        const legacy = [
          ["L0|usdMicros", 2, 100],
          ["L0|p:open:ai:tokens", 1, 10],
          ["L1|usdMicros", 2, 40],
          ["L1|w0:60:30000000:requests", 4, 2],
        ];
        const record = Buffer.alloc(33);
        record.writeUInt8(1, 0);
        [10, 40, 0, 1].forEach((amount, i) => record.writeDoubleBE(amount, 1 + 8 * i));
        const base = `${prefix}{root}:`;
        await redis.hset(`${base}l`, "d", JSON.stringify(legacy.flat()));
        await redis.hset(`${base}h`, "root.held", Buffer.concat([record, Buffer.from("d")]));
        await redis.zadd(`${base}x`, T0 + 60_000, "root.held");
        // Written before epoch markers: refused as lost state until an operator adopts the root.
        await expect(ledger.commit("root.held", ZERO, T0)).rejects.toMatchObject({
          code: "ERR_LEDGER_STATE",
        });
        await ledger.reconcile("root");
        const outcome = await ledger.commit(
          "root.held",
          { tokens: 10, usdMicros: 40, risk: 0, requests: -1 },
          T0,
        );
        expect(outcome.status === "committed" && outcome.lines).toEqual([
          {
            ...{ account: "L0|p:open:ai:tokens", kind: "tokens", cap: 10 },
            ...{
              linkIndex: 0,
              linkId: "L0",
              field: "providers.open:ai.tokens",
              before: 0,
              after: 10,
            },
          },
          {
            ...{ account: "L1|usdMicros", kind: "usdMicros", cap: 40 },
            ...{ linkIndex: 1, linkId: "L1", field: "usdMicros", before: 0, after: 40 },
          },
          {
            ...{ account: "L1|w0:60:30000000:requests", kind: "requests", cap: 2 },
            ...{ linkIndex: 1, linkId: "L1", field: "rate.60s.requests", before: 0, after: 1 },
          },
        ]);
      } finally {
        await deleteKeys(redis, prefix);
      }
    });

    it("puts every key of a chain under the root's hash tag, and forgets closed reservations after the retention time", async () => {
      const prefix = freshPrefix();
      const ledger = new RedisLedger(redis, { keyPrefix: prefix, retentionMs: 60_000 });
      try {
        await ledger.reserve(op("a", 10, 100));
        await ledger.reserve(op("b", 10, 100));
        await ledger.commit("root.b", { ...ZERO, usdMicros: 10 }, T0);
        const keys = (await redis.keys(`${prefix}*`)).sort();
        const closed = keys.filter((key) => key.startsWith(`${prefix}{root}:c:`));
        expect(closed).toHaveLength(1);
        expect(keys).toEqual([
          `${prefix}{root}:a`,
          closed[0],
          `${prefix}{root}:h`,
          `${prefix}{root}:l`,
          `${prefix}{root}:x`,
        ]);

        // Beside the balances, the root's epoch marker (spec/enforcement.md §8.1).
        expect(await redis.hgetall(`${prefix}{root}:a`)).toEqual({
          "s:link|usdMicros": "10",
          "h:link|usdMicros": "10",
          epoch: expect.stringMatching(/^[\w-]{16}$/),
        });
        // Two reservations on the same lines store those lines once.
        expect(await redis.hlen(`${prefix}{root}:l`)).toBe(1);
        // A held reservation lives in the held hash until a sweep closes it; a closed one in its
        // generation's hash, which lives between one and two retention times.
        expect(await redis.hkeys(`${prefix}{root}:h`)).toEqual(["root.a"]);
        expect(await redis.zrange(`${prefix}{root}:x`, "0", "-1")).toEqual(["root.a"]);
        expect(await redis.pttl(`${prefix}{root}:h`)).toBe(-1);
        expect(await redis.hkeys(closed[0] as string)).toEqual(["root.b"]);
        const ttl = await redis.pttl(closed[0] as string);
        expect(ttl).toBeGreaterThan(55_000);
        expect(ttl).toBeLessThanOrEqual(120_000);
      } finally {
        await deleteKeys(redis, prefix);
      }
    });

    it("answers a repeated commit or release from its record within the retention time, and unknown after it", async () => {
      const prefix = freshPrefix();
      const ledger = new RedisLedger(redis, { keyPrefix: prefix, retentionMs: 40 });
      try {
        await ledger.reserve(op("a", 10, 100));
        await ledger.reserve(op("b", 10, 100));
        expect(await ledger.commit("root.a", { ...ZERO, usdMicros: 7 }, T0)).toMatchObject({
          status: "committed",
          already: false,
        });
        expect(await ledger.release("root.b", T0)).toMatchObject({
          status: "released",
          already: false,
        });
        expect(await ledger.commit("root.a", { ...ZERO, usdMicros: 9 }, T0)).toMatchObject({
          status: "committed",
          already: true,
          charged: { usdMicros: 7 },
        });
        expect(await ledger.release("root.b", T0)).toMatchObject({
          status: "released",
          already: true,
        });
        // Kept at most two retention times (two generations of 40 ms).
        await new Promise((resolve) => setTimeout(resolve, 150));
        expect(await ledger.commit("root.a", { ...ZERO, usdMicros: 9 }, T0)).toEqual({
          status: "unknown",
          expired: [],
        });
        expect(await ledger.release("root.b", T0)).toEqual({
          status: "unknown",
          already: false,
          expired: [],
        });
        expect(
          (await ledger.balances("root", ["link|usdMicros"], T0)).balances.get("link|usdMicros"),
        ).toEqual({ spent: 7, held: 0 });
      } finally {
        await deleteKeys(redis, prefix);
      }
    });

    it("charges a late commit once when its expired record and its committed one sit in two generations", async () => {
      const prefix = freshPrefix();
      const retentionMs = 1_000;
      const ledger = new RedisLedger(redis, { keyPrefix: prefix, retentionMs });
      const generation = async () => {
        const [seconds, micros] = await redis.time();
        return Math.floor(
          (Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)) / retentionMs,
        );
      };
      try {
        await ledger.reserve({ ...op("a", 10, 100), ttlMs: 1 });
        // Expired by a sweep: its record goes to this generation's hash.
        expect((await ledger.balances("root", ["link|usdMicros"], T0 + 1)).expired).toEqual([
          "root.a",
        ]);
        const first = await generation();
        while ((await generation()) === first)
          await new Promise((resolve) => setTimeout(resolve, 20));
        // The late commit's record goes to the next generation's hash; the expired one is still kept.
        expect(await ledger.commit("root.a", { ...ZERO, usdMicros: 7 }, T0 + 2)).toMatchObject({
          status: "committed",
          already: false,
          late: true,
        });
        expect(await ledger.commit("root.a", { ...ZERO, usdMicros: 7 }, T0 + 2)).toMatchObject({
          status: "committed",
          already: true,
        });
        expect(await ledger.release("root.a", T0 + 2)).toMatchObject({
          status: "committed",
          already: true,
        });
        expect(
          (await ledger.balances("root", ["link|usdMicros"], T0 + 2)).balances.get(
            "link|usdMicros",
          ),
        ).toEqual({ spent: 7, held: 0 });
      } finally {
        await deleteKeys(redis, prefix);
      }
    });

    it("drops an id in the expiry set that has no record, rather than fail every later call on its root", async () => {
      const prefix = freshPrefix();
      const ledger = new RedisLedger(redis, { keyPrefix: prefix });
      try {
        await ledger.reserve({ ...op("a", 10, 100), ttlMs: 5 });
        await redis.zadd(`${prefix}{root}:x`, String(T0 + 1), "root.stray");
        const swept = await ledger.balances("root", ["link|usdMicros"], T0 + 5);
        expect(swept.expired).toEqual(["root.a"]);
        expect(swept.balances.get("link|usdMicros")).toEqual({ spent: 0, held: 0 });
        expect(await redis.zcard(`${prefix}{root}:x`)).toBe(0);
        expect(await ledger.reserve({ ...op("b", 10, 100), now: T0 + 5, ttlMs: 55 })).toMatchObject(
          { ok: true },
        );
      } finally {
        await deleteKeys(redis, prefix);
      }
    });

    it("keeps a hold for up to the 7-day maximum, to the half millisecond, and refuses a longer, infinite or NaN expiry", async () => {
      const ledger = await fresh();
      try {
        const lines = [line("link|usdMicros", "usdMicros", 100)];
        const week = 7 * 86_400_000;
        expect(await ledger.reserve({ ...op("far", 30, 100), lines, ttlMs: week })).toMatchObject({
          ok: true,
        });
        expect(
          await ledger.reserve({
            ...op("frac", 30, 100),
            lines,
            now: T0 + 1,
            ttlMs: 999.5,
          }),
        ).toMatchObject({ ok: true });
        for (const ttlMs of [week + 1, 1e20, Number.POSITIVE_INFINITY, Number.NaN, 0, -1]) {
          await expect(
            ledger.reserve({ ...op("bad", 1, 100), lines, ttlMs }),
            String(ttlMs),
          ).rejects.toThrow(RangeError);
        }
        // Nothing has expired and nothing refused was held: the next one does not fit.
        expect(await ledger.reserve({ ...op("more", 50, 100), lines, now: T0 + 1000 })).toEqual({
          ok: false,
          line: 0,
          available: 40,
          expired: [],
          at: T0 + 1000,
        });
        // T0 + 1000.5 is kept to the half millisecond: it expires at T0 + 1001, and not before.
        expect((await ledger.balances("root", ["link|usdMicros"], T0 + 1000.25)).expired).toEqual(
          [],
        );
        expect((await ledger.balances("root", ["link|usdMicros"], T0 + 1001)).expired).toEqual([
          "root.frac",
        ]);
        expect((await ledger.balances("root", ["link|usdMicros"], T0 + week)).expired).toEqual([
          "root.far",
        ]);
        expect(
          (await ledger.balances("root", ["link|usdMicros"], T0 + week)).balances.get(
            "link|usdMicros",
          ),
        ).toEqual({ spent: 0, held: 0 });
        await expect(ledger.commit("root.far", ZERO, Number.NaN)).rejects.toThrow(RangeError);
      } finally {
        await ledger.close();
      }
    });

    it("takes a committed record over an expired one in either generation, as if the server's clock stepped back", async () => {
      const prefix = freshPrefix();
      const ledger = new RedisLedger(redis, { keyPrefix: prefix });
      try {
        await ledger.reserve({ ...op("x", 10, 100), ttlMs: 1 });
        expect((await ledger.balances("root", ["link|usdMicros"], T0 + 1)).expired).toEqual([
          "root.x",
        ]);
        const [current] = await redis.keys(`${prefix}{root}:c:*`);
        const generation = Number((current as string).split(":").pop());
        // The late commit's record, as written in the next generation before the clock stepped back.
        const committed = Buffer.alloc(2 + 8 * 8);
        committed[0] = 2;
        committed[1] = 1;
        [0, 10, 0, 0, 0, 6, 0, 0].forEach((v, i) => committed.writeDoubleBE(v, 2 + 8 * i));
        await redis.hset(`${prefix}{root}:c:${generation - 1}`, "root.x", committed);
        expect(await ledger.commit("root.x", { ...ZERO, usdMicros: 6 }, T0 + 2)).toMatchObject({
          status: "committed",
          already: true,
          late: true,
          charged: { usdMicros: 6 },
        });
        expect(
          (await ledger.balances("root", ["link|usdMicros"], T0 + 2)).balances.get(
            "link|usdMicros",
          ),
        ).toEqual({ spent: 0, held: 0 });
      } finally {
        await deleteKeys(redis, prefix);
      }
    });

    it("refuses ids and account names that are not well-formed Unicode, which UTF-8 cannot carry apart", async () => {
      const ledger = await fresh();
      try {
        await expect(ledger.reserve({ ...op("a", 1, 100), id: "root.\ud800" })).rejects.toThrow(
          TypeError,
        );
        await expect(
          ledger.reserve({
            ...op("a", 1, 100),
            lines: [line("x\udc00", "usdMicros", 10)],
          }),
        ).rejects.toThrow(TypeError);
        await expect(ledger.balances("root", ["\ud800"], T0)).rejects.toThrow(TypeError);
        await expect(ledger.commit("root.\ud800", { ...ZERO, usdMicros: 1 }, T0)).rejects.toThrow(
          TypeError,
        );
        await expect(ledger.release("root.\ud800", T0)).rejects.toThrow(TypeError);
        // Well-formed text of any script goes through, and comes back as it went.
        const id = "root.\u{1F600}é";
        expect(
          await ledger.reserve({
            ...op("a", 1, 100),
            id,
            lines: [line("link|\u{1F600}", "usdMicros", 2)],
            ttlMs: 1,
          }),
        ).toMatchObject({ ok: true });
        expect((await ledger.balances("root", ["link|\u{1F600}"], T0 + 1)).expired).toEqual([id]);
      } finally {
        await ledger.close();
      }
    });

    it("expires thousands of holds in one sweep, read and written in chunks of 1,000, and frees every one", async () => {
      const ledger = await fresh();
      const count = 2_500;
      try {
        const lines = [line("link|usdMicros", "usdMicros", count)];
        const outcomes = await Promise.all(
          Array.from({ length: count }, (_, i) =>
            ledger.reserve({
              ...op(String(i).padStart(4, "0"), 1, count),
              lines,
              ttlMs: 10,
            }),
          ),
        );
        expect(outcomes.every((o) => o.ok)).toBe(true);
        // Full: one more does not fit until the holds expire.
        expect(await ledger.reserve({ ...op("extra", 1, count), lines })).toMatchObject({
          ok: false,
          available: 0,
        });
        const swept = await ledger.balances("root", ["link|usdMicros"], T0 + 10);
        expect(swept.expired).toEqual(
          Array.from({ length: count }, (_, i) => `root.${String(i).padStart(4, "0")}`),
        );
        expect(swept.balances.get("link|usdMicros")).toEqual({ spent: 0, held: 0 });
        // Each is closed as expired: a late commit still charges.
        expect(await ledger.commit("root.1234", { ...ZERO, usdMicros: 1 }, T0 + 10)).toMatchObject({
          status: "committed",
          late: true,
        });
        expect(await ledger.release("root.0001", T0 + 10)).toEqual({
          status: "expired",
          already: true,
          expired: [],
        });
      } finally {
        await ledger.close();
      }
    });

    it("answers unknown for an id whose root cannot be a hash tag, without touching Redis", async () => {
      const ledger = await fresh();
      try {
        expect(await ledger.commit("{x}.a", { ...ZERO, usdMicros: 1 }, T0)).toEqual({
          status: "unknown",
          expired: [],
        });
        expect(await ledger.release("nodot", T0)).toEqual({
          status: "unknown",
          already: false,
          expired: [],
        });
        await expect(ledger.reserve({ ...op("a", 1, 100), id: "other.a" })).rejects.toThrow(
          TypeError,
        );
      } finally {
        await ledger.close();
      }
    });
  });
});

describeMultiProcess(
  "redis",
  {
    target: () => ({ kind: "redis", url: redisUrl, prefix: freshPrefix() }),
    open: async (target) =>
      new RedisLedger(redis, { keyPrefix: (target as { prefix: string }).prefix }),
    cleanup: (target) => deleteKeys(redis, (target as { prefix: string }).prefix),
    fairLock: true,
  },
  { skip: redisUrl === "" },
);
