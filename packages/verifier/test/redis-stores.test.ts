import fc from "fast-check";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  attenuate,
  generateKeyPair,
  mint,
  publicKeyOf,
  trustedRoots,
  type KeyPair,
} from "@allowance/core";
import { RedisReplayCache, RedisRevocationStore } from "@allowance/verifier/redis";
import { verify } from "@allowance/verifier";
import { expectMisuseAsync } from "../../../test/support/misuse.js";
import { deleteKeys, freshPrefix, redisUrl } from "../../enforcer/test/redis-support.js";

let redis: Redis;
const prefix = freshPrefix();
beforeAll(async () => {
  if (redisUrl === "") return;
  redis = new Redis(redisUrl);
  await redis.ping();
});
afterAll(async () => {
  if (redis === undefined) return;
  await deleteKeys(redis, prefix);
  await redis.quit();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `condition` until it holds or `ms` pass. */
async function eventually(condition: () => boolean, ms = 2000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!condition() && Date.now() < deadline) await sleep(10);
  return condition();
}

describe.skipIf(redisUrl === "")("the redis replay cache", () => {
  const now = Math.floor(Date.now() / 1000);

  it("accepts the first claim of an id and refuses the second", async () => {
    const cache = new RedisReplayCache(redis, { keyPrefix: `${prefix}replay:` });
    expect(await cache.claim("id-1", now + 60, now)).toBe(true);
    expect(await cache.claim("id-1", now + 60, now)).toBe(false);
    expect(await cache.claim("id-2", now + 60, now)).toBe(true);
  });

  it("shares the record between clients: a second connection refuses an id claimed by the first", async () => {
    const other = new Redis(redisUrl);
    try {
      const options = { keyPrefix: `${prefix}replay:` };
      expect(await new RedisReplayCache(redis, options).claim("shared", now + 60, now)).toBe(true);
      expect(await new RedisReplayCache(other, options).claim("shared", now + 60, now)).toBe(false);
    } finally {
      await other.quit();
    }
  });

  it("records an id until its expiry, and accepts it again after", async () => {
    const cache = new RedisReplayCache(redis, { keyPrefix: `${prefix}replay:` });
    expect(await cache.claim("short", now + 1, now)).toBe(true);
    expect(await redis.pttl(`${prefix}replay:short`)).toBeGreaterThan(0);
    expect(await cache.claim("short", now + 1, now)).toBe(false);
    await sleep(1100);
    expect(await cache.claim("short", now + 1, now)).toBe(true);
  });

  it("records nothing for an id that has already expired, but still refuses one recorded earlier", async () => {
    const cache = new RedisReplayCache(redis, { keyPrefix: `${prefix}replay:` });
    expect(await cache.claim("late", now, now)).toBe(true);
    expect(await redis.exists(`${prefix}replay:late`)).toBe(0);
    expect(await cache.claim("kept", now + 60, now)).toBe(true);
    expect(await cache.claim("kept", now - 1, now)).toBe(false);
  });
});

describe.skipIf(redisUrl === "")("the redis revocation store", () => {
  async function chain() {
    const [root, owner, agent] = (await Promise.all([
      generateKeyPair(),
      generateKeyPair(),
      generateKeyPair(),
    ])) as [KeyPair, KeyPair, KeyPair];
    const now = Math.floor(Date.now() / 1000);
    const parent = mint({
      rootKey: root,
      holder: publicKeyOf(owner),
      grant: { exp: now + 3600, usdMicros: 100 },
    });
    const token = attenuate(parent, {
      holderKey: owner,
      holder: publicKeyOf(agent),
      grant: { usdMicros: 50 },
    });
    return { token, roots: trustedRoots([root]), now };
  }

  it("makes a link revoked in one process fail verification in another, through pub/sub", async () => {
    const key = `${prefix}revoked-a`;
    const elsewhere = new Redis(redisUrl);
    const [gateway, admin] = await Promise.all([
      RedisRevocationStore.open(redis, { key }),
      RedisRevocationStore.open(elsewhere, { key }),
    ]);
    try {
      const { token, roots, now } = await chain();
      const verified = verify(token, { roots, now: () => now * 1000, revocations: gateway });
      await admin.revoke(verified.linkIds[0] as string);
      expect(await eventually(() => gateway.has(verified.linkIds[0] as string))).toBe(true);
      // Revoking the root link revokes its descendants: the whole chain fails, naming link 0.
      expect(() => verify(token, { roots, now: () => now * 1000, revocations: gateway })).toThrow(
        expect.objectContaining({ code: "ERR_REVOKED", linkIndex: 0 }),
      );
      expect(await redis.smembers(key)).toEqual([verified.linkIds[0]]);
    } finally {
      await gateway.close();
      await admin.close();
      await elsewhere.quit();
    }
  });

  it("loads what was revoked before it opened", async () => {
    const key = `${prefix}revoked-b`;
    const { token, roots, now } = await chain();
    const linkId = verify(token, { roots, now: () => now * 1000 }).linkIds[1] as string;
    const first = await RedisRevocationStore.open(redis, { key });
    await first.revoke(linkId);
    await first.close();
    const second = await RedisRevocationStore.open(redis, { key });
    try {
      expect(second.has(linkId)).toBe(true);
      expect(second.list()).toEqual([linkId]);
      expect(() => verify(token, { roots, now: () => now * 1000, revocations: second })).toThrow(
        expect.objectContaining({ code: "ERR_REVOKED", linkIndex: 1 }),
      );
    } finally {
      await second.close();
    }
  });

  it("catches up by its periodic reload when an id reaches the set without a message", async () => {
    const key = `${prefix}revoked-c`;
    const store = await RedisRevocationStore.open(redis, { key, reloadIntervalMs: 50 });
    try {
      const { token, roots, now } = await chain();
      const linkId = verify(token, { roots, now: () => now * 1000 }).linkIds[1] as string;
      // As if the PUBLISH had been lost: only the SADD.
      await redis.sadd(key, linkId);
      expect(await eventually(() => store.has(linkId))).toBe(true);
    } finally {
      await store.close();
    }
  });

  it("reports a failure of Redis as ERR_REVOCATION_UNAVAILABLE, at open, revoke and reload, and keeps refusing what it knew (Redis's own errors reached the caller before)", async () => {
    const { token, roots, now } = await chain();
    const linkIds = verify(token, { roots, now: () => now * 1000 }).linkIds;
    // A key holding a string, not a set: every set command on it is refused by Redis.
    const broken = `${prefix}revoked-wrongtype`;
    await redis.set(broken, "not a set");
    await expect(RedisRevocationStore.open(redis, { key: broken })).rejects.toMatchObject({
      name: "AllowanceError",
      code: "ERR_REVOCATION_UNAVAILABLE",
      message: expect.stringMatching(/WRONGTYPE/),
    });

    const key = `${prefix}revoked-turns`;
    const store = await RedisRevocationStore.open(redis, { key });
    try {
      await store.revoke(linkIds[1] as string);
      await redis.del(key);
      await redis.set(key, "not a set");
      await expect(store.revoke(linkIds[0] as string)).rejects.toMatchObject({
        code: "ERR_REVOCATION_UNAVAILABLE",
        message: expect.stringMatching(/^cannot revoke/),
      });
      await expect(store.reload()).rejects.toMatchObject({ code: "ERR_REVOCATION_UNAVAILABLE" });
      expect(store.lastError?.code).toBe("ERR_REVOCATION_UNAVAILABLE");
      // What the mirror knew stays revoked; the id whose SADD failed is not taken as revoked.
      expect(() => verify(token, { roots, now: () => now * 1000, revocations: store })).toThrow(
        expect.objectContaining({ code: "ERR_REVOKED", linkIndex: 1 }),
      );
      expect(store.has(linkIds[0] as string)).toBe(false);
    } finally {
      await store.close();
    }
  });

  it("regression: a closed store refuses lookups, instead of answering from a mirror that no longer follows the set", async () => {
    const key = `${prefix}revoked-closed`;
    const store = await RedisRevocationStore.open(redis, { key, reloadIntervalMs: 50 });
    const { token, roots, now } = await chain();
    const linkId = verify(token, { roots, now: () => now * 1000 }).linkIds[1] as string;
    expect(store.has(linkId)).toBe(false);
    await store.close();
    // Revoked after the close: the mirror can no longer learn it, so it must not answer at all.
    await redis.sadd(key, linkId);
    expect(() => store.has(linkId)).toThrow(
      expect.objectContaining({ code: "ERR_REVOCATION_UNAVAILABLE" }),
    );
    expect(() => verify(token, { roots, now: () => now * 1000, revocations: store })).toThrow(
      expect.objectContaining({ code: "ERR_REVOCATION_UNAVAILABLE" }),
    );
  });

  it("refuses to revoke something that is not a link id", async () => {
    const store = await RedisRevocationStore.open(redis, { key: `${prefix}revoked-d` });
    try {
      await expect(store.revoke("not-a-link-id")).rejects.toThrow(TypeError);
    } finally {
      await store.close();
    }
  });
});

/** Values of the wrong type for a number or a string. */
const wrongTypes = fc.oneof(
  fc.constantFrom<unknown>(null, true, 10n, [], {}, [5], () => 5, new Date(0)),
  fc.object(),
);

/** Hostile values for an integer whose valid range is [min, max] (spec/presentation.md §5.4, §6.3). */
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
      1e300,
      "60",
    ),
    fc.double().filter((d) => !(Number.isInteger(d) && d >= min && d <= max)),
    wrongTypes,
  );
}

describe.skipIf(redisUrl === "")("hostile arguments of the redis stores", () => {
  const now = Math.floor(Date.now() / 1000);

  it("a replay claim with a huge or non-integer expiry is refused, not recorded with a TTL Redis rounds or refuses", async () => {
    const keyPrefix = `${prefix}hostile-replay:`;
    const cache = new RedisReplayCache(redis, { keyPrefix });
    await expectMisuseAsync(() => cache.claim("id", now + 0.5, now), '"expiresAt"', RangeError);
    await expectMisuseAsync(() => cache.claim("id", 1e300, now), '"expiresAt"', RangeError);
    await expectMisuseAsync(
      () => cache.claim("id", Number.MAX_SAFE_INTEGER, now),
      '"expiresAt"',
      RangeError,
    );
    await expectMisuseAsync(() => cache.claim("id", now + 60, now + 0.5), '"now"', RangeError);
    await expectMisuseAsync(() => cache.claim("id", now + 60, Number.NaN), '"now"', RangeError);
    await expectMisuseAsync(
      () => cache.claim("id", String(now + 60) as never, now),
      '"expiresAt"',
      TypeError,
    );
    // Nothing was recorded: the id's one use is still there, and only one.
    expect(await redis.exists(`${keyPrefix}id`)).toBe(0);
    expect(await cache.claim("id", now + 60, now)).toBe(true);
    expect(await cache.claim("id", now + 60, now)).toBe(false);
    // The longest TTL that stays exact is still taken.
    const longest = now + Math.floor(Number.MAX_SAFE_INTEGER / 1000);
    expect(await cache.claim("long", longest, now)).toBe(true);
    expect(await redis.pttl(`${keyPrefix}long`)).toBeGreaterThan(2 ** 52);
  });

  it("law: a hostile expiresAt or now never claims an id twice, and is a TypeError or RangeError naming it", async () => {
    const cache = new RedisReplayCache(redis, { keyPrefix: `${prefix}hostile-law:` });
    expect(await cache.claim("id", now + 60, now)).toBe(true);
    await fc.assert(
      fc.asyncProperty(
        hostileInteger(0, Number.MAX_SAFE_INTEGER),
        hostileInteger(0, Number.MAX_SAFE_INTEGER),
        async (expiresAt, clock) => {
          await expectMisuseAsync(() => cache.claim("id", now + 60, clock as number), '"now"');
          await expectMisuseAsync(
            () => cache.claim("other", expiresAt as number, now),
            '"expiresAt"',
          );
        },
      ),
      { numRuns: 100 },
    );
    expect(await cache.claim("id", now + 60, now)).toBe(false);
    expect(await cache.claim("other", now + 60, now)).toBe(true);
  });

  it("a replay cache refuses a misspelt or mistyped option instead of keeping its default prefix", async () => {
    await expectMisuseAsync(
      () => new RedisReplayCache(redis, { prefix: "mine:" } as never),
      '"prefix"',
      TypeError,
    );
    await expectMisuseAsync(
      () => new RedisReplayCache(redis, { keyPrefix: 42 } as never),
      '"keyPrefix"',
      TypeError,
    );
    await expectMisuseAsync(
      () => new RedisReplayCache(redis, null as never),
      '"options"',
      TypeError,
    );
    await expectMisuseAsync(() => new RedisReplayCache({} as never), '"redis"', TypeError);
  });

  it("a revocation store refuses a reload interval past 2^31 - 1 ms, which Node would have run every millisecond", async () => {
    await expectMisuseAsync(
      () =>
        RedisRevocationStore.open(redis, {
          key: `${prefix}hostile-revoked`,
          reloadIntervalMs: 2 ** 31,
        }),
      '"reloadIntervalMs"',
      RangeError,
    );
    await expectMisuseAsync(
      () =>
        RedisRevocationStore.open(redis, {
          key: `${prefix}hostile-revoked`,
          reloadIntervalMs: Number.NaN,
        }),
      '"reloadIntervalMs"',
      RangeError,
    );
    // The longest interval allowed is an hour, as for the file store.
    const store = await RedisRevocationStore.open(redis, {
      key: `${prefix}hostile-revoked`,
      reloadIntervalMs: 3_600_000,
    });
    await store.close();
  });

  it("law: a hostile reloadIntervalMs, key or channel, or an unknown option, is refused before any connection", async () => {
    // The real client, counting the subscriber connections the store would make.
    let duplicated = 0;
    const counting = new Proxy(redis, {
      get(target, property) {
        if (property === "duplicate") return () => (duplicated++, target.duplicate());
        const value: unknown = Reflect.get(target, property, target);
        return typeof value === "function"
          ? (value as (...a: unknown[]) => unknown).bind(target)
          : value;
      },
    });
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          hostileInteger(0, 3_600_000).map((value) => ({ name: "reloadIntervalMs", value })),
          fc.oneof(wrongTypes, fc.constant("")).map((value) => ({ name: "key", value })),
          fc.oneof(wrongTypes, fc.constant("")).map((value) => ({ name: "channel", value })),
          fc
            .constantFrom("reloadInterval", "reloadIntervalMS", "keyPrefix", "interval")
            .map((name) => ({ name, value: 50 })),
        ),
        async ({ name, value }) => {
          await expectMisuseAsync(
            () =>
              RedisRevocationStore.open(counting, { key: `${prefix}hostile-law`, [name]: value }),
            `"${name}"`,
          );
        },
      ),
      { numRuns: 100 },
    );
    // No subscriber connection was opened by a refused call; a valid one opens its one.
    expect(duplicated).toBe(0);
    const store = await RedisRevocationStore.open(counting, {
      key: `${prefix}hostile-law`,
      reloadIntervalMs: 0,
    });
    await store.close();
    expect(duplicated).toBe(1);
  });

  it("a revocation store refuses a lookup by anything but a string, instead of answering 'not revoked'", async () => {
    const store = await RedisRevocationStore.open(redis, { key: `${prefix}hostile-has` });
    try {
      for (const value of [42, null, undefined, {}, ["x"]])
        await expectMisuseAsync(() => store.has(value as never), '"linkId"', TypeError);
    } finally {
      await store.close();
    }
  });
});
